"""No-op recipe benchmark: `plan` + `run` of a 1,000-cell recipe whose cells are all done,
next to the same pipeline as a DVC matrix (`dvc repro`) and a Snakemake workflow.

    python bench/bench_recipes.py [--cells 1000] [--repeat 3] [--no-peers]

DVC and Snakemake are installed into bench/work/peers-venv (PyPI) on first use. Their 1,000 done
cells are made by writing the outputs and recording them with the peer's own command (`dvc commit`,
`snakemake --touch`); their own first runs are timed on --peer-first-cells. Writes
bench/results/recipes.json with medians and the ratios peer / codalite (higher: codalite faster).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work", "recipes")
PEERS = os.path.join(HERE, "work", "peers-venv")
RESULTS = os.path.join(HERE, "results", "recipes.json")
CODALITE = os.path.join(os.path.dirname(sys.executable), "codalite")
PEER_PINS = ["dvc==3.67.1", "snakemake==9.27.1"]


def sh(cmd, cwd, env=None):
    r = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{cmd} failed in {cwd}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def timed(cmd, cwd, repeat, env=None):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        sh(cmd, cwd, env)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def grid(cells):
    a = 10
    return list(range(a)), list(range(cells // a))


def codalite_case(cells, repeat):
    d = os.path.join(WORK, "codalite")
    os.makedirs(os.path.join(d, "cl_recipes"))
    xs, ys = grid(cells)
    with open(os.path.join(d, "cl_recipes", "grid.yaml"), "w") as f:
        f.write(f"name: grid\ngrid:\n  a: {xs}\n  b: {ys}\nsteps:\n"
                "  cell:\n    command: echo {{ a }} {{ b }} > out.txt\n")
    sh([CODALITE, "init"], d)
    t = time.perf_counter()
    sh([CODALITE, "recipe", "run", "cl_recipes/grid.yaml"], d)
    first = time.perf_counter() - t
    plan = timed([CODALITE, "recipe", "plan", "cl_recipes/grid.yaml"], d, repeat)
    run = timed([CODALITE, "recipe", "run", "cl_recipes/grid.yaml"], d, repeat)
    return {"first_run_s": first, "noop_plan_s": plan, "noop_run_s": run, "noop_plan_plus_run_s": plan + run}


def peers_env():
    if not os.path.exists(os.path.join(PEERS, "bin", "dvc")):
        sh([sys.executable, "-m", "venv", PEERS], HERE)
        sh([os.path.join(PEERS, "bin", "pip"), "install", "-q", *PEER_PINS], HERE)
    return dict(os.environ, PATH=os.path.join(PEERS, "bin") + os.pathsep + os.environ["PATH"])


def write_outputs(d, cells):
    """The cells' outputs, written directly: a peer's own first run of 1,000 cells takes too long here
    (DVC 3.67 had done ~800 stages after 13 min), and only its no-op check is compared."""
    xs, ys = grid(cells)
    for a in xs:
        for b in ys:
            with open(os.path.join(d, f"out-{a}-{b}.txt"), "w") as f:
                f.write(f"{a} {b}\n")


def project(name, cells, filename, text):
    """A fresh folder holding a peer's pipeline file, text(xs, ys), for a grid of `cells`."""
    d = os.path.join(WORK, name)
    os.makedirs(d)
    with open(os.path.join(d, filename), "w") as f:
        f.write(text(*grid(cells)))
    return d


def dvc_case(cells, repeat, env, first_cells):
    def make(name, n):
        d = project(name, n, "dvc.yaml", lambda xs, ys: (
            f"stages:\n  cell:\n    matrix:\n      a: {xs}\n      b: {ys}\n"
            "    cmd: echo ${item.a} ${item.b} > out-${item.a}-${item.b}.txt\n"
            "    outs:\n      - out-${item.a}-${item.b}.txt\n"))
        sh("git init -q && dvc init -q", d, env)
        return d
    first = timed("dvc repro -q", make("dvc-first", first_cells), 1, env)
    d = make("dvc", cells)
    write_outputs(d, cells)
    commit = timed("dvc commit -f -q", d, 1, env)  # records every stage as done in dvc.lock (hashes, caches)
    if "up to date" not in sh("dvc status", d, env).stdout:
        raise SystemExit("dvc: the committed matrix is not up to date")
    return {"first_run_cells": first_cells, "first_run_s": first, "commit_done_s": commit,
            "noop_repro_s": timed("dvc repro -q", d, repeat, env), "noop_status_s": timed("dvc status -q", d, repeat, env)}


def snakemake_case(cells, repeat, env, first_cells):
    def make(name, n):
        return project(name, n, "Snakefile", lambda xs, ys: (
            f"A = {xs}\nB = {ys}\n"
            "rule all:\n    input: expand('out-{a}-{b}.txt', a=A, b=B)\n"
            "rule cell:\n    output: 'out-{a}-{b}.txt'\n    shell: 'echo {wildcards.a} {wildcards.b} > {output}'\n"))
    first = timed("snakemake --cores 2 -q", make("snakemake-first", first_cells), 1, env)
    d = make("snakemake", cells)
    write_outputs(d, cells)
    sh("snakemake --cores 2 -q --touch", d, env)  # marks the outputs as produced by their jobs
    r = sh("snakemake -n", d, env)
    if "Nothing to be done" not in r.stdout + r.stderr:
        raise SystemExit("snakemake: the touched workflow still has jobs to run")
    return {"first_run_cells": first_cells, "first_run_s": first,
            "noop_run_s": timed("snakemake --cores 2 -q", d, repeat, env),
            "noop_dryrun_s": timed("snakemake -n -q", d, repeat, env)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true", help="only codalite (no DVC/Snakemake install)")
    ap.add_argument("--peer-first-cells", type=int, default=100,
                    help="cells of the peers' own timed first run (their no-op runs use --cells)")
    args = ap.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    result = {"cells": args.cells, "codalite": codalite_case(args.cells, args.repeat)}
    print("codalite", result["codalite"])
    if not args.no_peers:
        env = peers_env()
        result["dvc"] = dvc_case(args.cells, args.repeat, env, args.peer_first_cells)
        print("dvc", result["dvc"])
        result["snakemake"] = snakemake_case(args.cells, args.repeat, env, args.peer_first_cells)
        print("snakemake", result["snakemake"])
        ours = result["codalite"]["noop_plan_plus_run_s"]
        result["ratios_vs_codalite_noop"] = {
            "dvc_repro": result["dvc"]["noop_repro_s"] / ours,
            "dvc_status": result["dvc"]["noop_status_s"] / ours,
            "snakemake_run": result["snakemake"]["noop_run_s"] / ours,
            "snakemake_dryrun": result["snakemake"]["noop_dryrun_s"] / ours,
        }
    result["goal_noop_plan_plus_run_le_1s"] = result["codalite"]["noop_plan_plus_run_s"] <= 1.0
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
