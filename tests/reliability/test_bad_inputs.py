"""A catalogue of bad inputs: each ends with exactly one line on stderr that names the problem, no
traceback, exit 2 for what the user typed wrong (usage) or 1 for a failure found while working,
within a timeout; the store passes `fsck` after each group. A few cases (code 0) pin inputs that
look odd but are valid and must keep working.

Each case: (id, argv, expected exit code, a fragment of the expected stderr line (stdout for code 0),
files it needs). Files are written into the group's project directory before the group runs:
str/bytes contents, DIR for a directory, FIFO for a named pipe, ("link", target) for a symlink; a
bytes path is a non-UTF-8 name.
Cases of a group run concurrently in real `codalite` processes (one store per group).
"""

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from codalite import Store, Worker
from codalite.worksheets import model

DIR, FIFO = object(), object()
TIMEOUT = 60
FF = os.fsdecode(b"\xff")  # a non-UTF-8 byte as Python carries it in argv (surrogateescape)


@dataclass
class Case:
    id: str
    argv: list
    code: int
    fragment: str
    files: dict = field(default_factory=dict)
    group: str = "engine"
    env: dict = field(default_factory=dict)
    interrupt_after: float | None = None  # Ctrl-C (SIGINT) this long after its first line of output


CASES = []


def case(group, id, argv, code, fragment, files=None, **kw):
    CASES.append(Case(f"{group}-{id}", list(argv), code, fragment, files or {}, group, **kw))


LONG = "a" * 300
HUGE = "99999999999999999999"  # > 2**63
# --- engine: upload, run, make, cat, info, ls, search, rm, kill, wait, why, mimic ----------------
E = "engine"
case(E, "unknown-command", ["frobnicate"], 2, "No such command")
case(E, "unknown-global-flag", ["--bogus", "ls"], 2, "No such option")
case(E, "upload-no-paths", ["upload"], 2, "Missing argument")
case(E, "upload-missing-path", ["upload", "nope.txt"], 2, "does not exist")
case(E, "upload-empty-path", ["upload", ""], 2, "does not exist")
case(E, "upload-unknown-flag", ["upload", "--bogus", "data"], 2, "No such option")
case(E, "upload-bad-name", ["upload", "data", "-n", "bad name"], 2, "invalid bundle name")
case(E, "upload-empty-name", ["upload", "data", "-n", ""], 2, "invalid bundle name")
case(E, "upload-newline-name", ["upload", "data", "-n", "a\nb"], 2, "invalid bundle name")
case(E, "upload-control-name", ["upload", "data", "-n", "a\x1b[31mred"], 2, "invalid bundle name")
case(E, "upload-long-name", ["upload", "data", "-n", LONG], 2, "longer than")
case(E, "upload-nonutf8-name", ["upload", "data", "-n", "x" + FF], 2, "not valid UTF-8")
case(E, "upload-same-basename", ["upload", "data", "other/data"], 2, "same base name",
     {"other/data/y.txt": "y"})
case(E, "upload-project-root", ["upload", "."], 2, "inside the codalite store")
case(E, "upload-store-itself", ["upload", ".codalite"], 2, "inside the codalite store")
case(E, "upload-inside-store", ["upload", ".codalite/tmp"], 2, "inside the codalite store")
case(E, "upload-link-to-store", ["upload", "storelink", "-L"], 2, "inside the codalite store",
     {"storelink": ("link", ".codalite")})
