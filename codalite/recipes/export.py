"""A recipe as a plain `cl` script, for users of the official CodaLab CLI."""

import shlex

from .plan import cells, env_vars
from .schema import Recipe


def export_cl(recipe: Recipe) -> str:
    def var(name: str) -> str:
        return "b_" + name.replace("-", "_").replace(".", "_")

    lines = ["#!/usr/bin/env bash", f"# recipe {recipe.name}, written by `codalite recipe export-cl`", "set -euo pipefail", ""]
    for name in recipe.uploads:
        lines.append(f"{var(name)}=$(cl upload {shlex.quote(recipe.upload_path(name))} -n {name})")
    lines.append("")
    for cell in cells(recipe):
        step = recipe.steps[cell.step]
        deps = [f"{d.key}:${{{var(d.cell)}}}" + (f"/{d.subpath}" if d.subpath else "") for d in cell.deps]
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
    lines += ["", "cl wait " + " ".join(f"${{{var(c.name)}}}" for c in cells(recipe))]
    return "\n".join(lines) + "\n"
