"""The trajectory store: the only code that talks to the database (pymongo API only).

- :mod:`.keys` — frame kinds, statuses (StrEnums) and the Firework-spec keys (``FwSpec``);
- :mod:`.trajectories` — schema, indexes, idempotent frame upserts, the 16 MB guard;
- :mod:`.session` — opening a project's LaunchPad: its local server (default), the embedded store,
  or any MongoDB (``launchpad.yaml``);
- :mod:`.server` — the project's local MongoDB-compatible server (start/stop/status, server.json);
- :mod:`.embedded` — the mongomock-persistence file (lock file, atomic writes);
- :mod:`.runtime` — a worker's runtime (caches, store handles, SIGTERM policy);
- :mod:`.fireworks_compat` — work-arounds on FireWorks' LaunchPad for the servers we use;
- :mod:`.connection` — the former module, re-exporting the names above.
"""

from sld_workflows.store.embedded import StoreLockedError, guard_launchpad
from sld_workflows.store.keys import FireworkState, FrameKind, FwSpec, TrajectoryStatus
from sld_workflows.store.runtime import WorkerRuntime
from sld_workflows.store.server import LocalServer, ServerError
from sld_workflows.store.session import ConnectionFailedError, Session, default_store_file, open_session
from sld_workflows.store.trajectories import (
    FRAME_KINDS,
    DocumentTooLargeError,
    FrameConflictError,
    StoreError,
    TrajectoryStore,
    UnknownTrajectoryError,
)

__all__ = [
    "FRAME_KINDS",
    "ConnectionFailedError",
    "FireworkState",
    "FrameKind",
    "FwSpec",
    "LocalServer",
    "ServerError",
    "TrajectoryStatus",
    "DocumentTooLargeError",
    "FrameConflictError",
    "Session",
    "StoreError",
    "StoreLockedError",
    "TrajectoryStore",
    "UnknownTrajectoryError",
    "WorkerRuntime",
    "default_store_file",
    "guard_launchpad",
    "open_session",
]
