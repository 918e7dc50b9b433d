"""The paper-scale study end to end: cl_recipes/llava_nli.yaml under its smoke profile (tiny random
LLaVA and RoBERTa-MNLI-shaped models, CPU), on a researcher's own annotations and images, through
`codalite recipe run`, then `print`, `export`, `verify`. About a minute on 2 cores."""

import json
import os
import shutil
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
PIL = pytest.importorskip("PIL.Image")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def researcher_project(tmp_path):
    """A project as a researcher lays it out: the study's recipe and tables as shipped, the step
    programs, and their own annotations in place of data/llava_nli_example (two pictures share a
    file name in different folders)."""
    shutil.copytree(os.path.join(ROOT, "bundles"), tmp_path / "bundles", ignore=shutil.ignore_patterns("__pycache__"))
    for sub, name in (("cl_recipes", "llava_nli.yaml"), ("worksheets", "llava_nli.yaml")):
        (tmp_path / sub).mkdir()
        shutil.copy(os.path.join(ROOT, sub, name), tmp_path / sub / name)
    ann = tmp_path / "data" / "llava_nli_example"
    for folder, color in (("morning", "red"), ("evening", "blue")):
        (ann / folder).mkdir(parents=True)
        PIL.new("RGB", (48, 40), color).save(ann / folder / "photo.png")
    rec = lambda i, folder, text: {"id": i, "image": f"{folder}/photo.png", "question": "Describe the picture.",
                                   "reference": text}
    splits = {"train": [rec("t1", "morning", "A red picture."), rec("t2", "evening", "A blue picture."),
                        rec("t3", "morning", "It is red."), rec("t4", "evening", "It is blue.")],
              "dev": [rec("d1", "morning", "The picture is red."), rec("d2", "evening", "The picture is blue.")],
              "test": [rec("s1", "evening", "Everything is blue."), rec("s2", "morning", "Everything is red.")]}
    for split, rows in splits.items():
        (ann / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ann


def test_llava_nli_smoke_profile_end_to_end(tmp_path, make_cli):
    ann = researcher_project(tmp_path)
    # runs use the python found on PATH at init: this interpreter, which has torch and transformers
    cl = make_cli(tmp_path, env={"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]},
                  timeout=400)
    cl("init")
    recipe = "cl_recipes/llava_nli.yaml"
    assert cl.out("recipe", "plan", recipe).splitlines()[-1] == "48 missing"  # the full study, untouched
    r = cl("recipe", "run", recipe, "--profile", "smoke")
    assert "6 cells ready" in r.stdout, r.stdout + r.stderr
    assert "6 cells: 0 memo hits, 6 to run (worksheet llava_nli-smoke)" in r.stderr

    # the researcher's images: same file name, different pictures, each record points at its own
    train = [json.loads(line) for line in cl.out("cat", "data/train.jsonl").splitlines()]
    images = {row["id"]: row["image"] for row in train}
    assert images["t1"] == images["t3"] != images["t2"] == images["t4"]
    location = next(line.split(": ", 1)[1] for line in cl.out("info", "data").splitlines() if line.startswith("location:"))
    for rid, folder in (("t1", "morning"), ("t2", "evening")):
        assert open(os.path.join(location, images[rid]), "rb").read() == (ann / folder / "photo.png").read_bytes()

    # models of the right architectures; the fine-tune keeps checkpoints/ (resumable)
    assert json.loads(cl.out("cat", "base/config.json"))["architectures"] == ["LlavaForConditionalGeneration"]
    nli_cfg = json.loads(cl.out("cat", "nli/config.json"))
    assert nli_cfg["architectures"] == ["RobertaForSequenceClassification"] and nli_cfg["id2label"]["2"] == "ENTAILMENT"
    assert "checkpoints" in cl.out("cat", "finetune-lora_r4-lr0.01-seed1")

    # every test answer is text (the smoke profile trains enough for that) and the NLI model scored it
    scores = json.loads(cl.out("cat", "score-lora_r4-lr0.01-seed1/scores.json"))
    preds = [json.loads(line) for line in cl.out("cat", "infer-lora_r4-lr0.01-seed1/predictions.jsonl").splitlines()]
    per = [json.loads(line) for line in cl.out("cat", "score-lora_r4-lr0.01-seed1/per_example.jsonl").splitlines()]
    assert scores["n"] == 2 and scores["n_empty"] == 0
    assert all(any(ch.isalpha() for ch in row["prediction"]) for row in preds), preds
    for row in per:
        assert 0 < row["nli_entail"] < 1 and 0 < row["nli_contra"] < 1 and 0 < row["nli_bidir"] < 1
    # the eval loop inside training, too: the checkpoint was chosen on NLI scores of real text
    ft = "finetune-lora_r4-lr0.01-seed1"
    metrics = json.loads(cl.out("cat", f"{ft}/metrics.json"))
    chosen = [json.loads(line) for line in
              cl.out("cat", f"{ft}/predictions/eval-step{metrics['best_step']}.jsonl").splitlines()]
    assert len(chosen) == 2 and all(row["prediction"].strip() for row in chosen)
    assert metrics["eval_nli_bidir"] > 0 and metrics["eval_nli_bidir"] > metrics["base_eval_nli_bidir"]

    printed = cl.out("print", "llava_nli-smoke")
    assert "score-lora_r4-lr0.01-seed1" in printed and "ready" in printed
    exported = cl.out("export", "worksheets/llava_nli.yaml", "-o", "paper").splitlines()
    assert any(p.endswith("llava_nli_bidir.tex") for p in exported)
    assert "0.01" in (tmp_path / "paper" / "llava_nli_bidir.md").read_text()
    assert cl.out("verify", "paper") == "2 cells verified: every number re-derived from its bundles"

    # a second run is all memo hits
    again = cl("recipe", "run", recipe, "--profile", "smoke")
    assert "6 cells: 6 memo hits, 0 to run" in again.stderr
