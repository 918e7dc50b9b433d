"""worksheets.model._like, MySQL's LIKE for worksheet names and titles: the same answers as the one
regex it was (`.*` per `%`), without that regex's backtracking."""

import random
import re
import subprocess
import sys

import pytest

from codalite.worksheets.model import _like

pytestmark = pytest.mark.fast


def like_by_one_regex(pattern, text):
    """The definition: `%` is `.*`, `_` is `.`, a backslash escapes, any case."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), text, re.IGNORECASE | re.DOTALL) is not None


def test_same_answers_as_the_regex_on_random_patterns():
    rng = random.Random(7)
    for _ in range(20_000):
        pattern = "".join(rng.choice("aAb%%_\\.\n") for _ in range(rng.randint(0, 8)))
        text = "".join(rng.choice("aAb%_\\.\n") for _ in range(rng.randint(0, 10)))
        assert _like(pattern, text) == like_by_one_regex(pattern, text), (pattern, text)


def test_many_wildcards_do_not_backtrack():
    """`%a%a%a%a%a%a%a%b` over a 60-character name took minutes (one regex, `.*` per `%`); 30 wildcards over
    a 255-character name would take longer than the universe has. A subprocess, so a hang fails the test."""
    code = ("from codalite.worksheets.model import _like\n"
            "print(_like('%a' * 30 + '%b', 'a' * 255), _like('%a' * 30 + '%', 'a' * 255))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["False", "True"], r.stderr
