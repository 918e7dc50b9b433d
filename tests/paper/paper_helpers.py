"""A small study for the paper-table tests: code uploaded, a model x rank x seed grid of runs."""

from codalite import Worker


def drain(store):
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()


TRAIN = (
    "import json, sys\n"
    "model, rank, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "base = {'tiny': 0.5, 'small': 0.7}[model]\n"
    "json.dump({'model': model, 'lora_r': rank, 'seed': seed}, open('args.json', 'w'))\n"
    "json.dump({'nli_entail': base + rank / 100 + seed / 1000}, open('scores.json', 'w'))\n"
)


def make_study(store, tmp_path, grid, code=TRAIN):
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "train.py").write_text(code)
    src, _ = store.upload([str(tmp_path / "code")], name="code")
    runs = []
    for model, rank, seed in grid:
        b, _ = store.run(f"python3 code/train.py {model} {rank} {seed}", [("code", src.uuid)],
                         name=f"train-{model}-r{rank}-s{seed}", start_worker=False)
        runs.append(b)
    drain(store)
    return src, [store.get(b.uuid) for b in runs]


GRID = [(m, r, s) for m in ("tiny", "small") for r in (4, 8) for s in (1, 2, 3)]

DECL = """name: nli
caption: NLI entailment by model and LoRA rank
bundles: name=train-%
rows: {model: /args.json:model}
columns: {rank: /args.json:lora_r}
value: /scores.json:nli_entail
over: {seed: /args.json:seed}
format: "%.3f"
best: max
"""
