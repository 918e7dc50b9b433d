"""The house rules docs/architecture.md states, checked on the import graph (grimp reads every
import statement, those inside functions too)."""

import grimp
import pytest

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("codalite")


def _cycles(graph):
    """Strongly connected groups of codalite modules (Tarjan): each is an import cycle."""
    mods = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & set(mods)) for m in mods}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for m in mods:
        if m not in index:
            visit(m)
    return found


def test_codalite_has_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_the_library_never_imports_the_cli_or_the_web_layer(graph):
    faces = {m for m in graph.modules if m.startswith(("codalite.cli", "codalite.web")) or m == "codalite.__main__"}
    library = set(graph.modules) - faces - {"codalite"}
    for m in sorted(library):
        for face in sorted(faces):
            assert not graph.direct_import_exists(importer=m, imported=face), f"{m} imports {face}"


@pytest.mark.parametrize("package, forbidden", [
    ("codalite", {"bundles", "torch", "transformers"}),  # the engine starts fast anywhere
    ("bundles", {"codalite"}),  # steps run where codalite is not installed: they talk through files
])
def test_the_engine_and_the_steps_never_import_each_other(package, forbidden):
    g = grimp.build_graph(package, include_external_packages=True)
    offenders = sorted(f"{m} imports {x}" for m in g.modules if m.split(".")[0] == package
                       for x in g.find_modules_directly_imported_by(m) if x.split(".")[0] in forbidden)
    assert offenders == []


def test_sql_lives_in_the_store():
    """No module but store.py and db.py runs SQL or calls the store's private methods, and none but
    them and search.py (a search's WHERE, which the store runs) writes SQL to pass to the store."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "codalite"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name in ("store.py", "db.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.db\.execute|\.db\.executemany|\bstore\._[a-z]", line) or (
                    path.name != "search.py" and re.search(r"\b(SELECT|INSERT INTO|DELETE FROM)\b|\bUPDATE \w+ SET\b", line)):
                offenders.append(f"{path.relative_to(root.parent)}:{n}: {line.strip()}")
    assert offenders == []
