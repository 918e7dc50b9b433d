"""Recipes attacked as a careless user and a buggy experiment would: values that meet in one
bundle name, YAML that reads values as something else, grids that make nothing, templates that
blow up, cells that fail halfway through a submit, a dry run that writes. Real store, real worker,
the real `codalite` program where it matters."""

import os
import time

import pytest

from codalite import Store, recipes
from codalite.errors import UsageError

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(tmp_path, text, name="r.yaml"):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "x.txt").write_text("1 2 3\n")
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def refused(tmp_path, text, fragment):
    with pytest.raises(UsageError) as e:
        recipes.cells(recipes.load(write(tmp_path, text)))
    message = str(e.value)
    assert fragment in message and "\n" not in message, message
    return message


# --- two cells, one bundle name ------------------------------------------------------------------

COLLIDE = """name: c
uploads: {data: data}
grid:
  v: ["a b", "a_b", "é", "ü"]
steps:
  s:
    command: echo {{ v }} > out.txt
    deps: {d: data}
  t:
    command: cat p/out.txt
    deps: {p: s}
"""


def test_values_that_meet_in_one_bundle_name_are_refused(tmp_path):
    """`a b` and `a_b` both named s-va_b: every downstream cell was wired to whichever ran last
    (t for `a b` printed `a_b`), and plan showed all of them done."""
    message = refused(tmp_path, COLLIDE, "would both be named s-va_b")
    assert "v='a b'" in message and "v=a_b" in message


@pytest.mark.parametrize("grid, steps, fragment", [
    # a step's name can be another step's cell name
    ("grid: {x: [1]}", "train: {command: 'echo {{ x }}'}\n  train-x1: {command: echo}", "named train-x1"),
    # an upload's name can be a cell name
    ("grid: {x: [1]}", "s: {command: 'echo {{ x }}'}\n  t: {command: echo, deps: {d: s-x1}}", None),
    # the number 1 and the text '1' render alike
    ("grid: {x: [1, '1']}", "s: {command: 'echo {{ x }}'}", "named s-x1"),
])
def test_names_are_unique_across_steps_uploads_and_types(tmp_path, grid, steps, fragment):
    if fragment is None:  # uploads named like a cell: `s-x1` as an upload
        text = f"name: c\nuploads: {{s-x1: data}}\n{grid}\nsteps:\n  {steps}\n"
        fragment = "upload s-x1 and step s x=1 would both be named s-x1"
    else:
        text = f"name: c\n{grid}\nsteps:\n  {steps}\n"
    refused(tmp_path, text, fragment)


def test_one_true_and_one_point_zero_are_three_cells(tmp_path):
    """1 == 1.0 == True in Python: the grid [1, 1.0, true] kept one cell and dropped two silently."""
    r = recipes.load(write(tmp_path, "name: c\ngrid: {x: [1, 1.0, true]}\nsteps: {s: {command: 'echo {{ x }}'}}\n"))
    assert [(c.name, c.command) for c in recipes.cells(r)] == [
        ("s-x1", "echo 1"), ("s-x1.0", "echo 1.0"), ("s-xTrue", "echo True")]


def test_a_colliding_recipe_stores_nothing(tmp_path, any_cl):
    any_cl.sh(f"mkdir -p data && echo 1 > data/x.txt && cat > c.yaml <<'EOF'\n{COLLIDE}EOF")
    any_cl("init")
    for verb in ("plan", "run", "export-cl"):
        r = any_cl("recipe", verb, "c.yaml", ok=False)
        assert r.returncode == 2 and "would both be named s-va_b" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert any_cl.out("search", ".count") == "0"


# --- YAML that reads a value as something else ---------------------------------------------------

@pytest.mark.parametrize("written, read", [
    ("yes", "true"), ("off", "false"), ("On", "true"), ("010", "8"), ("0x10", "16"), ("1_000", "1000"),
    ("1:30", "90"), ("2024-01-01", "a date"),
])
def test_yaml_11_surprises_are_refused(tmp_path, written, read):
    """`answer: [yes, no]` ran `--answer True`; `seed: [010]` ran `--seed 8`."""
    text = f"name: c\ngrid:\n  v: [a, {written}]\nsteps: {{s: {{command: 'echo {{{{ v }}}}'}}}}\n"
    message = refused(tmp_path, text, f"r.yaml:3: grid.v.1: YAML reads {written} as")
    assert f"quote it ('{written}')" in message
    if read:
        assert f"as {read}" in message


