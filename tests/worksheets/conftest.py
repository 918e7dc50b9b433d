import json

import pytest

from ws_helpers import drain


@pytest.fixture
def study(store, tmp_path):
    """Uploaded code and data, and three finished training runs writing stats.json/args.json."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(
        "import json, sys\n"
        "lr, frac = float(sys.argv[1]), float(sys.argv[2])\n"
        "print('epoch\\tloss'); [print(f'{e}\\t{1 / (e + 1):.3f}') for e in range(3)]\n"
        "json.dump({'epoch': 3, 'train_accuracy': 80 + lr * 10, 'test_accuracy': 70 + frac * 10,\n"
        "           'nested': {'acc': [0.5, 0.75]}}, open('stats.json', 'w'))\n"
        "json.dump({'n_epochs': 3, 'train_frac': frac}, open('args.json', 'w'))\n"
        "open('metrics.tsv', 'w').write('acc\\t0.9\\nloss\\t0.1\\n')\n"
        "open('cfg.yaml', 'w').write('model:\\n  name: tiny\\n  layers: 2\\n')\n")
    (tmp_path / "SNLI").mkdir()
    (tmp_path / "SNLI" / "train.txt").write_text("a\tb\tentailment\n")
    src, _ = store.upload([str(tmp_path / "src")], name="src")
    data, _ = store.upload([str(tmp_path / "SNLI")], name="SNLI")
    runs = []
    for lr, frac in ((0.1, 0.1), (0.2, 0.2), (0.3, 0.5)):
        b, _ = store.run(f"python3 src/train.py {lr} {frac}", [("src", "src"), ("SNLI", "SNLI")],
                         name=f"train-{frac}", start_worker=False)
        runs.append(b)
    drain(store)
    runs = [store.get(b.uuid) for b in runs]
    assert all(b.state == "ready" for b in runs), [(b.state, b.metadata.get("failure_message")) for b in runs]
    return {"src": store.get(src.uuid), "data": store.get(data.uuid), "runs": runs}


@pytest.fixture
def read_json():
    return lambda p: json.loads(open(p).read())
