"""CodaLab 1.7.5's own unit-test cases for target parsing and `cl run` sugar, ported to codalite's
implementations (tests/unit/lib/cli_util_test.py in codalab/codalab-worksheets), plus the rules
those functions encode that codalite relies on. Pure functions: this file runs in well under a second.
Search keyword handling is tested on a real store in test_search.py."""

import pytest

from codalite import spec
from codalite.errors import UsageError

URL_TARGET = "https://worksheets.codalab.org::some-worksheet//some-bundle-2.dirname/this/is/a/path.txt"
WS_TARGET = "some-worksheet//some-bundle-2.dirname/this/is/a/path.txt"
B_TARGET = "some-bundle-2.dirname/this/is/a/path.txt"


# cli_util_test.test_parse_key_target, verbatim cases
@pytest.mark.parametrize("text,expected", [
    ("a:b", ("a", "b")),
    (":b", ("", "b")),
    ("b", (None, "b")),
    ("dash-key:" + URL_TARGET, ("dash-key", URL_TARGET)),
    (":" + URL_TARGET, ("", URL_TARGET)),
    ("prod::" + WS_TARGET, (None, "prod::" + WS_TARGET)),
    ("dash-key:" + WS_TARGET, ("dash-key", WS_TARGET)),
    (":" + WS_TARGET, ("", WS_TARGET)),
    (WS_TARGET, (None, WS_TARGET)),
    ("dash-key:" + B_TARGET, ("dash-key", B_TARGET)),
    (":" + B_TARGET, ("", B_TARGET)),
    (B_TARGET, (None, B_TARGET)),
    ("dash-key:some-bundle-2.dirname", ("dash-key", "some-bundle-2.dirname")),
    (":some-bundle-2.dirname", ("", "some-bundle-2.dirname")),
    ("some-bundle-2.dirname", (None, "some-bundle-2.dirname")),
])
def test_split_key_target_codalab_cases(text, expected):
    assert spec.split_key_target(text) == expected


@pytest.mark.parametrize("bad", [":", "a:", ""])
def test_split_key_target_codalab_usage_errors(bad):
    with pytest.raises(UsageError):
        spec.split_key_target(bad)


# cli_util_test.test_parse_target_spec, verbatim cases
@pytest.mark.parametrize("text,expected", [
    (URL_TARGET, ("https://worksheets.codalab.org", "some-worksheet", "some-bundle-2.dirname", "this/is/a/path.txt")),
    (WS_TARGET, (None, "some-worksheet", "some-bundle-2.dirname", "this/is/a/path.txt")),
    (B_TARGET, (None, None, "some-bundle-2.dirname", "this/is/a/path.txt")),
    ("some-bundle-2.dirname", (None, None, "some-bundle-2.dirname", None)),
    ("prod::bundle", ("prod", None, "bundle", None)),
    ("worksheet//bundle", (None, "worksheet", "bundle", None)),
    ("bundle/path", (None, None, "bundle", "path")),
    # the grammar's edges, checked against CodaLab's TARGET_REGEX
    ("", (None, None, None, None)),
    ("b/", (None, None, "b", "")),
    ("a//", (None, None, "a", "/")),
    ("a::", (None, None, "a::", None)),
    ("i::w//b/x/y", ("i", "w", "b", "x/y")),
])
def test_parse_target_spec_codalab_cases(text, expected):
    assert spec.parse_target_spec(text) == expected


# cli_util_test.test_desugar, verbatim cases
def test_desugar_codalab_cases():
    d = spec.desugar_command
    assert d([], "echo hello") == ([], "echo hello")
    assert d([":a-bundle"], "run a-bundle") == (["a-bundle:a-bundle"], "run a-bundle")
    assert d(["a:b"], "echo %b:c%") == (["a:b", "b:c"], "echo b")
    assert d(["a:b"], "echo %c%") == (["a:b", "b2:c"], "echo b2")
    assert d(["a:b"], "echo %:c%") == (["a:b", "c:c"], "echo c")
    assert d(["a:b"], "echo %a:b% %a:b%") == (["a:b"], "echo a a")
    assert d([], "echo %a% %a% %a%") == (["b1:a"], "echo b1 b1 b1")
    for targets, command in [([], "echo %a:b% %a:c%"), ([":b"], "echo %b:c%"), (["b:"], "echo %b:c%"),
                             ([":"], "echo %b:c%"), ([""], "echo %b:c%")]:
        with pytest.raises(UsageError):
            d(targets, command)