@pytest.mark.parametrize("value, rendered", [
    ("'yes'", "yes"), ("true", "True"), ("'010'", "010"), ("10", "10"), ("0.5", "0.5"), ("1.0e-5", "1e-05"),
    ("-3", "-3"), ("1e3", "1e3"),
])
def test_plain_values_still_load(tmp_path, value, rendered):
    r = recipes.load(write(tmp_path, f"name: c\ngrid: {{v: [{value}]}}\nsteps: {{s: {{command: 'echo {{{{ v }}}}'}}}}\n"))
    assert [c.command for c in recipes.cells(r)] == [f"echo {rendered}"]


def test_the_studies_use_no_misread_values():
    for name in ("shapes_vqa", "llava_nli"):
        recipes.cells(recipes.load(os.path.join(CHECKOUT, "cl_recipes", f"{name}.yaml")))


# --- grids that make nothing, or vary nothing ----------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("grid: {v: []}\nsteps: {s: {command: echo, deps: {}}, t: {command: 'echo {{ v }}'}}",
     "grid.v: 'v' has no values"),
    ("grid: {v: [1, 2]}\nexclude: [{v: 1}, {v: 2}]\nsteps: {s: {command: 'echo {{ v }}'}}",
     "exclude: it removes every cell"),
    ("grid: {v: [1, 2], seed: [1, 2, 3]}\nsteps: {s: {command: 'echo {{ v }}'}}",
     "grid.seed: 'seed' is used by no step"),
    ("grid: {'a-b': [1]}\nsteps: {s: {command: echo}}", "'a-b': variable names use letters"),
    ("vars: {'my var': 1}\nsteps: {s: {command: echo}}", "vars.my var: 'my var': variable names use letters"),
])
def test_grids_that_make_or_vary_nothing_are_refused(tmp_path, text, fragment):
    """An empty list or an exclude of everything planned 0 cells (the variable-free steps too) and
    exited 0; a grid variable no template names ran every seed as the same single cell."""
    refused(tmp_path, f"name: c\n{text}\n", fragment)


# --- templates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("template, fragment", [
    ("{{ 'x' * 10**10 }}", "builds more than"),
    ("{{ [1] * 10**9 }}", "builds more than"),
    ("{{ 10**9 * 'x' }}", "builds more than"),
    ("{{ 3 ** (10**9) }}", "too large a number"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
    ("{{ cycler.__init__.__globals__ }}", "__init__"),
    ("{{ lipsum.__globals__['os'] }}", "__globals__"),
    ("{{ v.__len__() }}", "__len__"),
])
def test_template_bombs_and_escapes_stop_at_once(tmp_path, template, fragment):
    """Jinja folds constants while compiling: `'x' * 10**10` took 10 GB at load, `3 ** 10**9`
    minutes; the sandbox's attribute rules hold (a one-line error, nothing rendered)."""
    t0 = time.monotonic()
    refused(tmp_path, f"name: c\ngrid: {{v: [1]}}\nsteps: {{s: {{command: \"echo {{{{ v }}}} {template}\"}}}}\n",
            fragment)
    assert time.monotonic() - t0 < 5


def test_quote_filter_passes_any_value_to_the_shell_as_written(tmp_path, cl):
    """A value is text in a shell command (as in `cl run`); `{{ v | quote }}` hands it over as one
    word, unexpanded, and the recorded command is exactly what ran."""
    value = "it's $(touch EXPANDED) `x` \"q\" ; {{ v }} \\n é"
    path = write(tmp_path, "name: c\ngrid:\n  v:\n    - |-\n      " + value + "\n"
                 "steps: {s: {command: 'printf %s {{ v | quote }} > out.txt'}}\n")
    [cell] = recipes.cells(recipes.load(path))
    cl("init")
    cl("recipe", "run", "r.yaml")
    store = Store.find(tmp_path)
    b = store.newest(cell.name)
    assert b.state == "ready" and b.command == cell.command
    assert open(store.path_in(b, "out.txt"), encoding="utf-8").read() == value
    assert not list(tmp_path.rglob("EXPANDED"))


# --- a cell that cannot run stops the whole recipe before anything is stored ----------------------

