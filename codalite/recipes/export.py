"""A recipe as a plain `cl` script, for users of the official CodaLab CLI."""

import re
import shlex

from .plan import cells, env_vars
from .schema import Recipe


def export_cl(recipe: Recipe) -> str:
    planned = cells(recipe)
    names: dict[str, str] = {}  # bundle name -> its shell variable, one each (a-v1.5 and a-v1_5 both spell b_a_v1_5)
    taken: set[str] = set()
    for name in [*recipe.uploads, *(c.name for c in planned)]:
        base = "b_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        v, n = base, 1
        while v in taken:
            n += 1
            v = f"{base}_{n}"
        taken.add(v)
        names[name] = v

    def var(name: str) -> str:
        return names[name]

    lines = ["#!/usr/bin/env bash", f"# recipe {recipe.name}, written by `codalite recipe export-cl`", "set -euo pipefail", ""]
    for name in recipe.uploads:
        lines.append(f"{var(name)}=$(cl upload {shlex.quote(recipe.upload_path(name))} -n {shlex.quote(name)})")
    lines.append("")
    for cell in planned:
        step = recipe.steps[cell.step]
        # a subpath is the recipe's text: quoted, so `data/$(...)` is a path and not a command
        deps = [f"{d.key}:${{{var(d.cell)}}}" + (shlex.quote(f"/{d.subpath}") if d.subpath else "") for d in cell.deps]
        command = cell.command
        envs = env_vars(recipe, cell)
        if envs:  # cl has no env flag: set them in the command itself
            command = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in envs.items()) + "; " + command
        flags = []
        for k, v in step.request.metadata().items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                flags.append(flag)
            elif v is not False:
                flags.append(f"{flag} {shlex.quote(str(v))}")
        if step.exclude_patterns:
            flags.append("--exclude-patterns " + " ".join(map(shlex.quote, step.exclude_patterns)))
        lines.append(f"{var(cell.name)}=$(cl run {' '.join(deps)} {shlex.quote(command)} -n {cell.name} "
                     f"{' '.join(flags)})".replace("  ", " ").replace(" )", ")"))
    lines += ["", "cl wait " + " ".join(f"${{{var(c.name)}}}" for c in planned)]
    return "\n".join(lines) + "\n"
