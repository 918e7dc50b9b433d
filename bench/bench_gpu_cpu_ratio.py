"""CPU measurement of the fast decoding path (static KV cache + inductor-compiled decoding step) against
the plain path: tiny VLM with a random LoRA adapter, the same dev prompts, greedy, fp32.
  python bench/bench_gpu_cpu_ratio.py      (~3 min on 2 cores: the compile itself takes ~1-1.5 min)
Writes bench/results/gen_compile_cpu.json. CPU numbers only: the GPU ratio is bench/bench_gpu.py's."""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    import torch
    from peft import LoraConfig, get_peft_model
    from bundles import models, prepare
    from bundles.batching import Batcher, load_records
    from bundles.generation import generate
    from bundles.loading import load_model
    work = Path(tempfile.mkdtemp(prefix="gen_compile_cpu_"))
    prepare.main(["easy-vqa", "--out", str(work / "data"), "--train-size", "96", "--dev-size", "64",
                  "--test-size", "8", "--dev-images", "80"])
    models.main(["tiny-vlm", "--out", str(work / "m"), "--data", str(work / "data")])  # Llama 256x4, CLIP patch 16
    model, processor = load_model(work / "m")
    torch.manual_seed(0)
    with torch.no_grad():  # prompt-dependent tokens that rarely stop early (the saved init repeats one token)
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    batcher, records = Batcher(processor, work / "data"), load_records(work / "data", "dev")
    kw = dict(batch_size=32, max_new_tokens=32)

    def timed(**extra):
        t = time.perf_counter()
        r = generate(model, batcher, records, **kw, **extra)
        return r, time.perf_counter() - t

    generate(model, batcher, records[:2], 2, 2)
    runs = {"plain": [], "compiled": []}
    _, first = timed(compile=True)
    for _ in range(3):  # alternate, best of 3
        plain, s = timed()
        runs["plain"].append(s)
        fast, s = timed(compile=True)
        runs["compiled"].append(s)
    n = sum(len(r["tokens"]) for r in plain)
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "records": len(records), **kw,
              "generated_tokens": n, "plain_s": min(runs["plain"]), "compiled_s": min(runs["compiled"]),
              "compile_first_call_s": first, "runs": runs,
              "speedup": min(runs["plain"]) / min(runs["compiled"]),
              "same_tokens_records": sum(a["tokens"] == b["tokens"] for a, b in zip(plain, fast))}
    out = ROOT / "bench" / "results" / "gen_compile_cpu.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
