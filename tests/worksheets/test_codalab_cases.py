"""CodaLab 1.7.5's own unit-test cases for the worksheet functions, ported verbatim
(tests/unit/lib/formatting_test.py, tests/unit/lib/worksheet_util_test.py). A `size` post-processor
is CodaLab's size_str(x, include_bytes=True), so those are the cases kept for `size_str`.
tests/codalab/test_differential.py compares the same functions with CodaLab's over many more values."""

import pytest

from codalite.worksheets.genpath import apply_func, duration_str, size_str


@pytest.mark.parametrize("size, text", [
    (99.01, "99.0 bytes"), (700.3, "700 bytes"),                 # bytes
    (3500, "3.4k"), (400000, "390k"),                            # kilobytes
    (4000000, "3.8m"), (400000000, "381m"),                      # megabytes
    (4000000000, "3.7g"), (350000000000, "325g"),                # gigabytes
    (3500000000000, "3.2t"), (450000000000000, "409t"),          # terabytes
])
def test_size_str_codalab_cases(size, text):
    assert size_str(size) == text


def test_apply_func_codalab_cases():
    assert apply_func(None, "hello") == "hello"
    assert apply_func("[1:2]", "hello") == "e"
    assert apply_func("[:2]", "hello") == "he"
    assert apply_func("[2:]", "hello") == "llo"
    assert apply_func("date", "1427467247")[:10] == "2015-03-27"  # CodaLab's test leaves out the time (zones)
    assert apply_func("duration", "63") == "1m3s"
    assert apply_func("size", "1024") == "1k"
    assert apply_func("s/a/b", "aa") == "bb"
    assert apply_func(r"s/(.+)\/(.+)/\2\/\1", "3/10") == "10/3"
    assert apply_func("%.2f", "1.2345") == "1.23"


def test_duration_str_codalab_docstring_cases():
    assert duration_str(100) == "1m40s" and duration_str(10000) == "2h46m"  # formatting.duration_str's examples