case(E, "upload-dangling-link", ["upload", "dangling"], 2, "does not exist", {"dangling": ("link", "nowhere")})
case(E, "upload-fifo-top", ["upload", "pipe"], 2, "not a regular file", {"pipe": FIFO})
case(E, "upload-description-newline", ["upload", "data", "-n", "multi", "-d", "line one\nline two"], 0, "0x")
case(E, "run-nothing", ["run"], 2, "give the command")
case(E, "run-only-wait", ["run", "-W"], 2, "give the command")
case(E, "run-forgot-command", [ "run", ":raw", "-W"], 2, "looks like a dependency")
case(E, "run-forgot-command-key", ["run", "data:raw"], 2, "looks like a dependency")
case(E, "run-forgot-command-subpath", ["run", "x:raw/x.txt", "-n", "x"], 2, "looks like a dependency")
case(E, "run-empty-command", ["run", "---"], 2, "has no command")
case(E, "run-blank-command", ["run", "   "], 2, "has no command")
case(E, "run-nonutf8-command", ["run", "echo " + FF], 2, "not valid UTF-8")
case(E, "run-nonutf8-dep", ["run", "x:r" + FF, "true"], 2, "not valid UTF-8")
case(E, "run-unknown-flag", ["run", "true", "--bogus"], 2, "No such option")
case(E, "run-memory-5x", ["run", "true", "--request-memory", "5x"], 2, "malformed size")
case(E, "run-memory-empty-unit", ["run", "true", "--request-memory", "g"], 2, "malformed size")
case(E, "run-memory-overflow", ["run", "true", "--request-memory", "9" * 400], 2, "too large")
case(E, "run-disk-bad", ["run", "true", "--request-disk", "1.5.5g"], 2, "malformed size")
case(E, "run-time-negative", ["run", "true", "--request-time", "-1"], 2, "malformed duration")
case(E, "run-time-bad-unit", ["run", "true", "--request-time", "3q"], 2, "malformed duration")
case(E, "run-time-overflow", ["run", "true", "--request-time", "9" * 400], 2, "too large")
case(E, "run-time-year", ["run", "true", "--request-time", "1y", "-n", "yearlong"], 0, "0x")
case(E, "run-cpus-negative", ["run", "true", "--request-cpus", "-1"], 2, "request_cpus")
case(E, "run-cpus-zero", ["run", "true", "--request-cpus", "0"], 2, "at least 1")
case(E, "run-cpus-word", ["run", "true", "--request-cpus", "many"], 2, "not a valid integer")
case(E, "run-gpus-negative", ["run", "true", "--request-gpus", "-2"], 2, "cannot be negative")
case(E, "run-priority-word", ["run", "true", "--request-priority", "high"], 2, "not a valid integer")
case(E, "run-env-bad-name", ["run", "true", "--env", "BAD NAME=1"], 2, "--env")
case(E, "run-env-empty-name", ["run", "true", "--env", "=x"], 2, "--env")
case(E, "run-bad-name", ["run", "true", "-n", "bad name"], 2, "invalid bundle name")
case(E, "run-long-name", ["run", "true", "-n", LONG], 2, "longer than")
case(E, "run-unknown-dep", ["run", ":nosuch", "true"], 1, "no bundle matches 'nosuch'")
case(E, "run-dep-a-b-c", ["run", "a:b:c", "true"], 2, "is not a dependency")
case(E, "run-dep-colon", ["run", ":", "true"], 2, "is not a dependency")
case(E, "run-dep-bad-hex", ["run", "x:0xzz", "true"], 2, "is not a dependency")
case(E, "run-dep-dotdot", ["run", "x:raw/../../etc", "true"], 2, "'..' is not allowed")
case(E, "run-dep-missing-subpath", ["run", "x:raw/nosuch", "true"], 1, "no such path")
case(E, "run-dep-key-dotdot", ["run", "../x:raw", "true"], 2, "invalid dependency key")
case(E, "run-dep-key-dotdot-inner", ["run", "a/../x:raw", "true"], 2, "invalid dependency key")
case(E, "run-dep-key-abs", ["run", "/abs:raw", "true"], 2, "is not a dependency")
case(E, "run-dep-key-collision", ["run", "x:raw", "x:code", "true"], 2, "used twice")
case(E, "run-dep-implicit-collision", ["run", ":raw", "raw:code", "true"], 2, "used twice")
case(E, "run-dep-failed", ["run", ":bad", "true"], 1, "failed")
case(E, "run-exclude-abs", ["run", "true", "--exclude-patterns", "/etc/passwd"], 2, "exclude pattern")
case(E, "run-exclude-dotdot", ["run", "true", "--exclude-patterns", "../x"], 2, "exclude pattern")
case(E, "run-exclude-dotdot-inner", ["run", "true", "--exclude-patterns", "a/../../bundles/*"], 2,
     "exclude pattern")
