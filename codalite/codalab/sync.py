"""Moving bundles between the local store and a CodaLab server, keeping their uuids.

push: a bundle and all its ancestors are created on the server with the SAME uuids (the server
accepts client-minted uuids), with every metadata key the server requires, then their contents are
uploaded (a .tar.gz streamed in chunks, unpacked by the server). Bundles the server already has
(final there) are skipped. Each bundle is created with `wait_for_upload=1` and uploaded with
`finalize_on_failure=0`, so an interrupted push leaves it `uploading` on the server, never
`ready` with partial contents; a journal (`.codalite/remotes/<name>.json`) records what was
created and what finished, and a retried push uploads what is still missing.

pull: bundles (and missing ancestors) come back into the store with the server's state and
metadata; content hashes are computed locally; rows are inserted the way the store inserts its own
(`store.tx()`, the same columns, `store.publish`).

remote run: the run gets a local uuid, its dependencies are pushed, it is created on the server
with that uuid, waited for (progress callback), and pulled.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import hashing, memo, spec
from ..bundle import FINAL_STATES, READY, RUN_REQUESTS, Bundle, default_metadata
from ..errors import BundleNotFound, BundleStateError
from ..store import default_name, remove_tree, run_metadata
from . import remotes
from .errors import PushIncomplete, RemoteError, RemoteUnreachable

if TYPE_CHECKING:
    from ..store import DepSpec, Store
    from .client import Client, Prompt

Progress = Callable[..., None]  # on_progress(what, ...): a step of a push, pull or remote run

DEFAULT_IMAGE = "codalab/default-cpu:latest"
DEFAULT_GPU_IMAGE = "codalab/default-gpu:latest"

# generated keys the server accepts on create, with the types it checks (run_bundle.py, named_bundle.py)
GENERATED_TYPES = {
    "failure_message": str, "exitcode": int, "time": float, "time_user": float, "time_system": float,
    "memory_max": float, "started": int, "docker_image": str, "data_size": int,
}
BASE_KEYS = {
    "dataset": ("name", "description", "tags", "license", "source_url"),
    "make": ("name", "description", "tags", "allow_failed_dependencies"),
    "run": ("name", "description", "tags", *RUN_REQUESTS),
}


# --- journal ----------------------------------------------------------------------------------

class Journal:
    """Per-remote record of pushes: {uuid: 'created' | 'pushed'} and remote runs."""

    def __init__(self, store: Store, name: str) -> None:
        d = os.path.join(store.home, "remotes")
        os.makedirs(d, exist_ok=True)
        self.path = os.path.join(d, f"{name}.json")
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {}
        self.data.setdefault("bundles", {})

    def set(self, uuid: str, state: str) -> None:
        self.data["bundles"][uuid] = state
        self.save()

    def get(self, uuid: str) -> str | None:
        return self.data["bundles"].get(uuid)

    def save(self) -> None:
        hashing.write_atomic(self.path, json.dumps(self.data))


# --- metadata ---------------------------------------------------------------------------------

def server_metadata(bundle: Bundle) -> dict[str, Any]:
    """The bundle's metadata as the server wants it: every required key, generated ones typed."""
    md = bundle.metadata
    out = default_metadata(bundle.bundle_type if bundle.bundle_type in BASE_KEYS else "dataset", bundle.name or "bundle")
    for key in BASE_KEYS.get(bundle.bundle_type, BASE_KEYS["dataset"]):
        if key in md and md[key] is not None:
            out[key] = md[key]
    for key in BASE_KEYS.get(bundle.bundle_type, ()):
        if out.get(key) is None:
            out[key] = RUN_REQUESTS.get(key, "")
    if bundle.bundle_type == "run":
        out["request_priority"] = int(out.get("request_priority") or 0)
        out["request_cpus"] = int(out.get("request_cpus") or 1)
        out["request_gpus"] = int(out.get("request_gpus") or 0)
        out["request_network"] = bool(out.get("request_network"))
        out["allow_failed_dependencies"] = bool(out.get("allow_failed_dependencies"))
    out["tags"] = list(out.get("tags") or [])
    out["name"] = _server_name(out.get("name"))
    for key, typ in GENERATED_TYPES.items():
        if key == "docker_image" and bundle.bundle_type != "run":
            continue
        if key in ("exitcode", "time", "time_user", "time_system", "memory_max", "started") and bundle.bundle_type != "run":
            continue
        if md.get(key) is not None:
            try:
                out[key] = typ(md[key])
            except (TypeError, ValueError):
                pass
    return out


