"""Real bundles for the picture tests (training curves, examples): tiny scripts that write the
same files as bundles.finetune (log_history.json; checkpoints/checkpoint-N/trainer_state.json while
running), bundles.prepare (test.jsonl + images/), bundles.infer (predictions.jsonl) and
bundles.score (per_example.jsonl, scores.json), run by the real worker."""

import json
import os
import time

from codalite import Worker

# argv: lr steps eval_every gate. Loss falls faster with a larger lr; eval_exact rises. With gate=1 the
# run stops after its first checkpoint until a file `go` appears in its working directory (the test
# drops it there), so a test sees it running with a checkpoint and no log_history.json yet.
FAKE_FINETUNE = r'''
import json, os, sys, time
lr, steps, every, gate = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
hist = []
for s in range(1, steps + 1):
    hist.append({"loss": round(2.0 / (1 + lr * s), 4), "grad_norm": 1.0, "learning_rate": 1e-3,
                 "epoch": s / steps, "step": s})
    if s % every == 0:
        hist.append({"eval_loss": round(2.2 / (1 + lr * s), 4), "eval_exact": round(min(1.0, lr * s / 10), 4),
                     "eval_runtime": 0.1, "eval_samples_per_second": 10.0, "epoch": s / steps, "step": s})
        d = f"checkpoints/checkpoint-{s}"
        os.makedirs(d)
        json.dump({"global_step": s, "log_history": hist}, open(d + "/trainer_state.json", "w"))
        print("checkpoint", s, flush=True)
        while gate and not os.path.exists("go"):
            time.sleep(0.05)
hist.append({"train_runtime": 1.0, "train_loss": 1.0, "epoch": 1.0, "step": steps})
json.dump(hist, open("log_history.json", "w"))
json.dump({"steps": steps, "eval_exact": hist[-2]["eval_exact"]}, open("metrics.json", "w"))
'''


def drain(store):
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()


def upload_script(store, tmp_path, name, text):
    d = tmp_path / f"{name}-src"
    d.mkdir(exist_ok=True)
    (d / f"{name}.py").write_text(text)
    return store.upload([str(d / f"{name}.py")], name=name)[0]


def fake_finetunes(store, tmp_path, lrs=(0.5, 1.0), steps=20, every=5, names="ft-{lr}"):
    """Finished fake fine-tunes, one per lr."""
    code = upload_script(store, tmp_path, "fake_ft", FAKE_FINETUNE)
    runs = [store.run(f"python3 fake_ft.py {lr} {steps} {every} 0", [("fake_ft.py", code.uuid)],
                      name=names.format(lr=lr), start_worker=False)[0] for lr in lrs]
    drain(store)
    runs = [store.get(r.uuid) for r in runs]
    assert all(r.state == "ready" for r in runs), [(r.state, r.metadata.get("failure_message")) for r in runs]
    return runs


def start_gated_finetune(store, tmp_path, lr=1.0, steps=20, every=5, name="ft-live"):
    """A fake fine-tune left running after its first checkpoint (the worker started on demand)."""
    code = upload_script(store, tmp_path, "fake_ft", FAKE_FINETUNE)
    run, _ = store.run(f"python3 fake_ft.py {lr} {steps} {every} 1", [("fake_ft.py", code.uuid)], name=name)
    wait_for(lambda: _has_checkpoint(store, run.uuid, every), 60, "the first checkpoint")
    return store.get(run.uuid)


def _has_checkpoint(store, uuid, step):
    b = store.get(uuid)
    return b.state == "running" and os.path.exists(
        os.path.join(store.location(b), "checkpoints", f"checkpoint-{step}", "trainer_state.json"))


def release(store, run):
    """Let a gated fake fine-tune finish."""
    open(os.path.join(store.location(store.get(run.uuid)), "go"), "w").close()


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# --- a scored study: data (test.jsonl + images), predictions of two models, their scores -----------

PNG_1x1 = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8"
                        "cfc000000301010018dd8db00000000049454e44ae426082")

QUESTIONS = [  # id, qtype, question, reference
    ("test-0", "color", "What color is the shape?", "red"),
    ("test-1", "color", "What is the color of the circle?", "blue"),
    ("test-2", "shape", "What shape is in the image?", "circle"),
    ("test-3", "shape", "What shape is it?", "triangle"),
    ("test-4", "yesno", "Is there a red shape?", "yes"),
]
ANSWERS = {"good": ["red", "blue", "circle", "rectangle", "yes"],
           "bad": ["black", "black", "rectangle", "rectangle", "yes"]}

PREPARE = r'''
import json, os, sys
os.makedirs("images")
qs = json.loads(sys.argv[1])
png = bytes.fromhex(sys.argv[2])
with open("test.jsonl", "w") as f:
    for i, (qid, qtype, q, ref) in enumerate(qs):
        open(f"images/{qid}.png", "wb").write(png)
        f.write(json.dumps({"id": qid, "image": f"images/{qid}.png", "question": q, "reference": ref,
                            "qtype": qtype}) + "\n")
'''

INFER = r'''
import json, sys
answers = json.loads(sys.argv[1])
rows = [json.loads(l) for l in open("data/test.jsonl")]
with open("predictions.jsonl", "w") as f:
    for r, a in zip(rows, answers):
        f.write(json.dumps({"id": r["id"], "qtype": r["qtype"], "prediction": a, "reference": r["reference"]}) + "\n")
json.dump({"split": "test", "data": "data"}, open("args.json", "w"))
'''

SCORE = r'''
import json, sys
rows = [json.loads(l) for l in open("preds/predictions.jsonl")]
per = [{"id": r["id"], "qtype": r["qtype"], "answer_acc": float(r["prediction"] == r["reference"])} for r in rows]
with open("per_example.jsonl", "w") as f:
    f.writelines(json.dumps(p) + "\n" for p in per)
json.dump({"n": len(per), "answer_acc": sum(p["answer_acc"] for p in per) / len(per)}, open("scores.json", "w"))
json.dump({"model": sys.argv[1], "seed": 0, "split": "test"}, open("cell.json", "w"))
'''


def scored_study(store, tmp_path, answers=ANSWERS):
    """{'data', 'infer': {model: bundle}, 'score': {model: bundle}}: data -> infer-<m> -> score-<m>."""
    prep = upload_script(store, tmp_path, "prep", PREPARE)
    inf = upload_script(store, tmp_path, "inf", INFER)
    sc = upload_script(store, tmp_path, "sc", SCORE)
    qs = json.dumps([list(q) for q in QUESTIONS])
    data, _ = store.run(f"python3 prep.py '{qs}' {PNG_1x1.hex()}", [("prep.py", prep.uuid)], name="data",
                        start_worker=False)
    infer, scores = {}, {}
    for m, ans in answers.items():
        infer[m], _ = store.run(f"python3 inf.py '{json.dumps(ans)}'", [("inf.py", inf.uuid), ("data", data.uuid)],
                                name=f"infer-{m}", start_worker=False)
        scores[m], _ = store.run(f"python3 sc.py '{m} model'", [("sc.py", sc.uuid), ("preds", infer[m].uuid),
                                                                 ("data", data.uuid)],
                                 name=f"score-{m}", start_worker=False)
    drain(store)
    out = {"data": store.get(data.uuid), "infer": {m: store.get(b.uuid) for m, b in infer.items()},
           "score": {m: store.get(b.uuid) for m, b in scores.items()}}
    bad = [b for b in [out["data"], *out["infer"].values(), *out["score"].values()] if b.state != "ready"]
    assert not bad, [(b.name, b.state, b.metadata.get("failure_message")) for b in bad]
    return out