case(E, "run-exclude-empty", ["run", "true", "--exclude-patterns", ""], 2, "exclude pattern")
case(E, "run-docker-missing-image", ["run", "true", "--request-docker-image", "nosuch/image:0", "-W"], 1, "ocker")
case(E, "run-fails", ["run", "exit 3", "-n", "fails", "-W"], 1, "Exit code 3")
case(E, "run-remote-unknown", ["run", "true", "--remote", "nosuch"], 2, "no remote named 'nosuch'")
case(E, "run-interrupted", ["run", "sleep 30", "-n", "sleeper", "-W"], 1, "interrupted", interrupt_after=0.5)
case(E, "run-nonutf8-output", ["run", "printf x > \"$(printf '\\377')\"", "-n", "nonutf8out", "-W"], 0, "0x")
case(E, "make-unknown", ["make", "nosuch"], 1, "no bundle matches")
case(E, "make-no-key", ["make", "a:raw", "code"], 2, "needs a key")
case(E, "make-collision", ["make", "a:raw", "a:code"], 2, "used twice")
case(E, "make-dotdot", ["make", "raw/../x"], 2, "'..' is not allowed")
case(E, "make-missing-path", ["make", "x:raw/nosuch"], 1, "no such path")
case(E, "make-empty", ["make", ""], 2, "malformed")
case(E, "cat-caret-zero", ["cat", "^0"], 2, "counts from 1")
case(E, "cat-caret-huge", ["cat", "^" + HUGE], 2, "too large")
case(E, "cat-name-caret-huge", ["cat", "raw^" + HUGE], 2, "too large")
case(E, "cat-caret-far", ["cat", "^9999"], 1, "no bundle matches")
case(E, "cat-caret-negative", ["cat", "^-1"], 2, "malformed bundle reference")
case(E, "cat-head-negative", ["cat", "--head", "-1", "raw/x.txt"], 2, "--head")
case(E, "cat-tail-negative", ["cat", "--tail", "-1", "raw/x.txt"], 2, "--tail")
case(E, "cat-head-word", ["cat", "--head", "ten", "raw/x.txt"], 2, "not a valid integer")
case(E, "cat-missing-path", ["cat", "raw/nosuch"], 1, "no such path")
case(E, "cat-under-file", ["cat", "raw/x.txt/more"], 1, "no such path")
case(E, "cat-dotdot", ["cat", "raw/../../etc/passwd"], 2, "'..' is not allowed")
case(E, "cat-unknown", ["cat", "nosuch"], 1, "no bundle matches")
case(E, "cat-empty", ["cat", ""], 2, "malformed bundle reference")
case(E, "cat-colon", ["cat", ":"], 2, "malformed bundle reference")
case(E, "cat-a-b-c", ["cat", "a:b:c"], 2, "malformed bundle reference")
case(E, "cat-bad-hex", ["cat", "0xzz"], 2, "malformed bundle reference")
case(E, "cat-bare-0x", ["cat", "0x"], 2, "malformed bundle reference")
case(E, "cat-absolute", ["cat", "/etc/passwd"], 2, "malformed bundle reference")
case(E, "cat-unknown-prefix", ["cat", "0x0123"], 1, "no bundle matches")
case(E, "cat-second-of-one", ["cat", "raw^2"], 1, "no bundle matches")
case(E, "cat-long-name", ["cat", "b" * 5000], 1, "no bundle matches")
case(E, "cat-newline", ["cat", "raw\n/x.txt"], 2, "malformed bundle reference")
case(E, "cat-nonutf8", ["cat", "raw/" + FF], 1, "no such path")  # a run may name its files so
case(E, "cat-no-args", ["cat"], 2, "Missing argument")
case(E, "info-unknown", ["info", "nosuch"], 1, "no bundle matches")
case(E, "info-no-args", ["info"], 2, "Missing argument")
case(E, "info-field-missing-value", ["info", "raw", "-f"], 2, "requires an argument")
case(E, "info-caret-zero", ["info", "^0"], 2, "counts from 1")
case(E, "ls-huge", ["ls", "-n", str(10**30)], 2, "--limit")
case(E, "ls-negative", ["ls", "-n", "-1"], 2, "--limit")
case(E, "ls-word", ["ls", "-n", "all"], 2, "not a valid integer")
case(E, "search-limit-huge", ["search", f".limit={10**30}"], 2, ".limit")
case(E, "search-limit-negative", ["search", ".limit=-1"], 2, ".limit")
case(E, "search-offset-huge", ["search", ".offset=" + HUGE], 2, ".offset")
case(E, "search-offset-negative", ["search", ".offset=-5"], 2, ".offset")
case(E, "search-limit-word", ["search", ".limit=ten"], 2, ".limit")
case(E, "search-limit-empty", ["search", ".limit="], 2, ".limit")
case(E, "search-unknown-option", ["search", ".bogus"], 2, "unknown option")
case(E, "search-bad-field", ["search", "bad field=1"], 2, "invalid field")
case(E, "search-any-field-list", ["search", "=x,y"], 2, "one value")  # `=x` alone is CodaLab's any-field search
case(E, "search-bad-date", ["search", ".before=yesterday"], 2, "ISO-8601")
case(E, "search-owner", ["search", "owner=me"], 2, "one user")
case(E, "cat-instance", ["cat", "prod::raw/x.txt"], 2, "CodaLab instance (prod::)")
case(E, "cat-home-worksheet", ["cat", "//raw"], 2, "home worksheet")
case(E, "cat-unknown-worksheet", ["cat", "nosuchws//raw"], 1, "no worksheet matches")
case(E, "run-sugar-unknown", ["run", "echo %nosuch%"], 1, "inline dependency sugar")
case(E, "run-sugar-key-twice", ["run", "echo %k:raw% %k:code%"], 2, "used twice")
case(E, "search-bad-sort-field", ["search", "1abc=.sort"], 2, "invalid field")
case(E, "search-bad-sum-field", ["search", "x;drop=.sum"], 2, "invalid field")
case(E, "search-nonutf8", ["search", "name=" + FF], 2, "not valid UTF-8")
case(E, "search-quote", ["search", "it's"], 0, "uuid")  # a plain word, bound as a parameter
case(E, "kill-ready", ["kill", "raw"], 1, "already ready")
case(E, "kill-unknown", ["kill", "nosuch"], 1, "no bundle matches")
case(E, "rm-has-children", ["rm", "raw"], 1, "dependent bundle")
case(E, "rm-unknown", ["rm", "nosuch"], 1, "no bundle matches")
case(E, "rm-caret-zero", ["rm", "^0"], 2, "counts from 1")
case(E, "wait-unknown", ["wait", "nosuch"], 1, "no bundle matches")
case(E, "wait-failed", ["wait", "bad"], 1, "failed")
case(E, "wait-timeout-word", ["wait", "raw", "--timeout", "soon"], 2, "not a valid float")
case(E, "wait-timeout-nan", ["wait", "raw", "--timeout", "nan"], 2, "--timeout")
case(E, "why-unknown", ["why", "nosuch"], 1, "no bundle matches")
case(E, "mimic-upload", ["mimic", "raw"], 2, "is an upload")
case(E, "mimic-unknown-new", ["mimic", "raw", "nosuch"], 1, "no bundle matches")
case(E, "mimic-depth-word", ["mimic", "raw", "code", "--depth", "deep"], 2, "not a valid integer")
case(E, "mimic-depth-zero", ["mimic", "raw", "code", "--depth", "0"], 2, "--depth")
case(E, "init-under-file", ["init", "somefile/sub"], 1, "somefile", {"somefile": "x"})
case(E, "init-on-file", ["init", "somefile2"], 2, "is a file", {"somefile2": "x"})
case(E, "worker-bad-memory", ["worker", "--memory", "5x"], 2, "malformed size")
case(E, "worker-cpus-word", ["worker", "--cpus", "all"], 2, "not a valid integer")
case(E, "remote-pull-not-uuid", ["pull", "raw", "--remote", "x"], 2, "not a full bundle uuid")
case(E, "remote-push-nothing", ["push", "--remote", "x"], 2, "give bundles")
case(E, "remote-push-unknown", ["push", "raw", "--remote", "nosuch"], 2, "no remote named 'nosuch'")
case(E, "remote-rm-unknown", ["remote", "rm", "nosuch"], 2, "no remote named 'nosuch'")
# (the worker may be one an earlier case started, with the SDK: then it is the image it cannot find)
case(E, "run-docker-sdk-missing", ["run", "true", "--request-docker-image", "nosuch/image:0", "-W"], 1, "docker",
     {"nodocker/docker.py": "raise ImportError('no docker here')"}, env={"PYTHONPATH": "nodocker"})