def _server_name(name: str | None) -> str:
    name = name or "bundle"
    return name if spec.NAME_RE.match(name) else default_name(name)


def topo_closure(store: Store, bundles: Iterable[Bundle]) -> list[Bundle]:
    """The bundles and all their ancestors, parents before children."""
    order = []
    for u, b in store.upstream([b.uuid for b in bundles], oldest_first=True):
        if b is None:
            raise BundleNotFound(u)  # an ancestor is gone
        order.append(b)
    return order


# --- push -------------------------------------------------------------------------------------

def _worksheet(client: Client, remote: dict[str, Any]) -> str:
    ws = remote.get("worksheet")
    return client.ensure_worksheet(ws) if ws else client.worksheet_uuid("/")


def push(store: Store, name: str, bundles: Sequence[Bundle], on_progress: Progress | None = None,
         prompt: Prompt | None = None, client: Client | None = None) -> dict[str, list[str]]:
    """Push bundles and their ancestors to remote `name`. Returns {'pushed': [...], 'skipped': [...]}."""
    remote = remotes.get(store, name)
    own = client is None
    client = client or remotes.client(store, name, prompt)
    journal = Journal(store, name)
    progress = on_progress or (lambda *a: None)
    try:
        todo = topo_closure(store, bundles)
        unfinished = [b for b in todo if not b.final]
        if unfinished:
            b = unfinished[0]
            raise BundleStateError(f"bundle {b.uuid} ({b.name}) is {b.state}; wait for it to finish "
                                   "(codalite wait) before pushing it")
        there = client.bundles_info([b.uuid for b in todo])
        result: dict[str, list[str]] = {"pushed": [], "skipped": []}
        create, upload = [], []
        for b in todo:
            attrs = there.get(b.uuid)
            if attrs is None:
                create.append(b)
                upload.append(b)
            elif attrs.get("state") in FINAL_STATES:
                journal.set(b.uuid, "pushed")
                result["skipped"].append(b.uuid)
            elif attrs.get("state") == "uploading":
                upload.append(b)  # created by an interrupted push: its contents are still missing
            else:
                result["skipped"].append(b.uuid)  # running there (a remote run): leave it alone
        ws = _worksheet(client, remote) if create else ""  # asked for only when something is created
        done = len(result["skipped"])
        try:
            for i in range(0, len(create), 50):
                chunk = create[i:i + 50]
                client.create_bundles([bundle_doc(b) for b in chunk], ws, wait_for_upload=True)
                for b in chunk:
                    journal.set(b.uuid, "created")
            for b in upload:
                progress("upload", b)
                upload_bundle(store, client, b)
                journal.set(b.uuid, "pushed")
                result["pushed"].append(b.uuid)
                done += 1
        except (RemoteError, OSError) as e:
            raise PushIncomplete(done, len(todo), str(e)) from None
        return result
    finally:
        if own:
            client.close()


def bundle_doc(b: Bundle) -> dict[str, Any]:
    """The JSON document that creates a bundle on the server, with its uuid."""
    doc: dict[str, Any] = {"uuid": b.uuid, "bundle_type": b.bundle_type, "metadata": server_metadata(b),
           "dependencies": [{"child_path": d.child_path, "parent_uuid": d.parent_uuid, "parent_path": d.parent_path}
                            for d in b.dependencies]}
    if b.bundle_type == "run":
        doc["command"] = b.command
    return doc


