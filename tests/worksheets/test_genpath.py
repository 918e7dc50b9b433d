import datetime

from codalite.worksheets.genpath import apply_func, duration_str, parse_contents, size_str, walk


def test_post_processors_as_codalab():
    assert apply_func("duration", 61) == "1m1s"
    assert apply_func("duration", 3723) == "1h2m"
    assert apply_func("duration", 5.25) == "5.2s"
    assert apply_func("size", 4125) == "4.0k"
    assert apply_func("size", 500) == "500 bytes"
    assert apply_func("%.3f", "0.12345") == "0.123"
    assert apply_func("%d", 3.7) == "3"
    assert apply_func("s/train-/T", "train-0.1") == "T0.1"
    assert apply_func("s/a/b/", "aaa") == "<invalid regex: s/a/b/>"
    assert apply_func("[0:8]", "0x1234567890") == "0x123456"
    assert apply_func("[2:]", "abcdef") == "cdef"
    assert apply_func("duration2", 5) == "<invalid function: duration2>"
    assert apply_func("key uuid | add path /stdout | add text StandardOutput", "0xabc") == \
        {"uuid": "0xabc", "path": "/stdout", "text": "StandardOutput"}
    assert apply_func("%.1f", "not a number") == "not a number"  # a failing function keeps the value
    assert apply_func("%.1f", None) is None
    ts = datetime.datetime(2015, 9, 17, 11, 17, 20).timestamp()
    assert apply_func("date", ts + 0.5) == "2015-09-17 11:17:20"
    assert apply_func("date | [0:4]", ts) == "2015"


def test_duration_and_size_edges():
    assert duration_str(100) == "1m40s" and duration_str(10000) == "2h46m"
    assert duration_str(90000) == "1d1h" and duration_str(400 * 86400) == "1y35d"
    assert size_str(1024 ** 3 * 3) == "3g"


def test_file_formats_and_key_walks():
    assert parse_contents(["acc\t0.9\n", "loss\t0.1\n"]) == {"acc": "0.9", "loss": "0.1"}
    assert parse_contents(['{"a": {"b": [1, 2]}}']) == {"a": {"b": [1, 2]}}
    assert parse_contents(["model:\n", "  layers: 2\n"]) == {"model": {"layers": 2}}
    assert parse_contents(["just: text: here\n"]) == "just: text: here\n"
    assert parse_contents([]) == ""
    assert walk({"a": {"b": [1, 2]}}, "a/b/1") == 2
    assert walk({"a": {"b": [1, 2]}}, "a/b/7") is None
    assert walk({"a": 1}, "a/x") is None


def test_a_format_that_would_build_gigabytes_is_named_not_built():
    """`%.1000000000f` or `%1000000000d` in a worksheet (one pulled from a server, rendered by `serve`) built
    that many characters per cell; widths and precisions over 1,000 are the worksheet's mistake now."""
    for fmt in ("%.400000000f", "%400000000d", "%-0400000000.2f", "%.99999999999999999999e"):
        assert apply_func(fmt, 1.5) == f"<invalid format: {fmt}: a width or precision over 1,000>"
        assert apply_func(f"ci {fmt}", [0.0, 1.0]).startswith("<ci: invalid format")
    assert apply_func("%8.2f%%", 1.5) == "    1.50%" and apply_func("%1000.0f", 1.0) == " " * 999 + "1"


def test_a_regex_that_backtracks_forever_is_named_not_run_forever():
    """`s/(a|aa)+$/x` over 40 a's and a `!` backtracked for hours (Python's re has no time limit), holding
    `print` or a `serve` thread; it now stops after REGEX_SECONDS and says so in the cell."""
    import subprocess
    import sys

    code = ("from codalite.worksheets.genpath import apply_func\n"
            "print(apply_func('s/(a|aa)+$/x', 'a' * 40 + '!'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "<s/(a|aa)+$/x: the regex ran for more than 1 s>", r.stderr
    assert apply_func(r"s/(.+)\/(.+)/\2\/\1", "ab/cd") == "cd/ab"  # the escaped / still splits nothing


def test_a_yaml_file_whose_aliases_expand_to_billions_is_not_expanded(tmp_path):
    """Ten lines of YAML anchors (`b: &b [*a, *a, ...]`, ten levels) parse at once into shared lists that
    showing the value expands to 10**10 items: a run's output (or a pulled bundle's) took `print`'s or
    `serve`'s memory. Past MAX_EXPANDED items the file is shown as a one-line note; anchors in an
    ordinary config (`<<: *defaults`) still read."""
    from codalite.worksheets.genpath import MAX_EXPANDED

    levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]\n']
    for prev, name in zip("abcdefghi", "bcdefghij"):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n")
    info = parse_contents(levels)
    assert isinstance(info, str) and info.startswith("<YAML whose aliases expand past") and str(MAX_EXPANDED) in \
        info.replace(",", "")
    assert parse_contents(["base: &b {lr: 0.1, bs: 8}\n", "run:\n", "  <<: *b\n", "  bs: 16\n"]) == \
        {"base": {"lr": 0.1, "bs": 8}, "run": {"lr": 0.1, "bs": 16}}
    assert parse_contents(["a: &a [*a]\n"]).startswith("<YAML whose aliases")  # a list that holds itself