case(E, "search-too-many-words", ["search", *[f"w{i}" for i in range(1200)]], 2, "too many")
case(E, "home-is-a-file", ["ls"], 1, "no codalite store", {"homefile": "x"}, env={"CODALITE_HOME": "homefile"})
case(E, "init-store-is-a-file", ["init", "initdir"], 1, "initdir", {"initdir/.codalite": "x"})
case(E, "remote-add-no-credentials", ["remote", "add", "x", "http://127.0.0.1:9"], 1, "no credentials")
case(E, "serve-port-too-big", ["serve", "--port", "99999"], 2, "--port")
case(E, "serve-port-negative", ["serve", "--port", "-1"], 2, "--port")
case(E, "serve-port-word", ["serve", "--port", "http"], 2, "--port")
case(E, "recipe-no-subcommand-typo", ["recipe", "plna", "x.yaml"], 2, "No such command")

# Non-UTF-8 file names: codalite stores and hashes them (they are bytes on disk).
NONUTF8_TREE = {b"nonutf8/\xff.txt": "x", b"nonutf8/ok.txt": "y"}
case(E, "upload-nonutf8-file", ["upload", "nonutf8", "-n", "nonutf8"], 0, "0x", NONUTF8_TREE)
case(E, "upload-fifo-inside", ["upload", "withpipe"], 2, "not a regular file",
     {"withpipe/a.txt": "a", "withpipe/pipe": FIFO})
case(E, "upload-nonutf8-top", ["upload", FF + "top.txt", "-n", "top"], 0, "0x", {b"\xfftop.txt": "t"})

# --- no store ------------------------------------------------------------------------------------
N = "nostore"
case(N, "ls", ["ls"], 1, "no codalite store")
case(N, "cat", ["cat", "raw"], 1, "no codalite store")
case(N, "search", ["search", "x"], 1, "no codalite store")
case(N, "fsck", ["fsck"], 1, "no codalite store")
case(N, "wls", ["wls"], 1, "no codalite store")
case(N, "info", ["info", "raw"], 1, "no codalite store")
case(N, "home-missing", ["ls"], 1, "no codalite store", env={"CODALITE_HOME": "/nonexistent/store"})
case(N, "run-bad-memory", ["run", "true", "--request-memory", "5x"], 2, "malformed size")
case(N, "run-bad-dep", ["run", "a:b:c", "true"], 2, "is not a dependency")
case(N, "run-forgot-command", ["run", ":raw"], 2, "looks like a dependency")
case(N, "run-bad-name", ["run", "true", "-n", "bad name"], 2, "invalid bundle name")
case(N, "run-exclude-abs", ["run", "true", "--exclude-patterns", "/x"], 2, "exclude pattern")
case(N, "upload-missing", ["upload", "nope"], 2, "does not exist")
case(N, "upload-bad-name", ["upload", "f.txt", "-n", "bad name"], 2, "invalid bundle name", {"f.txt": "x"})
case(N, "make-bad-target", ["make", "raw/../x"], 2, "'..' is not allowed")
case(N, "recipe-plan", ["recipe", "plan", "nope.yaml"], 2, "no recipe file")
case(N, "recipe-run-bad", ["recipe", "run", "broken.yaml"], 2, "not valid YAML", {"broken.yaml": "a: [1\n"})

# --- a store whose database is not SQLite ------------------------------------------------------
C = "corrupt"
GARBAGE = {".codalite/bundles/": DIR, ".codalite/runs/": DIR, ".codalite/tmp/": DIR,
           ".codalite/codalite.db": b"this is not a database\n" * 100,
           "dbdir/.codalite/bundles/": DIR, "dbdir/.codalite/codalite.db/": DIR, "f.txt": "x"}
case(C, "ls", ["ls"], 1, "database", GARBAGE)
case(C, "upload", ["upload", "f.txt"], 1, "database", GARBAGE)
case(C, "fsck", ["fsck"], 1, "database", GARBAGE)
case(C, "info", ["info", "x"], 1, "database", GARBAGE)
case(C, "run", ["run", "true"], 1, "database", GARBAGE)
case(C, "wls", ["wls"], 1, "database", GARBAGE)
case(C, "db-is-dir", ["ls"], 1, "database", GARBAGE, env={"CODALITE_HOME": "dbdir/.codalite"})

# --- recipes -------------------------------------------------------------------------------------
R = "recipes"
RECIPE_FILES = {"data/x.txt": "1 2 3\n"}


# issue 13: CodaLab's verbs
case(E, "edit-nothing", ["edit", "raw"], 2, "nothing to edit")
case(E, "edit-immutable-field", ["edit", "raw", "-f", "data_size", "1"], 2, "is not editable")
case(E, "edit-bad-name", ["edit", "raw", "-n", "bad name"], 2, "invalid bundle name")
case(E, "edit-freeze", ["edit", "raw", "--freeze"], 2, "CodaLab server feature")
case(E, "edit-unknown", ["edit", "nosuch", "-n", "x"], 1, "no bundle matches")
case(E, "download-unknown", ["download", "nosuch"], 1, "no bundle matches")
case(E, "download-missing-path", ["download", "raw/nope", "-o", "out"], 1, "no such path")
case(E, "cp-refused", ["cp", "raw", "lab::"], 2, "codalite push")
case(E, "work-none", ["work"], 2, "no current worksheet")
case(E, "work-unknown", ["work", "nosuch"], 1, "no worksheet matches")
case(E, "work-instance", ["work", "lab::ws"], 2, "CodaLab server feature")
case(E, "config-unknown", ["config", "nope"], 2, "unknown setting")
case(E, "config-bad-value", ["config", "memo", "maybe"], 2, "on or off")
case(E, "run-no-memo-and-m", ["run", "--no-memo", "-m", "true"], 2, "cannot be combined")
case(E, "mimic-not-upstream", ["mimic", "code", "raw", "code"], 2, "was not made from")
case(E, "macro-missing", ["macro", "nosuchmacro", "raw"], 1, "nosuchmacro-in1")
case(E, "macro-bad-input-name", ["macro", "M", "bad name:raw"], 2, "malformed macro input")
case(E, "rm-data-only", ["rm", "-d", "raw"], 2, "rm -d")
case(E, "detach-no-ws", ["detach", "raw"], 2, "Missing option")
case(E, "help-unknown", ["help", "nope"], 2, "no command 'nope'")
case(E, "gls-refused", ["gls"], 2, "CodaLab server feature")
case(E, "upload-contents-and-path", ["upload", "-c", "x", "data"], 2, "not both", {"data/x.txt": "1"})
case(E, "info-range-huge", ["info", "^1-99999"], 2, "too long")