@pytest.mark.parametrize("text, fragment", [
    # the second cell's command renders empty: s-va, s-v and t-va were submitted, then an error,
    # and they stayed staged with no worker and on no worksheet
    ("grid: {v: [a, '']}\nsteps: {s: {command: 'echo {{ v }}', deps: {d: data}}, t: {command: '{{ v }}', deps: {x: s}}}",
     "the command is empty for step t v=''"),
    ("grid: {v: [ok, " + "x" * 300 + "]}\nsteps: {s: {command: 'echo {{ v }}', deps: {d: data}}}",
     "longer than 255 characters; shorten its values"),
    ("grid: {n: [1, 200000]}\nsteps: {s: {command: \"echo {{ 'y' * n }}\", deps: {d: data}}}",
     "a shell command can have at most 131,071"),
    ("grid: {n: [1, 200000]}\nsteps: {s: {command: echo, env: {BIG: \"{{ 'y' * n }}\"}, deps: {d: data}}}",
     "an environment variable can have at most"),
])
def test_a_cell_that_cannot_run_stops_the_recipe_before_anything_is_stored(tmp_path, cl, text, fragment):
    write(tmp_path, f"name: c\nuploads: {{data: data}}\n{text}\n")
    cl("init")
    r = cl("recipe", "run", "r.yaml", ok=False)
    assert r.returncode == 2 and fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert cl.out("search", ".count") == "0"  # no run and no upload


# --- dry run --------------------------------------------------------------------------------------

def test_dry_run_writes_nothing(tmp_path, any_cl):
    """`recipe run --dry-run` in a directory without a store created one (and said so)."""
    any_cl.sh("mkdir -p data && echo 1 > data/x.txt && printf 'name: d\\nuploads: {data: data}\\n"
              "steps: {s: {command: echo, deps: {d: data}}}\\n' > d.yaml")
    r = any_cl("recipe", "run", "--dry-run", "d.yaml", ok=False)
    assert r.returncode == 1 and "no codalite store" in r.stderr and "Initialized" not in r.stderr
    assert any_cl.sh("ls -A").stdout.split() == ["d.yaml", "data"]
    any_cl("init")
    assert "1 missing" in any_cl.out("recipe", "run", "--dry-run", "d.yaml")
    assert any_cl.out("search", ".count") == "0"


def test_no_wait_cells_run_in_the_background(tmp_path, any_cl):
    """`recipe run --no-wait` submitted the cells and started no worker: they stayed staged."""
    any_cl.sh("printf 'name: nw\\ngrid: {s: [1, 2]}\\nsteps:\\n  a: {command: \"echo {{ s }} > o.txt\"}\\n' > nw.yaml")
    any_cl("init")
    r = any_cl("recipe", "run", "--no-wait", "nw.yaml")
    assert "2 to run" in r.stderr
    deadline = time.time() + 60
    while time.time() < deadline and "2 done" not in any_cl.out("recipe", "plan", "nw.yaml"):
        time.sleep(0.5)
    assert any_cl.out("cat", "a-s2/o.txt") == "2"


# --- why a cell is stale ----------------------------------------------------------------------------

WHY = """name: w
uploads: {code: code, data: current}
grid: {s: [1, 2]}
steps:
  a:
    command: cat d/x.txt code/c.txt > o.txt && echo {{ s }} >> o.txt
    deps: {code: code, d: data}
    env: {MODE: fast}
  b:
    command: test {{ s }} != 2 && cat x/o.txt > y.txt
    deps: {x: a}
"""


def test_plan_why_says_what_changed(tmp_path, any_cl):
    """plan said `stale` with no way to learn why short of rerunning; --why names the change (the
    code's content, an env var, an upstream cell that reruns first, a failure)."""
    any_cl.sh("mkdir code v1 v2 && echo c > code/c.txt && echo 1 > v1/x.txt && echo 2 > v2/x.txt && ln -s v1 current")
    any_cl.sh(f"cat > w.yaml <<'EOF'\n{WHY}EOF")
    any_cl("init")
    assert any_cl("recipe", "run", "w.yaml", ok=False).returncode == 1  # b-s2 fails
    assert "3 done, 1 failed" in any_cl.out("recipe", "plan", "w.yaml")
    assert "b-s2:\n  the last try with these inputs" in any_cl.out("recipe", "plan", "--why", "w.yaml")

    any_cl.sh("echo changed > code/c.txt && ln -sfn v2 current")  # an upload that is a link: its target
    any_cl.sh("sed -i 's/MODE: fast/MODE: slow/' w.yaml")
    out = any_cl.out("recipe", "plan", "--why", "w.yaml")
    assert "4 stale" in out, out
    a1 = out.split("a-s1:\n")[1].split("\n\n")[0]
    assert "dependency code: content changed" in a1 and "dependency d: content changed" in a1
    assert "env var MODE: 'fast' -> 'slow'" in a1
    assert "b-s1:\n  its inputs are known once a-s1 is done, which will rerun first" in out
    any_cl("recipe", "run", "w.yaml", "--only", "a")
    assert any_cl.out("cat", "a-s1/o.txt").splitlines() == ["2", "changed", "1"]


