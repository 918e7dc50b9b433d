"""Every CLI command is documented: each one (walking click's command tree) appears in docs/*.md
as `codalite CMD` or `cl CMD` (docs/commands.md lists them all)."""

import pathlib
import re

import click
import pytest

from codalite.cli import cli

pytestmark = pytest.mark.fast

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


def _commands(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


def test_every_cli_command_appears_in_the_docs():
    docs = "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))
    missing = [" ".join(path) for path in _commands(cli)
               if not re.search(rf"\b(codalite|cl) +{' +'.join(map(re.escape, path))}\b", docs)]
    assert missing == [], f"undocumented commands (add them to docs/commands.md): {missing}"
