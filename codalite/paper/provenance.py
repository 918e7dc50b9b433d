"""Where each number came from: the bundles behind a cell and the full chain of executions
behind each bundle (commands, code and data hashes, environments)."""


def ancestors(store, uuid):
    """Every bundle upstream of uuid, parents before children (the order to re-execute them),
    ending with the bundle itself. A parent missing from the store is listed as missing."""
    return [describe(b) if b is not None else {"uuid": u, "missing": True} for u, b in store.upstream([uuid])]


def describe(b):
    """One execution as the provenance file records it."""
    return {
        "uuid": b.uuid,
        "name": b.name,
        "bundle_type": b.bundle_type,
        "state": b.state,
        "command": b.command,
        "dependencies": [{"key": d.child_path, "parent_uuid": d.parent_uuid, "parent_path": d.parent_path}
                         for d in b.dependencies],
        "content_hash": b.content_hash,
        "memo_key": b.memo_key,
        "environment": b.runspec.get("environment"),
        "env_vars": b.runspec.get("env_vars") or {},
        "created": b.metadata.get("created"),
    }


def bundle_provenance(store, b, value):
    chain = ancestors(store, b.uuid)
    uploads = [a for a in chain if not a.get("missing") and a["bundle_type"] == "dataset"]
    return {
        "uuid": b.uuid,
        "name": b.name,
        "value": value,
        "command": b.command,
        "content_hash": b.content_hash,
        "environment": b.runspec.get("environment"),
        # code and data = the uploads upstream (content-addressed: same hash, same bytes)
        "inputs": [{"uuid": a["uuid"], "name": a["name"], "content_hash": a["content_hash"]} for a in uploads],
        "ancestors": chain,
    }
