"""Fixtures: a small prepared easy-vqa folder and tiny models built in code (seconds, no hub)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


from model_helpers import build, save_varied, tiny_nli  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds the real SmolLM2 VLM from its GGUF (~1 min)")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    from bundles import prepare
    out = tmp_path_factory.mktemp("data")
    prepare.main(["easy-vqa", "--out", str(out), "--train-size", "96", "--dev-size", "24", "--test-size", "24",
                  "--dev-images", "50"])
    return out


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory, data_dir):
    return build("tiny-vlm", tmp_path_factory.mktemp("tiny_vlm"), data_dir)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, data_dir):
    return build("tiny-lm", tmp_path_factory.mktemp("tiny_lm"), data_dir)


@pytest.fixture(scope="session")
def nli_model(tmp_path_factory):
    return tiny_nli(tmp_path_factory.mktemp("nli"), {0: "contradiction", 1: "entailment", 2: "neutral"})


@pytest.fixture(scope="session")
def varied_vlm(tiny_vlm, tmp_path_factory):
    """The tiny VLM with large random weights (answers that differ between prompts), saved."""
    return save_varied(tiny_vlm, tmp_path_factory.mktemp("varied_vlm"))


@pytest.fixture(scope="session")
def varied_lm(tiny_lm, tmp_path_factory):
    """The tiny LM with large random weights, saved."""
    return save_varied(tiny_lm, tmp_path_factory.mktemp("varied_lm"))