def upload_bundle(store: Store, client: Client, b: Bundle) -> None:
    """Upload a finished bundle's contents; the server sets its final state when they are in."""
    path = store.bundle_dir(b.uuid)
    state = b.state if b.state in FINAL_STATES else READY
    if not os.path.lexists(path):
        os.makedirs(store.tmp_dir(b.uuid), exist_ok=True)  # a bundle without contents: push an empty dir
        path = store.tmp_dir(b.uuid)
    if os.path.isdir(path) and not os.path.islink(path):
        archive = store.tmp_dir(b.uuid) + ".push.tar.gz"  # owned by this process (see Store.tmp_dir)
        try:
            with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
                for entry in sorted(os.listdir(path)):
                    tar.add(os.path.join(path, entry), arcname=entry)
            client.upload_contents(b.uuid, archive, "contents.tar.gz", unpack=True, state_on_success=state)
        finally:
            if os.path.exists(archive):
                os.unlink(archive)
            if path == store.tmp_dir(b.uuid):
                remove_tree(path)
    else:
        client.upload_contents(b.uuid, path, b.name or "contents", unpack=False, state_on_success=state)


# --- pull -------------------------------------------------------------------------------------

def pull(store: Store, name: str, uuids: Sequence[str], prompt: Prompt | None = None, client: Client | None = None,
         on_progress: Progress | None = None) -> list[Bundle]:
    """Bring bundles (and their ancestors missing here) from the server. Returns [Bundle]."""
    own = client is None
    client = client or remotes.client(store, name, prompt)
    progress = on_progress or (lambda *a: None)
    try:
        out = []
        for uuid in uuids:
            out.append(_pull_one(store, client, name, uuid, progress, set()))
        return out
    finally:
        if own:
            client.close()


def _pull_one(store, client, name, uuid, progress, visiting):
    local = store.get_or_none(uuid)
    if local is not None:
        if local.final:
            return local
        raise BundleStateError(f"bundle {uuid} ({local.name}) is {local.state} in this store; "
                               "it is not pulled over a bundle that is still running here")
    doc = client.bundle(uuid)
    if doc is None:
        raise RemoteError(f"the server {name!r} has no bundle {uuid}")
    attrs = doc["attributes"]
    if attrs.get("state") not in FINAL_STATES:
        raise BundleStateError(f"bundle {uuid} is {attrs.get('state')} on {name}; wait for it to finish, then pull")
    visiting.add(uuid)
    for d in attrs.get("dependencies") or []:
        if d["parent_uuid"] not in visiting:
            _pull_one(store, client, name, d["parent_uuid"], progress, visiting)
    progress("download", attrs)
    return import_bundle(store, client, name, attrs)


def import_bundle(store: Store, client: Client, name: str, attrs: dict[str, Any]) -> Bundle:
    """Insert a server bundle into the store: contents downloaded, hashed and published, then the row."""
    from ..bundle import Dependency

    uuid = attrs["uuid"]
    tmp = store.tmp_dir(uuid)
    remove_tree(tmp)
    if not store.exists(uuid):
        remove_tree(store.bundle_dir(uuid))  # an orphan left by a crash between publish and insert
    archive = tmp + ".download"
    try:
        kind = client.download(uuid, archive)
        if kind == "directory":
            os.mkdir(tmp)
            with tarfile.open(archive, "r:*") as tar:  # 'data': no links or files out of the bundle
                tar.extractall(tmp, filter="data")
        else:
            os.rename(archive, tmp)
        content_hash, size = hashing.hash_path(tmp), hashing.tree_size(tmp)
    except Exception:
        remove_tree(tmp)
        raise
    finally:
        if os.path.exists(archive):
            os.unlink(archive)
    md = dict(attrs.get("metadata") or {})
    md["remote"] = name
    md.setdefault("data_size", size)
    deps = [Dependency(d["child_path"], d["parent_uuid"], d.get("parent_path") or "")
            for d in attrs.get("dependencies") or []]
    bundle_type = attrs.get("bundle_type", "dataset")
    if bundle_type == "program":
        bundle_type = "dataset"
    runspec, key = {}, None
    if bundle_type == "run":
        image = md.get("docker_image") or md.get("request_docker_image") or DEFAULT_IMAGE
        runspec = {"environment": f"docker:{image}", "env_vars": {}, "remote": name}
    if bundle_type in ("run", "make"):
        inputs = store.memo_inputs(bundle_type, attrs.get("command"), deps, runspec, md)
        if inputs:
            runspec["memo_inputs"] = inputs
            key = memo.memo_key(inputs)
    is_dir = os.path.isdir(tmp) and not os.path.islink(tmp)

    try:  # the row and the contents land together, or neither does
        return store.add_imported(tmp, uuid, bundle_type, attrs["state"], md, command=attrs.get("command"),
                                  deps=deps, runspec=runspec, is_dir=is_dir, content_hash=content_hash, memo_key=key)
    finally:
        remove_tree(tmp)


