import pytest

from codalite import memo, spec
from codalite.errors import UsageError


def test_uuid_format():
    u = spec.new_uuid()
    assert spec.UUID_RE.match(u) and u != spec.new_uuid()


@pytest.mark.parametrize("text,key,base,index,subpath", [
    ("data:raw", "data", "raw", 1, ""),
    (":code", "code", "code", 1, ""),
    ("w:glove/vectors.txt", "w", "glove", 1, "vectors.txt"),
    (":prep/out/train.jsonl", "out/train.jsonl", "prep", 1, "out/train.jsonl"),  # CodaLab: the whole subpath
    ("m:train^2", "m", "train", 2, ""),
    ("x:^", "x", "", 1, ""),
    ("x:^3/stdout", "x", "", 3, "stdout"),
    ("a/b:0xabc", "a/b", "0xabc", 1, ""),
])
def test_key_targets(text, key, base, index, subpath):
    k, t = spec.parse_key_target(text)
    assert (k, t.spec.base, t.spec.index, t.subpath) == (key, base, index, subpath)


@pytest.mark.parametrize("bad", ["nocolon", "k:", "k:9bad", "k:a/../../etc", "bad key:x", "../x:y"])
def test_bad_targets(bad):
    with pytest.raises(UsageError):
        spec.parse_key_target(bad)


def test_sizes_and_durations():
    assert spec.parse_size("2g") == 2 * 1024**3
    assert spec.parse_size("500m") == 500 * 1024**2
    assert spec.parse_size("1024") == 1024
    assert spec.parse_duration("90") == 90
    assert spec.parse_duration("2h") == 7200
    assert spec.parse_duration("1.5d") == 1.5 * 86400
    for bad in ("2x", "lots", "-1g"):
        with pytest.raises(UsageError):
            spec.parse_size(bad)
    with pytest.raises(UsageError):
        spec.parse_duration("soon")


def test_dependency_or_command():
    assert spec.looks_like_dependency(":code")
    assert spec.looks_like_dependency("data:raw/x")
    assert not spec.looks_like_dependency("python train.py")
    assert not spec.looks_like_dependency("echo")


def test_memo_key_is_pinned():
    """The canonical serialization is a contract: changing it silently invalidates every memo."""
    inputs = memo.memo_inputs("run", "python train.py", [("data", "b3:00ff", ""), ("code", "b3:aa", "src")],
                              "py:0123", {"SEED": "1"}, [])
    assert memo.memo_key(inputs) == "55245c19ddb51884c8441803b170935ae3d85dcbed11ba4e9691c37aa01f33b5"
