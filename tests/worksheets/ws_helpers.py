"""Helpers shared by the worksheet tests (a module of its own: `conftest` names collide across test dirs)."""

from codalite import Worker


def drain(store):
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()


def cells(block):
    return [[c.text for c in r.cells] for r in block.rows]
