# GPU check of the ML steps (about a minute): a tiny VLM, a LoRA fine-tune with the generation eval loop
# in bf16 (--bf16), inference, and batched vs one-at-a-time generation on CUDA (must be identical).
#   python3 -m bundles.prepare easy-vqa --out DATA --train-size 96 --dev-size 32 --test-size 32 --dev-images 40
#   bash bench/gpu_steps.sh DATA          # on the GPU machine, from the repository root
set -e
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error PYTHONPATH=$PWD
PY="${PYTHON:-python3}"  # the GPU machine has python3 (with torch), not always `python`
D=$(realpath "${1:?usage: bash bench/gpu_steps.sh PREPARED_DATA_DIR}")
W=/tmp/devcheck; rm -rf $W; mkdir -p $W
"$PY" -c "import torch;print('cuda', torch.cuda.is_available())"
"$PY" -m bundles.models tiny-vlm --out $W/m --data $D --hidden-size 64 --layers 2 --vision-hidden 32 --patch-size 16 | tail -1
"$PY" -m bundles.finetune --model $W/m --data $D --out $W/ft --lora-r 8 --train-projector --lr 3e-3 --steps 40 --batch-size 8 --eval-steps 20 --eval-size 16 --metrics exact,token_f1 --best-metric exact --bf16 --max-new-tokens 8 2>&1 | grep -v -i warn | tail -4
"$PY" -c "import json,sys;h=json.load(open('$W/ft/log_history.json'));ev=[e for e in h if 'eval_exact' in e];print('evals', len(ev), {k:ev[-1][k] for k in ev[-1] if k.startswith('eval_')})"
"$PY" -m bundles.infer --model $W/m --adapter $W/ft --data $D --split test --out $W/inf --bf16 | tail -1
wc -l $W/inf/predictions.jsonl
"$PY" - <<PY
import torch
from bundles.batching import Batcher, load_records
from bundles.generation import generate
from bundles.loading import load_model
dev = "cuda" if torch.cuda.is_available() else None
model, proc = load_model("$W/m", "$W/ft", device=dev)
b = Batcher(proc, "$D"); recs = load_records("$D", "dev", 32)
a = generate(model, b, recs, 32, 8); s = generate(model, b, recs, 1, 8)
print("fp32 on", next(model.parameters()).device, "batched == one at a time:", sum(x["tokens"] == y["tokens"] for x, y in zip(a, s)), "/", len(a))
PY