def recipe_case(id, text, code, fragment, command="plan", extra=()):
    name = f"r_{id}.yaml"
    files = dict(RECIPE_FILES, **{name: text})
    case(R, id, ["recipe", command, *extra, name], code, fragment, files)


GOOD = "name: good\nuploads: {data: data}\ngrid: {lr: [1, 2]}\nsteps:\n  a:\n    command: echo {{ lr }}\n    deps: {d: data}\n"
recipe_case("good", GOOD, 0, "missing")
recipe_case("yaml-syntax", "name: x\nsteps: [1, 2\n", 2, "not valid YAML")
recipe_case("yaml-tab", "name: x\nsteps:\n\ta: 1\n", 2, "not valid YAML")
recipe_case("duplicate-key", GOOD + "grid: {lr: [3]}\n", 2, "duplicated key 'grid'")
recipe_case("duplicate-step", GOOD + "  a:\n    command: echo\n", 2, "duplicated key 'a'")
recipe_case("empty-file", "", 2, "a recipe is a mapping")
recipe_case("a-list", "- 1\n- 2\n", 2, "a recipe is a mapping")
recipe_case("no-steps", "name: x\n", 2, "steps")
recipe_case("unknown-key", GOOD + "bogus: 1\n", 2, "unknown key")
recipe_case("grid-not-list", "name: x\ngrid: {lr: 1}\nsteps: {a: {command: echo}}\n", 2, "grid.lr")
recipe_case("steps-a-list", "name: x\nsteps: [a, b]\n", 2, "steps")
recipe_case("command-a-list", "name: x\nsteps: {a: {command: [1]}}\n", 2, "command")
recipe_case("cpus-word", "name: x\nsteps: {a: {command: echo, request: {cpus: many}}}\n", 2, "cpus")
recipe_case("memory-5x", "name: x\nsteps: {a: {command: echo, request: {memory: 5x}}}\n", 2, "malformed size")
recipe_case("bad-name", "name: bad name\nsteps: {a: {command: echo}}\n", 2, "name")
recipe_case("bad-step-name", "name: x\nsteps: {'a b': {command: echo}}\n", 2, "step names")
recipe_case("cycle", "name: x\nsteps:\n  a: {command: echo, deps: {b: b}}\n  b: {command: echo, deps: {a: a}}\n",
            2, "dependency cycle")
recipe_case("self-cycle", "name: x\nsteps:\n  a: {command: echo, deps: {a: a}}\n", 2, "dependency cycle")
recipe_case("missing-step", "name: x\nsteps:\n  a: {command: echo, deps: {b: nosuch}}\n", 2, "neither a step")
recipe_case("undefined-var", "name: x\nsteps: {a: {command: 'echo {{ nope }}'}}\n", 2, "undefined variable")
recipe_case("template-syntax", "name: x\nsteps: {a: {command: 'echo {{ x'}}\n", 2, "template error")
recipe_case("unknown-filter", "name: x\ngrid: {x: [1]}\nsteps: {a: {command: 'echo {{ x | nosuch }}'}}\n",
            2, "template error")
recipe_case("jinja-divide-zero", "name: x\ngrid: {x: [1]}\nsteps: {a: {command: 'echo {{ x | int / 0 }}'}}\n",
            2, "division by zero")
recipe_case("jinja-undefined-attr", "name: x\ngrid: {x: [1]}\nsteps: {a: {command: 'echo {{ x.nope }}'}}\n",
            2, "nope")
recipe_case("jinja-huge-range", "name: x\ngrid: {x: [1]}\nsteps: {a: {command: '{{ x }}{{ range(10**12) | list }}'}}\n",
            2, "range")
recipe_case("jinja-env-error", "name: x\ngrid: {x: [0]}\nsteps: {a: {command: echo, env: {V: '{{ 1 // x }}'}}}\n",
            2, "division")
recipe_case("jinja-export-cl", "name: x\ngrid: {x: [1]}\nsteps: {a: {command: 'echo {{ x / 0 }}'}}\n",
            2, "division by zero", command="export-cl")
recipe_case("upload-missing", "name: x\nuploads: {d: nosuch}\nsteps: {a: {command: echo}}\n", 2, "no such path")
recipe_case("dep-key-dotdot", "name: x\nuploads: {data: data}\nsteps: {a: {command: echo, deps: {'../x': data}}}\n",
            2, "dependency key")
recipe_case("dep-subpath-dotdot",
            "name: x\nuploads: {data: data}\nsteps: {a: {command: echo, deps: {d: data/../../etc}}}\n", 2, "'..'")
recipe_case("exclude-abs", "name: x\nsteps: {a: {command: echo, exclude_patterns: [/etc/x]}}\n", 2, "exclude pattern")
recipe_case("exclude-dotdot", "name: x\nsteps: {a: {command: echo, exclude_patterns: ['../../bundles/*']}}\n",
            2, "exclude pattern")
recipe_case("env-bad-name", "name: x\nsteps: {a: {command: echo, env: {'BAD NAME': 1}}}\n", 2, "env")
recipe_case("exclude-not-grid", "name: x\ngrid: {a: [1]}\nexclude: [{b: 1}]\nsteps: {s: {command: echo}}\n",
            2, "not a grid variable")
