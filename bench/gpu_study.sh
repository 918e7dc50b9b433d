#!/usr/bin/env bash
# The GPU check of the study, one command (about 6-8 minutes on an H200; nothing is downloaded):
#   bash bench/gpu_study.sh [bench_gpu.py options]      from the repository root, on the GPU machine
#   bash bench/gpu_study.sh --tiny                      the same script on the CPU with tiny shapes (~2 min)
# Runs every step of cl_recipes/llava_nli.yaml at LLaVA-1.5-7B shapes (random weights) in bf16 on the GPU,
# the NLI model on the GPU too, and writes gpu_study.json + gpu_study.log into $OUT when it is set (the
# device machine's folder that comes back), else into bench/results/. The JSON is rewritten after every
# phase; a failing phase is recorded (error + traceback tail) and the phases that do not need it still run.
# Time: GPU_STUDY_TIMEOUT seconds in all (default 480); the phases get that minus 20 s (bench_gpu --budget),
# so a hang is cut inside Python and recorded; `timeout` is the backstop (SIGTERM, then SIGKILL 15 s later).
# Versions: if .whl/ (or GPU_STUDY_WHEELS) holds wheels, they are installed first with pip --no-deps into a
# temporary folder put first on PYTHONPATH: carry transformers and peft wheels of the versions tested here
# (see docs/bundles.md) so the GPU runs the code the CPU tests ran.
# PYTHON: the interpreter (default .venv/bin/python when there is one, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
WHEELS="${GPU_STUDY_WHEELS:-.whl}"
RESULTS="${OUT:-bench/results}"
LIMIT="${GPU_STUDY_TIMEOUT:-480}"
mkdir -p "$RESULTS"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE=$(mktemp -d /tmp/gpu_study_site.XXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
TINY=0; for a in "$@"; do [ "$a" = --tiny ] && TINY=1; done
"$PY" - "$TINY" <<'PY'
import sys, torch, transformers, peft, accelerate
print("gpu_study:", sys.executable, "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "accelerate", accelerate.__version__, "cuda", torch.cuda.is_available(), flush=True)
if sys.argv[1] == "0" and not torch.cuda.is_available():
    sys.exit("gpu_study.sh: error: torch sees no CUDA device (use --tiny for the CPU check)")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
export GPU_STUDY_BUDGET=$((LIMIT - 20))
set +e
timeout -k 15 "$LIMIT" "$PY" bench/bench_gpu.py --out "$RESULTS/gpu_study.json" "$@" 2>&1 | tee "$RESULTS/gpu_study.log"
rc=${PIPESTATUS[0]}
echo "gpu_study: exit $rc; results in $RESULTS/gpu_study.json"
exit "$rc"
