"""A recipe's bundles go on a worksheet (named after the recipe unless it says otherwise), so
its results render as tables with `codalite print` and in `codalite serve`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..bundle import Bundle
from ..errors import CodaliteError
from ..worksheets import model
from .schema import Recipe

if TYPE_CHECKING:
    from ..store import Store


def record_on_worksheet(store: Store, recipe: Recipe, bundles: Iterable[Bundle | None]) -> model.Worksheet:
    """Append the bundles not yet on the recipe's worksheet (creating it); returns the worksheet."""
    name = recipe.worksheet or recipe.name
    try:
        ws = model.get(store, name, with_items=False)
    except CodaliteError:
        ws = model.new(store, name, title=recipe.description or f"recipe {recipe.name}")
    on = store.worksheet_bundle_uuids(ws.uuid)
    new = []
    for b in bundles:
        if b is not None and b.uuid not in on:
            on.add(b.uuid)
            new.append(b)
    if new:
        model.add_bundles(store, ws, new)
    return ws
