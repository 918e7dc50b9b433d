"""A careless user's arguments and files: one line, exit 2, nothing written, never a silent "all" or a
traceback. (0 used to mean "every record" for --train-size / --eval-size / --limit; an empty dev split
turned the generation eval off without a word, so the last step was kept instead of the best.)"""
import json

import pytest

from bundles import finetune, infer, score


@pytest.fixture
def small_data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    rec = {"id": "a", "messages": [{"role": "user", "content": "Hi?"}], "reference": "Hello."}
    for split in ("train", "dev", "test"):
        (d / f"{split}.jsonl").write_text(json.dumps(rec) + "\n")
    return d


def one_line_exit_2(capsys, fn, argv, message):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("flag, value", [("--train-size", "0"), ("--eval-size", "0"), ("--gen-batch-size", "0"),
                                         ("--grad-accum", "0"), ("--max-new-tokens", "0"), ("--max-length", "0"),
                                         ("--save-total-limit", "0"), ("--eval-steps", "-1"), ("--lr", "-1")])
def test_finetune_refuses_zero_or_negative_sizes(small_data, tmp_path, capsys, flag, value):
    one_line_exit_2(capsys, finetune.main, ["--model", str(tmp_path), "--data", str(small_data), "--metrics", "exact",
                                            "--best-metric", "exact", "--out", str(tmp_path / "o"), flag, value],
                    f"{flag} must be >=")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("split, message", [("dev", "dev.jsonl has no records to evaluate on"),
                                            ("train", "train.jsonl has no records")])
def test_finetune_refuses_an_empty_split(tiny_lm, small_data, tmp_path, capsys, split, message):
    (small_data / f"{split}.jsonl").write_text("\n")
    one_line_exit_2(capsys, finetune.main, ["--model", str(tiny_lm), "--data", str(small_data), "--metrics", "exact",
                                            "--best-metric", "exact", "--out", str(tmp_path / "o")], message)
    assert not (tmp_path / "o" / "args.json").exists()


@pytest.mark.parametrize("argv, message", [(["--limit", "0"], "--limit must be >= 1"),
                                           (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1")])
def test_infer_refuses_zero_sizes(small_data, tmp_path, capsys, argv, message):
    one_line_exit_2(capsys, infer.main, ["--model", str(tmp_path), "--data", str(small_data), *argv], message)


def test_infer_refuses_an_empty_split(tiny_lm, small_data, tmp_path, capsys):
    (small_data / "test.jsonl").write_text("")
    one_line_exit_2(capsys, infer.main, ["--model", str(tiny_lm), "--data", str(small_data), "--out", str(tmp_path / "o")],
                    "test.jsonl has no records")
    assert not (tmp_path / "o" / "predictions.jsonl").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "no predictions"),
    (b'{"prediction": 3, "reference": "x"}\n', "must be strings"),
    (b'{"prediction": "a", "reference": null}\n', "must be strings"),
    (b'{"prediction": "a", "reference": "b"}\n{"prediction": "a", "reference": " "}\n', ":2: empty 'reference'"),
    (b'{"prediction": "a", "reference": "b"}\n{"prediction": "a",\n', ":2: not a JSON line"),
    (b'{"prediction": "\xff", "reference": "b"}\n', ":1: not a JSON line"),
    (b'["a", "b"]\n', ":1: expected a JSON object"),
])
def test_score_refuses_bad_prediction_files(tmp_path, capsys, content, message):
    (tmp_path / "predictions.jsonl").write_bytes(content)
    one_line_exit_2(capsys, score.main, ["--predictions", str(tmp_path), "--metrics", "exact", "--out",
                                         str(tmp_path / "o")], message)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe"])
def test_score_refuses_a_baseline_that_is_not_json(tmp_path, capsys, content):
    (tmp_path / "predictions.jsonl").write_text('{"prediction": "a", "reference": "a"}\n')
    (tmp_path / "baseline.json").write_bytes(content)
    one_line_exit_2(capsys, score.main, ["--predictions", str(tmp_path), "--metrics", "exact", "--baseline",
                                         str(tmp_path / "baseline.json"), "--out", str(tmp_path / "o")],
                    "--baseline")
    assert not (tmp_path / "o" / "scores.json").exists()


def test_a_dev_set_smaller_than_the_eval_subset_is_said_and_counted(tiny_lm, small_data, tmp_path, capsys):
    finetune.main(["--model", str(tiny_lm), "--data", str(small_data), "--out", str(tmp_path / "o"), "--lora-r", "2",
                   "--steps", "1", "--batch-size", "1", "--eval-steps", "1", "--no-eval-on-start", "--eval-size", "64",
                   "--max-new-tokens", "2", "--metrics", "exact", "--best-metric", "exact"])
    assert "dev.jsonl has 1 records, fewer than --eval-size 64" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["eval_records"] == 1
