"""`bundles.models hub` loads a checkpoint by the architecture its config names, so an NLI classifier
keeps its head; the scorer refuses an NLI folder without one; the download cache stays out of the bundle."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundles import models
from bundles.metrics import NLIScorer
from tests.bundles.conftest import tiny_nli

ROOT = Path(__file__).resolve().parents[2]
PAIRS = (["The shape is blue. It is a circle.", "A red square."], ["The shape is blue.", "It is green."])
MODEL_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "args.json",
               "generation_config.json", "processor_config.json", "chat_template.jinja", "special_tokens_map.json"}


def hub(name, out):
    """The hub step as a run executes it: its own process, HOME = the run directory, offline image env."""
    out.mkdir()
    env = dict(os.environ, HOME=str(out), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.pop("HF_HOME", None)
    r = subprocess.run([sys.executable, "-m", "bundles.models", "hub", "--name", str(name), "--out", "."],
                       cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module")
def roberta_mnli(tmp_path_factory):
    out = tmp_path_factory.mktemp("roberta_mnli")
    models.main(["tiny-nli", "--out", str(out), "--hidden-size", "32", "--layers", "1", "--heads", "2"])
    return out


def scores(path):
    return NLIScorer(str(path), device="cpu")(*PAIRS)


@pytest.mark.parametrize("shape", ["roberta", "bert"])
def test_hub_keeps_the_nli_classification_head(tmp_path, roberta_mnli, shape):
    src = roberta_mnli if shape == "roberta" else tiny_nli(
        tmp_path / "bert_mnli", {0: "contradiction", 1: "entailment", 2: "neutral"})
    stdout = hub(src, tmp_path / "bundle")
    cfg = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert cfg["architectures"][0].endswith("ForSequenceClassification")
    # the saved head is the checkpoint's own: the scores are identical, not those of a random head
    for k, v in scores(src).items():
        assert scores(tmp_path / "bundle")[k] == pytest.approx(v, abs=1e-6), k
    # the download cache lived outside the run directory (HOME) and the bundle holds only the model
    cache = stdout.split("cache ", 1)[1].split()[0]
    assert not Path(cache).resolve().is_relative_to((tmp_path / "bundle").resolve())
    assert not Path(cache).exists(), "the temporary cache is removed after saving"
    assert {p.name for p in (tmp_path / "bundle").iterdir()} <= MODEL_FILES


def test_hub_loads_llava_as_llava(tmp_path, tiny_vlm):
    hub(tiny_vlm, tmp_path / "bundle")
    cfg = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert cfg["architectures"] == ["LlavaForConditionalGeneration"]
    assert (tmp_path / "bundle" / "processor_config.json").exists()


def test_scorer_refuses_nli_without_head(tmp_path, roberta_mnli, capsys):
    """What the old hub step saved: roberta-large-mnli as a causal LM (labels kept, head gone)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    headless = tmp_path / "headless"
    AutoModelForCausalLM.from_pretrained(roberta_mnli).save_pretrained(headless)
    AutoTokenizer.from_pretrained(roberta_mnli).save_pretrained(headless)
    with pytest.raises(ValueError, match="no trained classification head"):
        NLIScorer(str(headless))
    preds = tmp_path / "predictions.jsonl"
    preds.write_text(json.dumps({"prediction": "It is red.", "reference": "It is blue."}) + "\n")
    from bundles import score
    with pytest.raises(SystemExit) as e:
        score.main(["--predictions", str(preds), "--nli-model", str(headless), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "classification head" in err


def test_scorer_refuses_nli_without_entailment_labels(tmp_path):
    bad = tiny_nli(tmp_path / "bad", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ValueError, match="entail"):
        NLIScorer(str(bad))


def test_hub_cache_outside_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / ".cache" / "huggingface"))  # what HOME=run dir gives
    env, temporary = models.hub_environment(tmp_path)
    assert temporary and not Path(env["HF_HOME"]).is_relative_to(tmp_path)
    assert env["HF_HUB_OFFLINE"] == "0" and Path(env["HF_HUB_CACHE"]).parent == Path(env["HF_HOME"])
    os.rmdir(env["HF_HOME"])
    shared = tmp_path.parent / "shared-hf"  # a cache the worker provides outside the run is kept
    monkeypatch.setenv("HF_HOME", str(shared))
    assert models.hub_environment(tmp_path) == ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
                                                 "HF_HOME": str(shared), "HF_HUB_CACHE": str(shared / "hub")}, False)