recipe_case("grid-too-big",
            "name: x\ngrid:\n" + "".join(f"  v{i}: [{', '.join(map(str, range(10)))}]\n" for i in range(6))
            + "steps: {a: {command: 'echo {{ v0 }}'}}\n", 2, "1,000,000 cells")
recipe_case("grid-astronomic",
            "name: x\ngrid:\n" + "".join(f"  v{i}: [{', '.join(map(str, range(10)))}]\n" for i in range(40))
            + "steps: {a: {command: 'echo {{ v0 }}'}}\n", 2, "max_cells")
recipe_case("max-cells-word", GOOD + "max_cells: lots\n", 2, "max_cells")
recipe_case("only-unknown", GOOD, 2, "--only", command="run", extra=["--only", "nosuch"])
recipe_case("nested-list", "name: x\ngrid: {x: [1, [2]]}\nsteps: {a: {command: echo}}\n", 2, "grid.x")
recipe_case("step-is-upload", "name: x\nuploads: {data: data}\nsteps: {data: {command: echo}}\n", 2,
            "both an upload and a step")
# nested aliases would expand to 10**8 values if anything copied them: refused by the schema at once
recipe_case("billion-laughs", "name: x\ngrid:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "steps: {}\n",
    2, "grid.b")
recipe_case("remote-unknown", GOOD, 2, "no remote named", command="run", extra=["--remote", "nosuch"])
recipe_case("nonutf8-bytes", b"name: x\nsteps: {a: {command: 'echo \xff'}}\n", 2, "not UTF-8")
case(R, "missing-file", ["recipe", "plan", "nope.yaml"], 2, "no recipe file")
case(R, "is-a-dir", ["recipe", "plan", "data"], 2, "no recipe file", RECIPE_FILES)
case(R, "nonutf8-path", ["recipe", "plan", FF + ".yaml"], 2, "not valid UTF-8")
case(R, "export-cl-unwritable", ["recipe", "export-cl", "r_good.yaml", "-o", "/proc/codalite-nonexistent/x.sh"], 2,
     "cannot write", dict(RECIPE_FILES, **{"r_good.yaml": GOOD}))
case(R, "export-cl-to-dir", ["recipe", "export-cl", "r_good.yaml", "-o", "data"], 2, "cannot write",
     dict(RECIPE_FILES, **{"r_good.yaml": GOOD}))
case(R, "no-such-subcommand", ["recipe", "frob"], 2, "No such command")

# --- worksheets ----------------------------------------------------------------------------------
W = "worksheets"
BAD_MARKUP = (
    "% display table nosuchschema\n{raw}\n% add\n% schema\n% addschema nosuch\n% display \"unclosed\n"
    "% search .limit=" + HUGE + "\n% search .bogus\n% frobnicate\n% display image\n{raw}\n"
    "% display contents /x.txt maxlines=lots\n{raw}\n% schema s\n% add a b c d e\n% display table s\n{raw}\n"
    "{{nosuch-ws}}\n[bad]{nosuch}\n% display graph /x.txt\n{raw}\n\x00\x1b[31m\n"
)
case(W, "new-bad-name", ["new", "bad name"], 2, "invalid bundle name")
case(W, "new-empty-name", ["new", ""], 2, "invalid bundle name")
case(W, "new-exists", ["new", "ws1"], 2, "already exists")
case(W, "new-nonutf8", ["new", "w" + FF], 2, "not valid UTF-8")
case(W, "new-long-name", ["new", LONG], 2, "longer than")
case(W, "add-text-unknown-ws", ["add", "text", "hello", "-w", "nosuch"], 1, "no worksheet matches")
case(W, "add-text-no-ws", ["add", "text", "hello"], 2, "Missing option")
case(W, "add-bundle-unknown", ["add", "bundle", "nosuch", "-w", "ws1"], 1, "no bundle matches")
case(W, "add-bundle-caret-zero", ["add", "bundle", "^0", "-w", "ws1"], 2, "counts from 1")
case(W, "add-text-unknown-bundle-line", ["add", "text", "{nosuch}", "-w", "ws1"], 1, "line 1")
case(W, "add-text-unknown-subworksheet", ["add", "text", "{{nosuch}}", "-w", "ws1"], 1, "no worksheet matches")
case(W, "add-text-nonutf8", ["add", "text", "x" + FF, "-w", "ws1"], 2, "not valid UTF-8")
case(W, "add-no-subcommand-typo", ["add", "txt", "x"], 2, "No such command")
case(W, "wedit-missing-file", ["wedit", "ws1", "-f", "nope.ws"], 2, "does not exist")
case(W, "wedit-dir", ["wedit", "ws1", "-f", "data"], 2, "is a directory", {"data/x.txt": "1"})
case(W, "wedit-nonutf8-content", ["wedit", "ws1", "-f", "latin1.ws"], 2, "not UTF-8", {"latin1.ws": b"caf\xe9\n"})
case(W, "wedit-bad-rename", ["wedit", "ws1", "-f", "ok.ws", "-n", "bad name"], 2, "invalid bundle name",
     {"ok.ws": "hello\n"})
case(W, "wedit-unknown-bundle-line", ["wedit", "ws1", "-f", "dangling.ws"], 1, "line 2",
     {"dangling.ws": "text\n{nosuch}\n"})
