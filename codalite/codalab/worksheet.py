"""Pushing a worksheet to a CodaLab server: its bundles (and their ancestors) first, with the same
uuids, then its source with every bundle line bound to a uuid, so `cl print` on the server renders
the same tables (file genpaths read the same bundle files there)."""

from dataclasses import replace

from ..worksheets import model
from ..worksheets.parse import BUNDLE
from . import remotes
from .sync import push


def push_worksheet(store, name, text, on_progress=None, prompt=None):
    """Push a stored worksheet or a worksheets/*.ws file; returns (server worksheet uuid, push result)."""
    ws = model.open_worksheet(store, text)
    items = model.resolve_items(store, [replace(it) for it in ws.items])
    bundles = [store.get(it.bundle_uuid) for it in items if it.type == BUNDLE]
    client = remotes.client(store, name, prompt)
    try:
        result = push(store, name, bundles, on_progress=on_progress, client=client)
        uuid = client.ensure_worksheet(ws.name)
        source = model.source(store, replace(ws, items=items, path=None))
        client.request("POST", f"/worksheets/{uuid}/raw", content=source.encode(),
                       headers={"Content-Type": "text/plain"}, ok=(200, 204))
    finally:
        client.close()
    return uuid, result