def test_an_upload_of_the_store_is_refused_before_hashing_it(tmp_path, cl):
    (tmp_path / "r.yaml").write_text("name: s\nuploads: {all: .}\nsteps: {a: {command: ls, deps: {x: all}}}\n")
    cl("init")
    for verb in ("plan", "run"):
        r = cl("recipe", verb, "r.yaml", ok=False)
        assert r.returncode == 2 and "uploads.all:" in r.stderr and "codalite store" in r.stderr, r.stderr
    assert cl.out("search", ".count") == "0"


# --- export-cl --------------------------------------------------------------------------------------

EXPORT = """name: ex
uploads: {data: data}
grid: {v: ["1.5", "1_5"]}
steps:
  a:
    command: cat "x/f.txt" > o.txt; echo {{ v }} >> o.txt
    deps: {x: "data/sub dir"}
  b:
    command: cat p/o.txt
    deps: {p: a, q: "data/$(touch PWNED)"}
"""

FAKE_CL = """#!/usr/bin/env python3
# records each call; prints a uuid naming the bundle (-n), as `cl upload/run` print its uuid
import json, sys
args = sys.argv[1:]
json.dump(args, open("calls.jsonl", "a")); open("calls.jsonl", "a").write("\\n")
if args[0] in ("upload", "run"):
    print("uuid-of-" + args[args.index("-n") + 1])
"""