case(W, "wedit-unknown-ws", ["wedit", "nosuch", "-f", "ok2.ws"], 1, "no worksheet matches", {"ok2.ws": "x\n"})
case(W, "print-unknown", ["print", "nosuch"], 1, "no worksheet matches")
case(W, "print-missing-file", ["print", "nope.ws"], 2, "no such worksheet file")
case(W, "print-no-worksheet", ["print"], 2, "no current worksheet")
case(W, "print-nonutf8-file", ["print", "latin.ws"], 2, "not UTF-8", {"latin.ws": b"\xff\xfe\n"})
case(W, "print-nonutf8-arg", ["print", "w" + FF], 2, "not valid UTF-8")
case(W, "print-bad-markup", ["print", "bad.ws"], 0, "Error in source line", {"bad.ws": BAD_MARKUP})
case(W, "print-bad-markup-html", ["print", "bad2.ws", "--html", "out.html"], 0, "out.html", {"bad2.ws": BAD_MARKUP})
case(W, "print-html-under-file", ["print", "ws1", "--html", "plainfile/x.html"], 2, "cannot write",
     {"plainfile": "x"})
case(W, "print-html-unwritable", ["print", "ws1", "--html", "/proc/codalite-nonexistent/x.html"], 2, "cannot write")
case(W, "wls-nonutf8", ["wls", FF], 2, "not valid UTF-8")

# --- paper tables --------------------------------------------------------------------------------
P = "paper"
DECL = ("name: nli\nbundles: name=train-%\nrows: {model: /args.json:model}\ncolumns: {rank: /args.json:lora_r}\n"
        "value: /scores.json:nli_entail\nover: {seed: /args.json:seed}\n")


def decl_case(id, text, code, fragment, extra=()):
    name = f"d_{id}.yaml"
    case(P, id, ["export", name, "-o", f"out_{id}", *extra], code, fragment, {name: text})


decl_case("good", DECL, 0, "nli.tex")
decl_case("yaml-syntax", "name: [x\n", 2, "not valid YAML")
decl_case("a-list-of-numbers", "- 1\n- 2\n", 2, "expected a table")
decl_case("scalar", "just words\n", 2, "expected a table")
decl_case("no-bundles", DECL.replace("bundles: name=train-%\n", ""), 2, "bundles")
decl_case("bad-format", DECL + "format: '%q'\n", 2, "printf format")
decl_case("bad-aggregate", DECL + "aggregate: median\n", 2, "aggregate")
decl_case("empty-rows", DECL.replace("rows: {model: /args.json:model}", "rows: {}"), 2, "rows")
decl_case("name-path", DECL.replace("name: nli", "name: ../nli"), 2, "name")
decl_case("duplicate-key", DECL + "value: /scores.json:other\n", 2, "duplicated key 'value'")
decl_case("bad-search", DECL.replace("name=train-%", ".bogus"), 2, "unknown option")
decl_case("search-limit-huge", DECL.replace("name=train-%", f"name=train-% .limit={HUGE}"), 2, ".limit")
decl_case("selects-nothing", DECL.replace("name=train-%", "name=nosuch"), 1, "no")
decl_case("nonutf8", DECL.encode() + b"caption: \xff\n", 2, "not UTF-8")
decl_case("unwritable-out", DECL, 2, "cannot write", extra=["-o", "/proc/codalite-nonexistent/dir"])
case(P, "export-missing", ["export", "nope.yaml"], 2, "does not exist")
case(P, "export-ws-without-block", ["export", "plain.ws"], 2, "no ```paper block", {"plain.ws": "hello\n"})
case(P, "export-out-is-file", ["export", "d_good2.yaml", "-o", "afile"], 2, "cannot write",
     {"d_good2.yaml": DECL, "afile": "x"})


def prov_case(id, content, code=1, fragment="not a provenance file"):
    name = f"p_{id}.provenance.json"
    case(P, "verify-" + id, ["verify", name], code, fragment, {name: content})
    case(P, "trace-" + id, ["trace", name, "tiny", "4"], code, fragment, {name: content})


prov_case("invalid-json", "{not json")
prov_case("empty", "")
prov_case("a-list", "[]")
prov_case("no-declaration", '{"cells": []}')
prov_case("bad-declaration", '{"declaration": {"name": 1}, "cells": []}')
prov_case("cells-not-list", '{"declaration": %s, "cells": 5}' % "DECLJSON")
prov_case("cell-missing-keys", '{"declaration": %s, "cells": [{"row": "tiny"}]}' % "DECLJSON")
prov_case("bundles-wrong-shape", '{"declaration": %s, "cells": [{"row": "tiny", "column": "4", "text": "1", "n": 1, '
          '"bundles": [5]}]}' % "DECLJSON")
prov_case("nonutf8", b'{"declaration": "\xff"}')
case(P, "verify-missing", ["verify", "nope"], 2, "does not exist")
case(P, "verify-empty-dir", ["verify", "emptydir"], 2, "no exported table", {"emptydir/": DIR})
case(P, "verify-gone-bundle", ["verify", "p_gone.provenance.json"], 1, "problem(s)",
     {"p_gone.provenance.json": '{"declaration": DECLJSON, "cells": [{"row": "tiny", "column": "4", "text": "1", '
      '"n": 1, "bundles": [{"uuid": "0x00000000000000000000000000000000", "name": "gone", "content_hash": "b3:0", '
      '"value": 1.0, "inputs": []}]}]}'})
case(P, "verify-edited-csv", ["verify", "edited"], 1, "problem(s)")
case(P, "trace-unknown-table", ["trace", "nosuch", "a", "b"], 2, "no exported table")
case(P, "trace-unknown-cell", ["trace", "paper/nli.provenance.json", "huge", "0"], 2, "has no cell")


# --- running the catalogue -----------------------------------------------------------------------

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("CODALITE_HOME", "CODALAB_"))}
ENV.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", COLUMNS="120")


def write_files(root, files):
    for rel, content in files.items():
        path = os.path.join(os.fsencode(root), os.fsencode(rel))
        if rel.endswith(b"/" if isinstance(rel, bytes) else "/"):
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            continue  # shared by several cases of the group
        if content is FIFO:
            os.mkfifo(path)
        elif isinstance(content, tuple):
            os.symlink(content[1], path)
        else:
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)


