"""The bundle record: CodaLab's types, states and metadata keys, kept verbatim."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# states (codalab/worker/bundle_state.py)
CREATED, STAGED, PREPARING, RUNNING, FINALIZING = "created", "staged", "preparing", "running", "finalizing"
READY, FAILED, KILLED, WORKER_OFFLINE = "ready", "failed", "killed", "worker_offline"
FINAL_STATES = (READY, FAILED, KILLED)
ACTIVE_STATES = (PREPARING, RUNNING, FINALIZING)

BUNDLE_TYPES = ("dataset", "make", "run")

# Run metadata that users set, with CodaLab's defaults (codalab/bundles/run_bundle.py).
RUN_REQUESTS: dict[str, Any] = {
    "request_docker_image": "",
    "request_time": "",
    "request_memory": "2g",
    "request_disk": "",
    "request_cpus": 1,
    "request_gpus": 0,
    "request_queue": "",
    "request_priority": 0,
    "request_network": False,
    "exclude_patterns": [],
    "allow_failed_dependencies": False,
}

# Generated metadata: changes as the bundle runs, never affects its identity.
GENERATED = (
    "created", "data_size", "failure_message", "time", "time_user", "time_system", "memory_max",
    "exitcode", "started", "last_updated", "docker_image", "staged_status", "remote", "memo_hit_of",
    "job_handle", "cpus", "gpus", "sandbox", "run_status", "memoize",  # the worker's record of how it ran
)


def default_metadata(bundle_type: str, name: str, description: str = "", tags: Any = ()) -> dict[str, Any]:
    """A new bundle's metadata with CodaLab's defaults for its type."""
    md: dict[str, Any] = {"name": name, "description": description, "tags": list(tags)}
    if bundle_type == "dataset":
        md.update(license="", source_url="")
    elif bundle_type == "make":
        md.update(allow_failed_dependencies=False)
    else:
        md.update(json.loads(json.dumps(RUN_REQUESTS)))
    return md


@dataclass(frozen=True)
class Dependency:
    child_path: str  # the key: where the parent appears in the child (./<key>)
    parent_uuid: str
    parent_path: str  # subpath inside the parent, '' for all of it

    def target(self) -> str:
        return self.parent_uuid + (f"/{self.parent_path}" if self.parent_path else "")


@dataclass
class Bundle:
    id: int
    uuid: str
    bundle_type: str
    command: str | None
    state: str
    is_dir: bool | None
    content_hash: str | None
    memo_key: str | None
    metadata: dict[str, Any]
    dependencies: list[Dependency] = field(default_factory=list)
    runspec: dict[str, Any] = field(default_factory=dict)  # what the worker needs: env, PATH, memo inputs

    @classmethod
    def planned(cls, uuid: str, bundle_type: str, command: str | None, metadata: dict[str, Any],
                dependencies: list[Dependency]) -> Bundle:
        """A bundle in no store yet: one created on a CodaLab server under a locally minted uuid."""
        return cls(id=0, uuid=uuid, bundle_type=bundle_type, command=command, state="created", is_dir=None,
                   content_hash=None, memo_key=None, metadata=metadata, dependencies=list(dependencies))

    @property
    def name(self) -> str | None:
        return self.metadata.get("name")

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def summary(self) -> str:
        """CodaLab's `summary` field: '! command' for runs, '= deps' for makes."""
        if self.bundle_type == "run":
            return "! " + (self.command or "")
        if self.bundle_type == "make":
            return "= " + " ".join(f"{d.child_path}:{d.target()}" for d in self.dependencies)
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "bundle_type": self.bundle_type,
            "command": self.command,
            "state": self.state,
            "is_dir": self.is_dir,
            "content_hash": self.content_hash,
            "memo_key": self.memo_key,
            "metadata": self.metadata,
            "dependencies": [
                {"child_path": d.child_path, "parent_uuid": d.parent_uuid, "parent_path": d.parent_path}
                for d in self.dependencies
            ],
        }
