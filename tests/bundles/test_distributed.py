"""Eval generation under DDP: 2 CPU ranks (torchrun, gloo) log the same generation metrics and write the same
rows as 1 rank, with an eval subset that does not split evenly (padded shards, pads dropped)."""
import json
import os
import subprocess
import sys
from pathlib import Path

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
                and not k.endswith(("runtime", "per_second"))}
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