def drain(store):
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()


def setup_engine(d):
    write_files(d, {"data/x.txt": "1 2 3\n", "code/train.py": "print('hi')\n", "single.txt": "one\n"})
    store = Store.init(d)
    store.upload([os.path.join(d, "data")], name="raw")
    store.upload([os.path.join(d, "code")], name="code")
    store.run("cat raw/x.txt > out.txt", [("raw", "raw")], name="ok", start_worker=False)
    store.run("exit 3", name="bad", start_worker=False)
    drain(store)
    model.new(store, "ws1")
    store.close()


def setup_paper(d):
    import textwrap

    from codalite import paper
    write_files(d, {"code/train.py": textwrap.dedent("""\
        import json, sys
        model, rank, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        json.dump({'model': model, 'lora_r': rank, 'seed': seed}, open('args.json', 'w'))
        json.dump({'nli_entail': rank / 100 + seed / 1000}, open('scores.json', 'w'))
        """)})
    store = Store.init(d)
    code, _ = store.upload([os.path.join(d, "code")], name="code")
    for rank, seed in ((4, 1), (4, 2), (8, 1)):
        store.run(f"python3 code/train.py tiny {rank} {seed}", [("code", code.uuid)],
                  name=f"train-tiny-r{rank}-s{seed}", start_worker=False)
    drain(store)
    spec = paper.declare.parse_declarations(DECL, "decl")[0]
    for out in ("paper", "edited"):
        paper.export(store, paper.compute(store, spec), os.path.join(d, out), "http://x")
    with open(os.path.join(d, "edited", "nli.csv"), "w") as f:  # edited by hand: not what export wrote
        f.write("row,column,text,n\ntiny,4,0.05,many\n")
    store.close()


def setup_store(d):
    Store.init(d).close()


SETUP = {"engine": setup_engine, "nostore": lambda d: None, "corrupt": lambda d: None,
         "recipes": setup_store, "worksheets": setup_engine, "paper": setup_paper}

def run_case(c, cwd):
    env = dict(ENV, **{k: os.path.join(cwd, v) if v and not v.startswith("/") else v for k, v in c.env.items()})
    start = time.time()
    p = subprocess.Popen([sys.executable, "-m", "codalite", *c.argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = b""
        if c.interrupt_after:  # once it is at work (it printed something), as a user would
            first = p.stdout.readline()
            time.sleep(c.interrupt_after)
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
        out = first + out
        code = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        code = "timeout"
    return {"code": code, "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace"),
            "seconds": time.time() - start}


def run_group(group, d):
    os.makedirs(d)
    SETUP[group](d)
    cases = [c for c in CASES if c.group == group]
    for c in cases:
        files = {k: v.replace("DECLJSON", DECLJSON) if isinstance(v, str) else v for k, v in c.files.items()}
        write_files(d, files)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = dict(zip([c.id for c in cases], pool.map(lambda c: run_case(c, d), cases)))
    after = {}
    if group in ("engine", "worksheets"):  # stop the run the interrupted case left behind
        subprocess.run([sys.executable, "-m", "codalite", "kill", "sleeper"], cwd=d, env=ENV, capture_output=True)
        subprocess.run([sys.executable, "-m", "codalite", "wait", "sleeper", "--timeout", "20"], cwd=d, env=ENV,
                       capture_output=True)
    if group not in ("nostore", "corrupt"):
        after["fsck"] = subprocess.run([sys.executable, "-m", "codalite", "fsck"], cwd=d, env=ENV, capture_output=True,
                                       text=True, timeout=TIMEOUT)
    after["store_created"] = os.path.exists(os.path.join(d, ".codalite"))
    return results, after


DECLJSON = '{"name": "nli", "bundles": ["name=train-%"], "rows": {"model": "/args.json:model"}, ' \
           '"columns": {"rank": "/args.json:lora_r"}, "value": "/scores.json:nli_entail"}'
GROUPS = sorted({c.group for c in CASES})


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad-inputs")
    with concurrent.futures.ThreadPoolExecutor(len(GROUPS)) as pool:
        futures = {g: pool.submit(run_group, g, str(base / g)) for g in GROUPS}
        return {g: f.result() for g, f in futures.items()}


def test_catalogue_is_large_and_unique():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c, outcomes):
    r = outcomes[c.group][0][c.id]
    shown = f"codalite {c.argv!r} -> exit {r['code']}\nstdout: {r['stdout'][-1500:]}\nstderr: {r['stderr'][-3000:]}"
    assert r["code"] != "timeout", shown
    assert "Traceback" not in r["stderr"], shown
    assert r["code"] == c.code, shown
    if c.code == 0:
        assert c.fragment in r["stdout"] + r["stderr"], shown
        return
    lines = r["stderr"].rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("Error: "), shown
    assert c.fragment in lines[0], shown


@pytest.mark.parametrize("group", GROUPS)
def test_store_intact_after_group(group, outcomes):
    _, after = outcomes[group]
    if group == "nostore":  # a refused command must not create a store as a side effect
        assert not after["store_created"]
    elif group != "corrupt":
        fsck = after["fsck"]
        assert fsck.returncode == 0 and "no problems" in fsck.stdout, fsck.stdout + fsck.stderr


@pytest.mark.parametrize("argv", [[], ["recipe"], ["add"], ["remote"]])
def test_a_bare_group_shows_its_help(argv, tmp_path):
    """Not an error message squeezed into one line: the group's help, as click shows it."""
    r = subprocess.run([sys.executable, "-m", "codalite", *argv], cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr
    assert "Usage: codalite" in r.stdout + r.stderr and "Commands:" in r.stdout + r.stderr
