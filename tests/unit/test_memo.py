"""Memo keys (what makes two runs the same) and `memo.explain` (why they are not)."""

import pytest

from codalite import memo

pytestmark = pytest.mark.fast


def inputs(**change):
    base = dict(bundle_type="run", command="python train.py", deps=[("data", "h" * 64, ""), ("code", "c" * 64, "")],
                environment="py:abc", env_vars={"A": "1", "B": "2"}, exclude_patterns=["ckpt", "logs"])
    base.update(change)
    return memo.memo_inputs(**base)


def test_the_key_ignores_the_order_of_dependencies_env_vars_and_patterns():
    a = inputs()
    b = inputs(deps=[("code", "c" * 64, ""), ("data", "h" * 64, "")], env_vars={"B": "2", "A": "1"},
               exclude_patterns=["logs", "ckpt"])
    assert memo.canonical(a) == memo.canonical(b) and memo.memo_key(a) == memo.memo_key(b)
    assert len(memo.memo_key(a)) == 64  # BLAKE3 hex


@pytest.mark.parametrize("change", [
    dict(command="python train.py --lr 1"), dict(bundle_type="make"), dict(environment="docker:img"),
    dict(deps=[("data", "x" * 64, ""), ("code", "c" * 64, "")]), dict(deps=[("data", "h" * 64, "sub"), ("code", "c" * 64, "")]),
    dict(env_vars={"A": "1"}), dict(exclude_patterns=[]),
])
def test_each_input_changes_the_key(change):
    assert memo.memo_key(inputs(**change)) != memo.memo_key(inputs())


def test_the_key_is_unicode_exact():
    assert memo.canonical({"b": "é", "a": 1}) == '{"a":1,"b":"é"}'
    assert memo.memo_key(inputs(command="echo é")) != memo.memo_key(inputs(command="echo e"))


def no_packages(fingerprint):
    return None


def test_explain_says_nothing_for_the_same_inputs():
    assert memo.explain(inputs(), inputs(), no_packages) == []


def test_explain_names_every_difference_in_order():
    old = inputs()
    new = inputs(command="python train.py --lr 1", environment="py:def", env_vars={"A": "2", "C": "3"},
                 exclude_patterns=["ckpt"],
                 deps=[("data", "x" * 64, ""), ("code", "c" * 64, "src"), ("extra", "e" * 64, "")])
    old["dependencies"].append(["gone", "g" * 64, ""])
    assert memo.explain(new, old, no_packages) == [
        "command changed: 'python train.py' -> 'python train.py --lr 1'",
        "dependency code: path changed '' -> 'src'",
        "dependency data: content changed hhhhhhhhhhhhhhh -> xxxxxxxxxxxxxxx",
        "dependency extra added",
        "dependency gone removed",
        "environment changed: py:abc -> py:def",
        "env var A: '1' -> '2'",
        "env var B: '2' -> None",
        "env var C: None -> '3'",
        "exclude patterns: ['ckpt', 'logs'] -> ['ckpt']",
    ]


def test_explain_lists_package_changes_interpreter_first_and_cuts_long_lists():
    packages = {"py:old": {"python": "3.11.2", "numpy": "1.26", "torch": "2.1", **{f"p{i}": "1" for i in range(20)}},
                "py:new": {"python": "3.12.1", "numpy": "2.0", "scipy": "1.15", **{f"p{i}": "2" for i in range(20)}}}
    lines = memo.explain(inputs(environment="py:new"), inputs(environment="py:old"), packages.get)
    assert lines[0] == "environment changed: py:old -> py:new"
    assert lines[1] == "  python: 3.11.2 -> 3.12.1"  # the interpreter first, then by name
    assert lines[2] == "  numpy: 1.26 -> 2.0"
    assert len(lines) == 1 + 12 + 1 and lines[-1] == "  ... and 12 more"  # 24 differ: 12 shown
    # an environment it does not know (a docker image): only the headline
    assert memo.explain(inputs(environment="docker:x"), inputs(), packages.get) == ["environment changed: py:abc -> docker:x"]


def test_packages_and_fingerprint(tmp_path):
    (tmp_path / "Foo_Bar-1.2.dist-info").mkdir()
    (tmp_path / "baz-0.1.egg-info").mkdir()
    (tmp_path / "other").mkdir()
    pkgs = memo.packages_in([str(tmp_path)])
    assert pkgs == {"foo-bar": "1.2", "baz": "0.1"}
    fp = memo.fingerprint("3.12.1 (main, ...)", pkgs)
    assert fp.startswith("py:") and fp == memo.fingerprint("3.12.1 other build", dict(reversed(pkgs.items())))
    assert fp != memo.fingerprint("3.12.2", pkgs)


def earlier(state, memo_inputs):
    from codalite.bundle import Bundle

    return Bundle(id=1, uuid="0x" + "e" * 32, bundle_type="run", command="c", state=state, is_dir=True,
                  content_hash=None, memo_key=None, metadata={"name": "train"}, runspec={"memo_inputs": memo_inputs})


def test_why_a_run_was_not_a_memo_hit():
    assert memo.why(None, None, no_packages) == ["this bundle's memo key is not known yet: a dependency has not finished"]
    assert memo.why(inputs(), None, no_packages) == [
        "no earlier run with this name or command: this is the first of its kind"]
    assert memo.why(inputs(command="x"), earlier("ready", inputs()), no_packages) == [
        "command changed: 'python train.py' -> 'x'"]
    uuid = "0x" + "e" * 32
    assert memo.why(inputs(), earlier("ready", inputs()), no_packages) == [
        f"same memo key as {uuid} (ready): it was rerun with --force"]
    assert memo.why(inputs(), earlier("failed", inputs()), no_packages) == [
        f"same memo key as {uuid} (failed): it was rerun because that one did not finish ready"]
