"""The one plain-text table writer (codalite/table.py): listings and worksheet tables in a terminal."""

import click
import pytest

from codalite.table import format_table

pytestmark = pytest.mark.fast


def test_a_listing_aligns_columns_with_a_bold_header_and_styles():
    lines = format_table(["name", "state"], [("a", "ready"), ("longer", None)], styles={1: lambda v: {"fg": "red"}})
    assert [click.unstyle(x).rstrip() for x in lines] == ["name    state", "a       ready", "longer"]
    assert lines[0].startswith(click.style("name  ", bold=True)) and click.style("ready", fg="red") in lines[1]


def test_a_wide_table_wraps_its_widest_column_to_fit_under_a_rule():
    lines = format_table(["k", "value"], [["x", "0123456789" * 3]], width=20, rule=True, bold=False)
    assert lines == ["k  value", "-  -----------------", "x  01234567890123456", "   7890123456789"]
    assert all(len(x) <= 20 for x in lines)
    assert "".join(x[3:] for x in lines[2:]) == "0123456789" * 3  # every character kept, in order
