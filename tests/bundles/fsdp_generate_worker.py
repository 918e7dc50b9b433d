"""torchrun worker for test_distributed: eval generation (padded shards, synced_gpus) on an FSDP2-sharded
(fully_shard per decoder layer + root) tiny Llama on CPU equals generation with the unsharded model."""
import json
import os
import sys

import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from bundles.batching import Batcher, load_records
from bundles.gen_eval import padded_shard
from bundles.generation import generate
from bundles.loading import load_model

model_dir, data_dir, out = sys.argv[1:4]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model, processor = load_model(model_dir)
batcher = Batcher(processor, data_dir)
records = load_records(data_dir, "dev", 7)
# a rank-dependent cap: rank 0 stops generating before rank 1, as ranks whose answers end early do
cap = [6, 3][rank % 2]
reference = generate(model, batcher, records, 2, cap)  # unsharded
for layer in model.model.layers:
    fully_shard(layer)
fully_shard(model)
idx = padded_shard(len(records), rank, world)
sharded = generate(model, batcher, [records[i] for i in idx], 2, cap, synced_gpus=True)
rows = [None] * world
dist.all_gather_object(rows, [(i, s["tokens"] == reference[i]["tokens"]) for i, s in zip(idx, sharded)])
if rank == 0:
    with open(out, "w") as f:
        json.dump([r for rank_rows in rows for r in rank_rows], f)
dist.destroy_process_group()
# Leave without the interpreter's teardown: on CPU, after destroy_process_group() has returned on both ranks
# and the rows are written, torch's C++ static destructors sometimes meet a still-joinable gloo/FSDP2 thread
# and abort ("terminate called without an active exception", SIGABRT; ~1 run in 10 here), failing a run whose
# result is complete. Nothing is left to flush but Python's own streams.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
