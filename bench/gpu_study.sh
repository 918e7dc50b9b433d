#!/usr/bin/env bash
# The GPU check of the study, one command (~6-8 minutes on an H200; nothing is downloaded):
#   bash bench/gpu_study.sh [bench_gpu.py options]      from the repository root, on the GPU machine
# Runs every step of cl_recipes/llava_nli.yaml at LLaVA-1.5-7B shapes (random weights) in bf16 on the GPU,
# the NLI model on the GPU too, and writes bench/results/gpu_study.json (see bench/bench_gpu.py).
# PYTHON: the interpreter of a venv with the project's requirements (default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_study.sh: error: torch sees no CUDA device")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
exec timeout "${GPU_STUDY_TIMEOUT:-570}" "$PY" bench/bench_gpu.py "$@"