def test_desugar_docstring_examples_and_scanning_rules():
    """desugar_command's docstring examples, and where CodaLab's scan stops."""
    d = spec.desugar_command
    assert d([], "%a.txt%") == (["b1:a.txt"], "b1")
    assert d([], "%:a.txt%") == (["a.txt:a.txt"], "a.txt")
    assert d([], "%instance::ws//a.txt%") == (["b1:instance::ws//a.txt"], "b1")
    assert d([], "%corenlp%/run %a.txt%") == (["b1:corenlp", "b2:a.txt"], "b1/run b2")
    assert d([], "%:word-vectors//glove.6B%/vector.txt") == (["glove.6B:word-vectors//glove.6B"], "glove.6B/vector.txt")
    assert d([], "python %code%/train.py --data %data:raw%") == (["b1:code", "data:raw"], "python b1/train.py --data data")
    assert d([], "cat %:b/sub/path%") == (["sub/path:b/sub/path"], "cat sub/path")
    # `%%` (no target between) stops the scan: the rest is kept as typed, later %x% included
    assert d([], "printf '%%d' %a%") == ([], "printf '%%d' %a%")
    assert d([], "echo 100%") == ([], "echo 100%")
    # a line break after the closing % (but not as the last character) stops it too
    assert d([], "echo %a%\necho %b%") == ([], "echo %a%\necho %b%")
    assert d([], "echo %a%\n") == (["b1:a"], "echo b1")


@pytest.mark.parametrize("text,key,base,worksheet,subpath", [
    (":b/sub/path", "sub/path", "b", None, "sub/path"),  # CodaLab keys `:b/sub/path` by the whole subpath
    (":b", "b", "b", None, ""),
    (":ws//b", "b", "b", "ws", ""),
    (":ws//b/x.txt", "x.txt", "b", "ws", "x.txt"),
    ("k:ws//b^2/out", "k", "b", "ws", "out"),
    ("k:0x12ab", "k", "0x12ab", None, ""),
])
def test_key_target_keys_and_worksheets(text, key, base, worksheet, subpath):
    k, t = spec.parse_key_target(text)
    assert (k, t.spec.base, t.worksheet, t.subpath) == (key, base, worksheet, subpath)


def test_worksheet_qualified_target_is_not_read_as_a_path():
    t = spec.parse_target("exp//train/stats.json")
    assert (t.worksheet, t.spec.base, t.subpath) == ("exp", "train", "stats.json")
    assert spec.parse_bundle_ref("exp//^2") == ("exp", spec.BundleSpec("", 2))
    assert spec.parse_bundle_ref("train^3") == (None, spec.BundleSpec("train", 3))


@pytest.mark.parametrize("text", ["prod::b", "prod::ws//b/x", "prod::ws//b", URL_TARGET])
def test_instance_qualified_targets_are_refused_naming_the_feature(text):
    for parse in (spec.parse_target, spec.parse_bundle_ref, lambda t: spec.parse_key_target("k:" + t),
                  lambda t: spec.parse_key_target(":" + t)):
        with pytest.raises(UsageError, match=r"CodaLab instance \(.*::\).*codalite pull"):
            parse(text)


@pytest.mark.parametrize("text", ["//b", "/ //b", "bad ws//b"])
def test_bad_worksheet_parts_are_refused(text):
    with pytest.raises(UsageError):
        spec.parse_target(text)


def test_run_arguments_that_are_dependencies():
    assert spec.looks_like_dependency(":ws//b/x")
    assert spec.looks_like_dependency("prod::b")  # reaches the instance refusal instead of 'not a dependency'
    assert spec.looks_like_dependency("k:b^2/out")
    assert not spec.looks_like_dependency("python:3")
    assert not spec.looks_like_dependency("echo %a%")
