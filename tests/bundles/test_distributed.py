"""Eval generation under DDP: 2 CPU ranks (torchrun, gloo) log the same generation metrics and write the same
rows as 1 rank, with an eval subset that does not split evenly (padded shards, pads dropped)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundles import finetune
from bundles.common import read_jsonl
from bundles.gen_eval import padded_shard

REPO = Path(__file__).resolve().parents[2]


def test_padded_shard_gives_every_rank_the_same_count():
    for n in (1, 5, 7, 8):
        for world in (1, 2, 3):
            shards = [padded_shard(n, r, world) for r in range(world)]
            assert len({len(s) for s in shards}) == 1  # same number of generate() batches on every rank
            assert sorted(set(i for s in shards for i in s)) == list(range(n))


def test_ddp_two_cpu_ranks_equal_one_rank(tiny_vlm, data_dir, tmp_path):
    # lr 0: the model stays the same, so each evaluation must give the same rows whatever the world size
    args = ["--model", str(tiny_vlm), "--data", str(data_dir), "--lora-r", "4", "--steps", "2", "--batch-size", "4",
            "--lr", "0", "--eval-steps", "2", "--eval-size", "7", "--gen-batch-size", "2", "--max-new-tokens", "4",
            "--metrics", "exact,token_f1", "--best-metric", "token_f1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "bundles.finetune", *args, "--out", str(tmp_path / "ddp")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("final metrics:") == 1  # only rank 0 writes and reports
    finetune.main([*args, "--out", str(tmp_path / "one")])

    def gen_metrics(out):
        m = json.loads((out / "metrics.json").read_text())
        return {k: v for k, v in m.items() if k.startswith(("eval_", "base_eval_")) and "loss" not in k
                and not k.endswith(("runtime", "per_second", "gen_seconds", "tokens_s"))}  # timings differ
    one, ddp = gen_metrics(tmp_path / "one"), gen_metrics(tmp_path / "ddp")
    assert "eval_token_f1" in one and ddp == one
    for step in (0, 2):
        rows = read_jsonl(tmp_path / "ddp" / "predictions" / f"eval-step{step}.jsonl")
        assert len(rows) == 7 and len({r["id"] for r in rows}) == 7  # the pad was dropped
        assert rows == read_jsonl(tmp_path / "one" / "predictions" / f"eval-step{step}.jsonl")


def test_fsdp2_sharded_generation_with_uneven_ranks_equals_unsharded(tiny_lm, data_dir, tmp_path):
    """What can run of FSDP on CPU: accelerate enables FSDP only on accelerators (on CPU Trainer silently
    falls back to DDP, FSDP1 refuses), so torch's fully_shard is applied directly. Rank 0 generates 6
    tokens, rank 1 only 3: synced_gpus keeps rank 1 in the collective forwards until rank 0 is done."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "rows.json"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(Path(__file__).with_name("fsdp_generate_worker.py")), str(tiny_lm), str(data_dir), str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert sorted({i for i, _ in rows}) == list(range(7)) and all(same for _, same in rows)


def torchrun(args, out, timeout=400):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "bundles.finetune", *args, "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_trainer_fsdp_on_cpu_ranks_is_refused_not_silently_ddp(tiny_lm, data_dir, tmp_path):
    """accelerate enables FSDP only over several accelerators (accelerate/state.py:986-1013); on 2 CPU ranks
    Trainer trained with plain DDP and said nothing. Now: one line, exit 2, nothing written."""
    r = torchrun(["--model", str(tiny_lm), "--data", str(data_dir), "--steps", "1", "--eval-steps", "0", "--metrics", "exact",
                  "--fsdp", "full_shard auto_wrap", "--fsdp-version", "2"], tmp_path / "out")
    assert r.returncode != 0
    assert r.stderr.count("bundles.finetune: error: --fsdp has no effect here: accelerate set up "
                          "DistributedType.MULTI_CPU") == 1
    # no traceback from the ranks (torchrun prints its own ChildFailedError one), nothing written
    assert 'bundles/finetune.py", line' not in r.stderr and not (tmp_path / "out" / "args.json").exists()


def test_deepspeed_zero3_two_cpu_ranks_equal_one_rank(varied_lm, data_dir, tmp_path):
    """Trainer + DeepSpeed ZeRO-3 on 2 CPU ranks (DeepSpeed's CPU accelerator, gloo): parameters sharded, eval
    generation with synced_gpus over the padded shards gives the metrics and rows of 1 unsharded rank; rank 0
    alone writes. (The first run JIT-builds DeepSpeed's C++ shared-memory op: ~2.5 min here, cached after.)"""
    pytest.importorskip("deepspeed")
    config = tmp_path / "zero3.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto",
                                  "train_batch_size": "auto", "gradient_accumulation_steps": "auto",
                                  "gradient_clipping": "auto"}))
    args = ["--model", str(varied_lm), "--data", str(data_dir), "--lora-r", "4", "--steps", "2", "--batch-size", "4",
            "--lr", "0", "--eval-steps", "2", "--eval-size", "7", "--gen-batch-size", "2", "--max-new-tokens", "6",
            "--metrics", "exact,token_f1", "--best-metric", "token_f1"]
    r = torchrun([*args, "--deepspeed", str(config)], tmp_path / "zero3", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DistributedType.DEEPSPEED over 2 ranks, parameters sharded" in r.stderr + r.stdout
    assert r.stdout.count("final metrics:") == 1
    finetune.main([*args, "--out", str(tmp_path / "one")])

    def gen_metrics(out):
        m = json.loads((out / "metrics.json").read_text())
        return {k: v for k, v in m.items() if k.startswith(("eval_", "base_eval_")) and "loss" not in k
                and not k.endswith(("runtime", "per_second", "gen_seconds", "tokens_s"))}
    one, zero3 = gen_metrics(tmp_path / "one"), gen_metrics(tmp_path / "zero3")
    assert "eval_token_f1" in one and zero3 == one
    for step in (0, 2):
        rows = read_jsonl(tmp_path / "zero3" / "predictions" / f"eval-step{step}.jsonl")
        assert len(rows) == 7 and len({r["id"] for r in rows}) == 7
        assert rows == read_jsonl(tmp_path / "one" / "predictions" / f"eval-step{step}.jsonl")
        assert len({r["prediction"] for r in rows}) > 2  # answers that vary: the comparison can fail
