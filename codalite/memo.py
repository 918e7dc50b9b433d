"""Memo keys: what makes two runs the same, and how to explain why they are not.

A run's key hashes the canonical JSON of its inputs: the command, each dependency's key, content
hash and subpath, the environment it runs in (the fingerprint of the store's recorded Python
interpreter, or a docker image) and its declared env vars. Volatile things (names, times, resource requests) are
left out: they do not change what a run computes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import blake3

from .bundle import READY, Bundle

MEMO_VERSION = 1


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj: Any) -> str:
    return blake3.blake3(canonical(obj).encode()).hexdigest()


def memo_inputs(bundle_type: str, command: str | None, deps: Iterable[Sequence[Any]], environment: str | None,
                env_vars: dict[str, str], exclude_patterns: Iterable[str]) -> dict[str, Any]:
    """deps: [(key, parent_content_hash, parent_path)]."""
    return {
        "v": MEMO_VERSION,
        "type": bundle_type,
        "command": command,
        "dependencies": sorted([list(d) for d in deps]),
        "environment": environment,
        "env_vars": dict(sorted(env_vars.items())),
        "exclude_patterns": sorted(exclude_patterns),
    }


def memo_key(inputs: dict[str, Any]) -> str:
    return digest(inputs)


def explain(new: dict[str, Any], old: dict[str, Any],
            packages_of: Callable[[str], dict[str, str] | None]) -> list[str]:
    """Lines saying which parts of two memo inputs differ. packages_of(fingerprint) -> {name: version}
    (with "python": its version and interpreter), or None for a fingerprint it does not know."""
    lines = []
    if new["command"] != old["command"]:
        lines.append(f"command changed: {old['command']!r} -> {new['command']!r}")
    odeps = {d[0]: d[1:] for d in old["dependencies"]}
    ndeps = {d[0]: d[1:] for d in new["dependencies"]}
    for key in sorted(set(odeps) | set(ndeps)):
        if key not in odeps:
            lines.append(f"dependency {key} added")
        elif key not in ndeps:
            lines.append(f"dependency {key} removed")
        elif odeps[key][1] != ndeps[key][1]:
            lines.append(f"dependency {key}: path changed {odeps[key][1]!r} -> {ndeps[key][1]!r}")
        elif odeps[key][0] != ndeps[key][0]:
            lines.append(
                f"dependency {key}: content changed {odeps[key][0][:15]} -> {ndeps[key][0][:15]}"
            )
    if new["environment"] != old["environment"]:
        lines.append(f"environment changed: {old['environment']} -> {new['environment']}")
        diff = _package_diff(packages_of(old["environment"]), packages_of(new["environment"]))
        shown = diff[:12]  # another interpreter differs in most packages: the first lines tell the story
        lines += ["  " + d for d in shown] + ([f"  ... and {len(diff) - len(shown)} more"] if diff[len(shown):] else [])
    for key in sorted(set(old["env_vars"]) | set(new["env_vars"])):
        a, b = old["env_vars"].get(key), new["env_vars"].get(key)
        if a != b:
            lines.append(f"env var {key}: {a!r} -> {b!r}")
    if new["exclude_patterns"] != old["exclude_patterns"]:
        lines.append(f"exclude patterns: {old['exclude_patterns']} -> {new['exclude_patterns']}")
    return lines


def why(mine: dict[str, Any] | None, other: Bundle | None,
        packages_of: Callable[[str], dict[str, str] | None]) -> list[str]:
    """Why a run with memo inputs `mine` was not a memo hit: what differs from `other`, an earlier
    run of the same name or command (None when there is none)."""
    if not mine:
        return ["this bundle's memo key is not known yet: a dependency has not finished"]
    if other is None:
        return ["no earlier run with this name or command: this is the first of its kind"]
    return explain(mine, other.runspec["memo_inputs"], packages_of) or [
        f"same memo key as {other.uuid} ({other.state}): "
        + ("it was rerun because that one did not finish ready" if other.state != READY else "it was rerun with --force")]


def _package_diff(old: dict[str, str] | None, new: dict[str, str] | None) -> list[str]:
    if old is None or new is None:
        return []
    out = []
    for name in sorted(set(old) | set(new), key=lambda n: (n != "python", n)):  # the interpreter first
        if old.get(name) != new.get(name):
            out.append(f"{name}: {old.get(name, '(absent)')} -> {new.get(name, '(absent)')}")
    return out


# --- the local Python environment's fingerprint ------------------------------------------------

_PROBE = "import json,site,sys;print(json.dumps([sys.version,[p for p in sys.path if p.endswith('-packages')]]))"


def python_on_path(path_env: str) -> tuple[str | None, str | None]:
    exe = shutil.which("python3", path=path_env) or shutil.which("python", path=path_env)
    return os.path.realpath(exe) if exe else None, exe


def executable_of(exe: str) -> str:
    """What an interpreter calls itself (sys.executable): a venv's python keeps its venv path, a
    pyenv shim gives the real interpreter. Raises ValueError when exe is not a working Python."""
    try:
        out = subprocess.run([exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        raise ValueError(str(e)) from None
    found = out.stdout.strip()
    if out.returncode != 0 or not os.path.isabs(found):
        raise ValueError((out.stderr.strip().splitlines() or ["it did not report sys.executable"])[-1])
    return found


def site_dirs(exe: str) -> tuple[str, list[str]]:
    """(version, site-packages dirs) of a Python executable; in-process when it is this one."""
    if exe and os.path.realpath(exe) == os.path.realpath(sys.executable) and _same_prefix(exe):
        return sys.version, [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    out = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    version, dirs = json.loads(out.stdout)
    return version, [d for d in dirs if os.path.isdir(d)]


def _same_prefix(exe: str) -> bool:
    # a venv's python is a symlink to the base interpreter: compare the venv dirs, not the binary
    return os.path.dirname(os.path.dirname(os.path.abspath(exe))) == sys.prefix or os.path.realpath(
        os.path.dirname(os.path.dirname(exe))
    ) == os.path.realpath(sys.prefix)


def packages_in(dirs: Iterable[str]) -> dict[str, str]:
    """{name: version} from the *.dist-info / *.egg-info names in site-packages dirs."""
    pkgs: dict[str, str] = {}
    for d in dirs:
        for entry in os.listdir(d):
            for suffix in (".dist-info", ".egg-info"):
                if entry.endswith(suffix):
                    name, _, version = entry[: -len(suffix)].partition("-")
                    pkgs.setdefault(name.lower().replace("_", "-"), version)
    return pkgs


def dirs_stamp(dirs: Iterable[str]) -> list[list[Any]]:
    """Installing or removing a package changes its site-packages dir's mtime (a dir that is gone
    drops out, so the stamp no longer matches)."""
    return [[d, os.stat(d).st_mtime_ns] for d in dirs if os.path.isdir(d)]


def fingerprint(version: str, packages: dict[str, str]) -> str:
    return "py:" + digest({"python": version.split()[0], "packages": packages})[:32]