def test_export_cl_script_wires_each_cell_to_its_own_parents(tmp_path):
    """Two cells whose names spell one shell variable (a-v1.5, a-v1_5 -> b_a_v1_5): the script ran
    b-v1.5 on a-v1_5's output; a subpath was pasted unquoted (`sub dir` split in two, `$(...)` ran)."""
    import json
    import subprocess

    write(tmp_path, EXPORT)
    (tmp_path / "data" / "sub dir").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "cl").write_text(FAKE_CL)
    (tmp_path / "bin" / "cl").chmod(0o755)
    script = recipes.export_cl(recipes.load(str(tmp_path / "r.yaml")))
    (tmp_path / "run.sh").write_text(script)
    subprocess.run(["bash", "run.sh"], cwd=tmp_path, check=True,
                   env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    runs = {c[-1]: c for c in map(json.loads, (tmp_path / "calls.jsonl").read_text().splitlines()) if c[0] == "run"}
    assert runs["b-v1.5"][1:3] == ["p:uuid-of-a-v1.5", "q:uuid-of-data/$(touch PWNED)"]
    assert runs["b-v1_5"][1] == "p:uuid-of-a-v1_5"
    assert runs["a-v1.5"][1] == "x:uuid-of-data/sub dir"
    assert not (tmp_path / "PWNED").exists()


def test_a_missing_upload_subpath_stops_the_recipe_before_anything_is_stored(tmp_path, cl):
    write(tmp_path, EXPORT)
    (tmp_path / "data" / "sub dir").mkdir()
    cl("init")
    r = cl("recipe", "run", "r.yaml", ok=False)
    assert r.returncode == 2 and "steps.b.deps.q: no such path '$(touch PWNED)' in upload data" in r.stderr
    assert cl.out("search", ".count") == "0"  # the a cells were submitted and left staged, with no worker


def test_upload_names_are_bundle_names(tmp_path):
    refused(tmp_path, "name: u\nuploads: {'x; rm -rf ~': data}\nsteps: {a: {command: echo}}\n",
            "upload names use letters")


@pytest.mark.parametrize("text, fragment", [
    ("worksheet: 'a b'\nsteps: {a: {command: echo}}", "worksheet: 'a b': use letters"),
    ("profiles: {'smoke test': {}}\nsteps: {a: {command: echo}}", "profiles.smoke test: 'smoke test': use letters"),
    ("grid: {lr: [0.1, 0.2]}\nexclude: [{lr: 0.3}]\nsteps: {a: {command: 'echo {{ lr }}'}}",
     "exclude.0.lr: 0.3 is not among lr's values (0.1, 0.2): it excludes nothing"),
])
def test_names_and_excludes_that_would_fail_late_or_do_nothing(tmp_path, text, fragment):
    """A bad worksheet name failed after the cells were submitted (left staged, 'invalid bundle
    name'); an exclude value the grid lacks excluded nothing, silently."""
    refused(tmp_path, f"name: w\n{text}\n", fragment)


def test_a_bad_worksheet_name_stores_nothing(tmp_path, cl):
    write(tmp_path, "name: w\nworksheet: 'a b'\nsteps: {a: {command: echo 1}}\n")
    cl("init")
    r = cl("recipe", "run", "r.yaml", ok=False)
    assert r.returncode == 2 and "worksheet" in r.stderr and cl.out("search", ".count") == "0"


@pytest.mark.parametrize("var", ["OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CODALITE_BUNDLE_UUID"])
def test_env_vars_the_runtime_overrides_are_refused(tmp_path, var):
    """`env: {OMP_NUM_THREADS: 8}` went into the memo key while the run got request.cpus' count."""
    from codalite.recipes.schema import RUNTIME_VARS
    from codalite.runtime import THREAD_VARS

    assert set(THREAD_VARS) <= RUNTIME_VARS  # the runtime's list and the recipe's refusal agree
    refused(tmp_path, f"name: e\nsteps: {{a: {{command: echo, env: {{{var}: '8'}}}}}}\n",
            f"steps.a.env.{var}: {var} is set by codalite for every run")


def test_dry_run_remote_plans_with_the_servers_environment(tmp_path, cl):
    """`--dry-run --remote lab` printed the local plan: cells done here showed `done`, though the
    remote run reruns them on the server (its image is in their memo keys)."""
    from codalite.codalab import remotes

    write(tmp_path, "name: d\ngrid: {s: [1, 2]}\nsteps: {a: {command: 'echo {{ s }}'}}\n")
    cl("init")
    cl("recipe", "run", "r.yaml")
    assert "2 done" in cl.out("recipe", "run", "--dry-run", "r.yaml")
    r = cl("recipe", "run", "--dry-run", "--remote", "nosuch", "r.yaml", ok=False)
    assert r.returncode == 2 and "no remote named 'nosuch'" in r.stderr
    store = Store.find(tmp_path)
    remotes.add(store, "lab", "http://127.0.0.1:9", login=False)
    store.close()
    out = cl.out("recipe", "run", "--dry-run", "--remote", "lab", "r.yaml")
    assert out.splitlines()[-1] == "2 stale", out


def test_a_template_loop_that_does_not_end_stops(tmp_path, monkeypatch):
    """Nested loops of 10^10 steps: `recipe plan` hung (the sandbox caps sizes, not time)."""
    import importlib

    monkeypatch.setattr(importlib.import_module("codalite.recipes.schema"), "RENDER_SECONDS", 1)
    t0 = time.monotonic()
    refused(tmp_path, "name: j\ngrid: {v: [1]}\nsteps: {a: {command: \"echo {{ v }} {% for i in range(100000) %}"
                      "{% for j in range(100000) %}{% endfor %}{% endfor %}\"}}\n", "TemplateLimit: it ran for more")
    assert time.monotonic() - t0 < 5
    assert [c.command for c in recipes.cells(recipes.load(write(tmp_path, "name: k\ngrid: {v: [1, 2]}\nsteps: "
                                                               "{a: {command: 'echo {{ v }}'}}\n")))] == ["echo 1", "echo 2"]


def test_two_recipe_runs_at_once_execute_each_cell_once(tmp_path, cl):
    """Pinned: a second `recipe run` started at the same time reuses the first one's cells (or
    ends them as copies, memo_hit_of), never executes a cell twice; both end ready."""
    import subprocess
    import sys

    write(tmp_path, "name: cc\ngrid: {s: [1, 2, 3]}\nsteps:\n"
                    "  a: {command: 'sleep 1; echo {{ s }} > o.txt', request: {cpus: 1}}\n"
                    "  b: {command: 'cat x/o.txt > y.txt', deps: {x: a}}\n")
    cl("init")
    procs = [subprocess.Popen([sys.executable, "-m", "codalite", "recipe", "run", "r.yaml"], cwd=tmp_path, env=cl.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "6 cells ready" in _, err
    store = Store.find(tmp_path)
    for name in ("a-s1", "a-s2", "a-s3", "b-s1", "b-s2", "b-s3"):
        bundles = store.query("name = ?", (name,))
        assert all(b.state == "ready" for b in bundles)
        assert len([b for b in bundles if not b.metadata.get("memo_hit_of")]) == 1, name
    assert "6 done" in cl.out("recipe", "plan", "r.yaml")


def test_a_boolean_env_value_must_be_quoted(tmp_path):
    """`env: {USE_X: true}` set USE_X=True (Python's spelling), not what the recipe says."""
    refused(tmp_path, "name: e\nsteps: {a: {command: echo, env: {USE_X: true}}}\n",
            "steps.a.env.USE_X: env values are text: quote it ('true')")
    from codalite.recipes.plan import env_vars

    r = recipes.load(write(tmp_path, "name: e\nsteps: {a: {command: echo, env: {USE_X: 'true', N: 3}}}\n"))
    assert env_vars(r, recipes.cells(r)[0]) == {"USE_X": "true", "N": "3"}


def test_a_remote_run_that_cannot_start_stores_nothing(tmp_path, cl):
    """`recipe run --remote` uploaded the recipe's data into the store before it planned and before it
    looked the remote up: an unknown remote, or a template that fails for one cell, was refused after
    a store had been made and the uploads written (the local run plans first)."""
    from codalite.codalab import remotes

    write(tmp_path, "name: u\nuploads: {data: data}\ngrid: {v: [1, 0]}\n"
                    "steps: {a: {command: 'cat d/x.txt; echo {{ 10 // v }}', deps: {d: data}}}\n")
    r = cl("recipe", "run", "--remote", "lab", "r.yaml", ok=False)
    assert r.returncode == 1 and "no codalite store in" in r.stderr, r.stderr  # a remote lives in a store
    assert not (tmp_path / ".codalite").exists()  # none made for a run that cannot start
    cl("init")
    r = cl("recipe", "run", "--remote", "nosuch", "r.yaml", ok=False)
    assert r.returncode == 2 and "no remote named 'nosuch'" in r.stderr, r.stderr
    store = Store.find(tmp_path)
    remotes.add(store, "lab", "http://127.0.0.1:9", login=False)
    r = cl("recipe", "run", "--remote", "lab", "r.yaml", ok=False)
    assert r.returncode == 2 and "ZeroDivisionError" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert store.ls() == []  # the failing template stopped it before the upload


@pytest.mark.parametrize("expr", [
    "{{ 'x'|center(v * 2**28) }}", "{{ 'x'.ljust(v * 2**28) }}", "{{ '%*s' % (v * 2**28, 'x') }}",
    "{{ '{:>{}}'.format('x', v * 2**28) }}", "{{ v }}{{ '%*s' % (2**30, 'x') }}", "{{ 'x'|indent(v * 2**28, true) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(26 + v) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
])
def test_a_template_that_builds_gigabytes_is_refused(tmp_path, monkeypatch, expr):
    """The sandbox capped `*` and `**` only: padding (center, ljust, indent, format widths, `%*s`) and a string
    doubled in a loop built what they were told (2**30 characters here; 10**10 took the machine's memory).
    Now a template gets RENDER_MEMORY more address space than the planner had, then fails as the recipe's
    mistake."""
    import importlib

    monkeypatch.setattr(importlib.import_module("codalite.recipes.schema"), "RENDER_MEMORY", 1 << 28)
    message = refused(tmp_path, f"name: m\ngrid: {{v: [4]}}\nsteps: {{a: {{command: \"echo {expr}\"}}}}\n",
                      "TemplateLimit: it needed more than 256 MiB of memory")
    assert "steps.a.command: the template fails for v=4: TemplateLimit" in message


def test_export_cl_never_replaces_its_recipe_or_writes_into_the_store(tmp_path, cl):
    """`recipe export-cl r.yaml -o r.yaml` truncated the recipe and wrote the script over it (a typo away:
    tab completion offers r.yaml); `-o .codalite/...` wrote into the store. Both are refused, nothing written;
    a script elsewhere is still written whole and executable."""
    write(tmp_path, "name: x\ngrid: {s: [1]}\nsteps: {a: {command: 'echo {{ s }}'}}\n")
    recipe = (tmp_path / "r.yaml").read_text()
    cl("init")
    for target, fragment in (("r.yaml", "the recipe itself"), ("./r.yaml", "the recipe itself"),
                             (".codalite/x.sh", "inside the codalite store")):
        r = cl("recipe", "export-cl", "r.yaml", "-o", target, ok=False)
        assert r.returncode == 2 and fragment in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert (tmp_path / "r.yaml").read_text() == recipe and not (tmp_path / ".codalite" / "x.sh").exists()
    cl("recipe", "export-cl", "r.yaml", "-o", "run.sh")
    assert os.access(tmp_path / "run.sh", os.X_OK) and "cl run" in (tmp_path / "run.sh").read_text()
