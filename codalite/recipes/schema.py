"""The recipe file format (cl_recipes/*.yaml), validated with pydantic.

Every error names the file, the line and the key: an unknown key, an undefined variable, a
dependency on a missing step or upload, or a cycle stops the recipe before anything runs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import re
import resource
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict

from .. import spec
from ..errors import UsageError
from ..store import validate_requests

Scalar = str | int | float | bool
MAX_CELLS = 100_000  # planning costs time and memory per cell: a typo in a grid must not take minutes


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys silently; in a recipe that drops a step or a grid."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicated key {key!r}", key_node.start_mark)
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader reports it
                pass
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """yaml.safe_load that refuses duplicated keys (recipes and paper table declarations)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


# YAML 1.1 (PyYAML) reads some plain scalars as something else than they look: yes/no/on/off as
# booleans, 010 as 8, 0x10 as 16, 1_000 as 1000, 1:30 as 90, 2024-01-01 as a date. In a grid value
# that silently changes the command (`--answer {{ a }}` with a: [yes] ran `--answer True`).
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_PLAIN_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?\Z|[-+]?\.(inf|Inf|INF)\Z|\.(nan|NaN|NAN)\Z")


def _misread_scalars(node, loc, seen=None):
    """(node, loc) of each plain scalar that YAML 1.1 reads as another value than its text shows;
    each node once (aliases share nodes: a billion-laughs file must not be walked expanded)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        kind, text = node.tag.rsplit(":", 1)[-1], node.value
        if node.style is None and ((kind == "bool" and text.lower() not in ("true", "false"))
                                   or (kind == "int" and not _PLAIN_INT.match(text))
                                   or (kind == "float" and not _PLAIN_FLOAT.match(text)) or kind == "timestamp"):
            yield node, loc
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _misread_scalars(key, loc, seen)
            yield from _misread_scalars(value, loc + [str(key.value)], seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            yield from _misread_scalars(value, loc + [str(i)], seen)


def _check_scalars(root, shown):
    for node, loc in itertools.islice(_misread_scalars(root, []), 1):
        value = yaml.safe_load(node.value)
        read = str(value).lower() if isinstance(value, bool) else "a date" if node.tag.endswith("timestamp") else value
        fix = f"quote it ('{node.value}') to keep the text" + ("" if read == "a date" else f", or write {read}")
        raise RecipeError(shown, node.start_mark.line + 1, ".".join(loc) or None,
                          f"YAML reads {node.value} as {read}; {fix}")


def read_text(path: str, error: Callable[[int, str], Exception]) -> str:
    """A file as UTF-8 text; error(message) builds the exception for anything else."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(line, f"not UTF-8 text (byte {data[e.start]:#04x}); save the file as UTF-8") from None


class Request(BaseModel):
    """`cl run --request-*` values for a step."""

    model_config = ConfigDict(extra="forbid")
    cpus: int | None = None
    gpus: int | None = None
    memory: str | None = None
    disk: str | None = None
    time: str | None = None
    docker_image: str | None = None
    network: bool | None = None
    queue: str | None = None
    priority: int | None = None

    def metadata(self) -> dict[str, Any]:
        return {f"request_{k}": v for k, v in self.model_dump().items() if v is not None}


class Upload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    description: str = ""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str
    deps: dict[str, str] = {}  # key -> upload or step name, optionally /subpath
    request: Request = Request()
    env: dict[str, Scalar] = {}
    exclude_patterns: list[str] = []
    description: str = ""


class Profile(BaseModel):
    """A named variant of a recipe (`--profile NAME`), e.g. a smoke test of the same steps on tiny
    models: it replaces the values of grid variables and `vars`, merges `request` into every step's
    request (null clears a field) and replaces fields of named steps (their `request` is merged)."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    grid: dict[str, list[Scalar]] = {}
    vars: dict[str, Scalar] = {}
    request: dict[str, Scalar | None] = {}
    steps: dict[str, dict] = {}


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    root: str = "."  # upload paths are relative to this, itself relative to the recipe file
    uploads: dict[str, str | Upload] = {}
    grid: dict[str, list[Scalar]] = {}
    vars: dict[str, Scalar] = {}  # template variables that are not grid dimensions (not in cell names)
    profiles: dict[str, Profile] = {}
    max_cells: int = MAX_CELLS
    exclude: list[dict[str, Scalar]] = []
    include: list[dict[str, Scalar]] = []
    steps: dict[str, Step]
    worksheet: str | None = None

    # filled in by load()
    path: str = ""
    profile: str = ""
    step_vars: dict[str, list[str]] = {}
    order: list[str] = []

    def upload_path(self, name: str) -> str:
        """Where upload `name` is read from. A path that is itself a link (data/current -> v3) means
        what it points to: a recipe has no --follow-symlinks, and the link alone cannot be uploaded."""
        u = self.uploads[name]
        rel = u.path if isinstance(u, Upload) else u
        path = os.path.normpath(os.path.join(os.path.dirname(self.path), self.root, rel))
        return os.path.realpath(path) if os.path.islink(path) else path

    def cells(self) -> list[dict[str, Any]]:
        """The grid's cells: the product of the variables, less `exclude`, plus `include`."""
        names = list(self.grid)
        cells = [dict(zip(names, values)) for values in itertools.product(*self.grid.values())]
        cells = [c for c in cells if not any(all(c.get(k) == v for k, v in ex.items()) for ex in self.exclude)]
        return cells + [dict(c) for c in self.include]

    def step_cells(self, step: str) -> list[dict[str, Any]]:
        """The distinct cells of the variables this step uses, in grid order."""
        seen, out = set(), []
        for cell in self.cells():
            proj = {v: cell[v] for v in self.step_vars[step] if v in cell}
            # typed: 1, 1.0 and true are equal in Python but render (and name cells) differently
            key = tuple(sorted((k, type(v).__name__, v) for k, v in proj.items()))
            if key not in seen and len(proj) == len(self.step_vars[step]):
                seen.add(key)
                out.append(proj)
        return out


class RecipeError(UsageError):
    def __init__(self, path: str, line: int | None, key: str | None, message: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def _line_of(root, loc):
    """The 1-based line of the YAML node at a pydantic error location, or of its nearest parent."""
    node, line = root, (root.start_mark.line + 1) if root else None
    for part in loc:
        part = int(part) if isinstance(part, str) and part.isdigit() else part
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            node, line = match[0][1], match[0][0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


MAX_BUILT = 1_000_000  # characters or items one `*` in a template may build
MAX_POWER_BITS = 100_000  # bits of an integer `**` result


class _Sandbox(jinja2.sandbox.SandboxedEnvironment):
    """Jinja's sandbox caps range() only: `{{ 'x' * 10**10 }}` or `{{ 3 ** 10**9 }}` in a shared
    recipe would take the planner's memory or minutes (even at load: Jinja folds constants while
    compiling, except for intercepted operators)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 \
                and abs(left).bit_length() * right > MAX_POWER_BITS:
            raise jinja2.sandbox.SecurityError(f"{left} ** {right} is too large a number")
        if operator == "*":
            seq, n = (left, right) if _is_int(right) else (right, left)
            if isinstance(seq, (str, list, tuple)) and _is_int(n) and len(seq) * n > MAX_BUILT:
                raise jinja2.sandbox.SecurityError(f"repeating {len(seq):,} items {n:,} times builds more "
                                                   f"than {MAX_BUILT:,}")
        return super().call_binop(context, operator, left, right)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


# sandboxed: a template is data in a shared file; the sandbox also caps range() (100,000 items)
ENV = _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
# `{{ v | quote }}`: a value as one shell word, whatever it holds (as Ansible's filter of that name)
ENV.filters["quote"] = lambda value: shlex.quote(str(value))


# set by the runtime after a step's env (codalite/runtime.py): a recipe's value would be dropped silently
RUNTIME_VARS = frozenset({"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                          "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS", "TORCH_NUM_THREADS",
                          "CUDA_VISIBLE_DEVICES", "CODALAB"})
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def template_vars(text: str) -> set[str]:
    return jinja2.meta.find_undeclared_variables(ENV.parse(text))


RENDER_SECONDS = 10  # one template for one cell: the sandbox caps range(), not loops ({% for %} in {% for %})
RENDER_MEMORY = 1 << 30  # bytes of address space one template may add: padding ('x'|center(10**10), '%*s',
# format widths) and strings doubled in a loop build what they are told, past the sandbox's `*` cap


class TemplateLimit(Exception):
    pass


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """Raise TemplateLimit in the block after RENDER_SECONDS or RENDER_MEMORY more bytes. Both limits are
    the process's (SIGALRM, RLIMIT_AS), so only in the main thread and where no one else set the timer;
    elsewhere none."""
    if threading.current_thread() is not threading.main_thread() or signal.getitimer(signal.ITIMER_REAL)[0]:
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise TemplateLimit(f"it ran for more than {RENDER_SECONDS:g} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:  # the address space in use now, in pages
        used = int(f.read().split()[0]) * resource.getpagesize()
    cap = min([used + RENDER_MEMORY] + [lim for lim in (soft, hard) if lim != resource.RLIM_INFINITY])
    previous = signal.signal(signal.SIGALRM, expired)
    try:
        signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        yield
    except MemoryError:
        raise TemplateLimit(f"it needed more than {RENDER_MEMORY >> 20:,} MiB of memory") from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@functools.lru_cache(maxsize=None)
def _template(text):
    with _bounded():  # compiling folds constants: '%*s' % (10**10, 'x') is built here
        return ENV.from_string(text)


def render(text: str, cell: dict[str, Any]) -> str:
    template = _template(text)
    with _bounded():
        return template.render(**cell)


def apply_profile(data, name, shown, root):
    """The recipe's data with profile `name` applied (validated again by the caller)."""
    import copy

    profiles = data.get("profiles") or {}
    if name not in profiles:
        raise RecipeError(shown, _line_of(root, ["profiles"]), "profiles",
                          f"no profile {name!r}; profiles: {', '.join(profiles) or 'none'}")
    prof, out = Profile(**profiles[name]), copy.deepcopy(data)

    def fail(loc, message):
        raise RecipeError(shown, _line_of(root, ["profiles", name] + loc), ".".join(["profiles", name] + loc), message)

    for field in ("grid", "vars"):  # only existing names: a typo must not be a silent no-op
        for var, value in getattr(prof, field).items():
            if var not in (out.get(field) or {}):
                fail([field, var], f"{var!r} is not in the recipe's {field}")
            out[field][var] = value
    for step in out.get("steps", {}).values():
        if isinstance(step, dict):
            step["request"] = {**(step.get("request") or {}), **prof.request}
    for step, fields in prof.steps.items():
        if step not in out.get("steps", {}):
            fail(["steps", step], f"{step!r} is not a step of the recipe")
        for key, value in fields.items():
            if key == "request":
                value = {**(out["steps"][step].get("request") or {}), **(value or {})}
            out["steps"][step][key] = value
    return out


def load(path: str, profile: str | None = None) -> Recipe:
    """Read and validate a recipe (with `profile` applied); raises RecipeError (a usage error)
    naming file, line and key."""
    if not os.path.isfile(path):
        raise UsageError(f"no recipe file {path}; recipes live in cl_recipes/*.yaml")
    text = read_text(path, lambda line, message: RecipeError(path, line, None, message))
    try:
        data = load_yaml(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RecipeError(path, mark.line + 1 if mark else None, None, f"not valid YAML ({e.problem})") from None
    if not isinstance(data, dict):
        raise RecipeError(path, 1, None, "a recipe is a mapping with name, uploads, grid and steps")
    _check_scalars(root, path)
    try:
        recipe = Recipe(**{k: v for k, v in data.items() if k not in ("path", "step_vars", "order", "profile")})
        if profile:
            data = apply_profile(data, profile, path, root)
            recipe = Recipe(**{k: v for k, v in data.items() if k not in ("path", "step_vars", "order", "profile")})
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p in ("str", "Upload", "function-after"))]
        loc = [p for p in loc if p not in ("int", "float", "bool")] or list(err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].lower()
        raise RecipeError(path, _line_of(root, loc), ".".join(map(str, loc)), msg) from None
    recipe.path = os.path.abspath(path)
    if profile:
        recipe.profile = profile
        recipe.worksheet = recipe.worksheet or f"{recipe.name}-{profile}"  # its results apart from the full study's
    _check(recipe, root, path)
    return recipe


def _check(r, root, shown):
    def fail(loc, message):
        raise RecipeError(shown, _line_of(root, loc), ".".join(loc), message)

    if not spec.NAME_RE.match(r.name):
        fail(["name"], "use letters, digits, _ . - (it names bundles and the worksheet)")
    # checked here: the worksheet is made after the cells were submitted, too late to refuse them
    for field, text in [("worksheet", r.worksheet)] + [(f"profiles.{p}", p) for p in r.profiles]:
        if text is not None and (not spec.NAME_RE.match(text) or len(text) > spec.NAME_MAX):
            fail(field.split(".", 1), f"{text!r}: use letters, digits, _ . - and start with a letter or _ "
                                      "(it names a worksheet)")
    n = math.prod(len(values) for values in r.grid.values()) + len(r.include)
    if n > r.max_cells:
        fail(["grid"], f"the grid has {n:,} cells, more than max_cells ({r.max_cells:,}); shrink it, or raise "
                       "the cap with `max_cells: N` in the recipe")
    for field, names in (("grid", r.grid), ("vars", r.vars)):
        for var in names:  # a name a template cannot write would be a variable nothing can use
            if not ENV_NAME_RE.match(var):
                fail([field, var], f"{var!r}: variable names use letters, digits and _ (not first), as templates "
                                   "write them ({{ name }})")
    for var, values in r.grid.items():
        if not values:
            fail(["grid", var], f"{var!r} has no values: the grid would have no cells and nothing would run")
    for var in r.vars:
        if var in r.grid:
            fail(["vars", var], f"{var!r} is both a grid variable and a var; rename one")
    for name in r.uploads:
        if not spec.NAME_RE.match(name):
            fail(["uploads", name], "upload names use letters, digits, _ . - (it names the bundle)")
        if name in r.steps:
            fail(["uploads", name], f"{name!r} is both an upload and a step; rename one")
        if not os.path.exists(r.upload_path(name)):
            fail(["uploads", name], f"no such path {r.upload_path(name)}")
    for ex_name, entries in (("exclude", r.exclude), ("include", r.include)):
        for i, entry in enumerate(entries):
            for var in entry:
                if var not in r.grid:
                    fail([ex_name, str(i)], f"{var!r} is not a grid variable ({', '.join(r.grid) or 'none'})")
                # a value the grid lacks excludes nothing: a typo (lr: 0.3 for 0.03) must not be a silent no-op
                # (a profile may shrink the grid under the recipe's excludes: checked without one)
                if ex_name == "exclude" and not r.profile and not any(
                        type(v) is type(entry[var]) and v == entry[var] for v in r.grid[var]):
                    fail([ex_name, str(i), var], f"{entry[var]!r} is not among {var}'s values "
                                                 f"({', '.join(map(repr, r.grid[var]))}): it excludes nothing")
    own = {}
    for name, step in r.steps.items():
        if not spec.NAME_RE.match(name):
            fail(["steps", name], "step names use letters, digits, _ . -")
        used = set()
        for field, text in [("command", step.command)] + [(f"env.{k}", str(v)) for k, v in step.env.items()]:
            try:
                used |= template_vars(text)
                _template(text)  # compiling finds unknown filters and tests
            except jinja2.TemplateSyntaxError as e:
                fail(["steps", name, field.split(".")[0]], f"template error: {e.message}")
            except TemplateLimit as e:
                fail(["steps", name, field.split(".")[0]], f"template error: {e}")
        undefined = sorted(used - set(r.grid) - set(r.vars))
        if undefined:
            fail(["steps", name, "command"], f"undefined variable {undefined[0]!r}; grid variables: {', '.join(r.grid) or 'none'}"
                 + (f"; vars: {', '.join(r.vars)}" if r.vars else ""))
        for key, target in step.deps.items():
            if not spec.KEY_RE.match(key) or ".." in key.split("/"):
                fail(["steps", name, "deps", key], "dependency keys use letters, digits, _ - . / (no '..')")
            base, _, sub = target.partition("/")
            if base not in r.steps and base not in r.uploads:
                fail(["steps", name, "deps", key], f"{base!r} is neither a step nor an upload of this recipe")
            if ".." in sub.split("/"):
                fail(["steps", name, "deps", key], "'..' is not allowed in a path inside a bundle")
        for var, value in step.env.items():
            if isinstance(value, bool):  # it would be the text True or False, not what was written
                fail(["steps", name, "env", var], f"env values are text: quote it ('{str(value).lower()}')")
            if not ENV_NAME_RE.match(var):
                fail(["steps", name, "env", var], "env var names use letters, digits and _ (not first)")
            if var in RUNTIME_VARS or var.startswith("CODALITE_"):  # the runtime sets them after env: ignored
                fail(["steps", name, "env", var], f"{var} is set by codalite for every run (thread counts "
                                                  "from request.cpus, GPUs from request.gpus); request what you need")
        for field, requests in (("request", step.request.metadata()),
                                ("exclude_patterns", {"exclude_patterns": step.exclude_patterns})):
            try:
                validate_requests(requests)
            except UsageError as e:
                fail(["steps", name, field], str(e))
        own[name] = used
    # topological order; a step uses its own variables and those of everything it depends on
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = trail[trail.index(name):] + [name]
            fail(["steps", name, "deps"], f"dependency cycle: {' -> '.join(cycle)}")
        state[name] = "active"
        for target in r.steps[name].deps.values():
            base = target.split("/", 1)[0]
            if base in r.steps:
                visit(base, trail + [name])
        state[name] = "done"
        order.append(name)

    for name in r.steps:
        visit(name, [])
    r.order = order
    for name in order:
        deps = {t.split("/", 1)[0] for t in r.steps[name].deps.values()} & set(r.steps)
        used = set(own[name]).union(*(r.step_vars[d] for d in deps)) if deps else set(own[name])
        r.step_vars[name] = [v for v in r.grid if v in used]
    # a grid variable no template names varies nothing: `seed: [1, 2, 3]` would run once, silently
    unused = [v for v in r.grid if not any(v in used for used in own.values())]
    if unused:
        fail(["grid", unused[0]], f"{unused[0]!r} is used by no step (no command or env names it), so every "
                                  "value would run the same cell; use it in a template or remove it")
    if r.exclude and not r.cells():
        fail(["exclude"], "it removes every cell of the grid: nothing would run")


def cell_name(step: str, cell: dict[str, Any]) -> str:
    """A bundle name for a step's cell: finetune-rank8-seed1."""
    parts = [step] + [f"{k}{re.sub(r'[^a-zA-Z0-9_.]', '_', str(v))}" for k, v in cell.items()]
    return "-".join(parts)