# --- remote run -------------------------------------------------------------------------------

def remote_run(store: Store, name: str, command: str, deps: Iterable[DepSpec] = (), run_name: str | None = None,
               description: str = "", tags: Iterable[str] = (), requests: dict[str, Any] | None = None,
               force: bool = False, wait: bool = True, on_progress: Progress | None = None,
               prompt: Prompt | None = None, poll: float = 0.5,
               timeout: float | None = None) -> tuple[Bundle | str, bool]:
    """Create a run on the server with a locally minted uuid (dependencies pushed first), wait for
    it and pull it back. Returns (bundle, memo_hit); without wait, (uuid, False)."""
    md = run_metadata(command, run_name, description, tags, requests)
    dependencies = store.resolve_deps(deps, md["allow_failed_dependencies"])
    image = md["request_docker_image"] or (DEFAULT_GPU_IMAGE if md["request_gpus"] else DEFAULT_IMAGE)
    runspec = {"environment": f"docker:{image}", "env_vars": {}}
    inputs = store.memo_inputs("run", command, dependencies, runspec, md)
    if inputs and not force:
        hit = store.memo_match(memo.memo_key(inputs))
        if hit and hit.final:
            return hit, True
    progress = on_progress or (lambda *a: None)
    client = remotes.client(store, name, prompt)
    try:
        parents = [store.get(d.parent_uuid) for d in dependencies]
        if parents:
            progress("push", None)
            push(store, name, parents, client=client)
        uuid = spec.new_uuid()
        b = Bundle.planned(uuid, "run", command, md, dependencies)
        ws = _worksheet(client, remotes.get(store, name))
        journal = Journal(store, name)
        client.create_bundles([bundle_doc(b)], ws)
        journal.set(uuid, "remote-run")
        if not wait:
            return uuid, False
        attrs = wait_remote(client, uuid, progress, poll, timeout)
        progress("download", attrs)
        bundle = import_bundle(store, client, name, attrs)
        journal.set(uuid, "pulled")
        return bundle, False
    finally:
        client.close()


def wait_remote(client: Client, uuid: str, progress: Progress | None = None, poll: float = 0.5,
                timeout: float | None = None) -> dict[str, Any]:
    """Poll a server bundle until it is final; returns its attributes."""
    start, last = time.time(), None
    while True:
        try:
            doc = client.bundle(uuid)
        except RemoteUnreachable:
            if timeout is not None and time.time() - start > timeout:
                raise
            time.sleep(max(poll, 2.0))
            continue
        if doc is None:
            raise RemoteError(f"bundle {uuid} disappeared from the server")
        attrs = doc["attributes"]
        status = (attrs["state"], (attrs.get("metadata") or {}).get("run_status")
                  or (attrs.get("metadata") or {}).get("staged_status"))
        if progress and status != last:
            progress("state", attrs)
        last = status
        if attrs["state"] in FINAL_STATES:
            return attrs
        if timeout is not None and time.time() - start > timeout:
            raise RemoteError(f"bundle {uuid} still {attrs['state']} on the server after {timeout:.0f} s")
        time.sleep(poll)
