"""The trajectory store: the only code that talks to the database (pymongo API only).

- :mod:`.keys` — frame kinds, statuses (StrEnums) and the Firework-spec keys (``FwSpec``);
- :mod:`.trajectories` — schema, indexes, idempotent frame upserts, the 16 MB guard;
- :mod:`.connection` — opening a LaunchPad on a real MongoDB (``launchpad.yaml``) or on the embedded
  mongomock-persistence store (lock file, atomic writes, SIGTERM save).
"""

from sld_workflows.store.connection import (
    ConnectionFailedError,
    Session,
    StoreLockedError,
    default_store_file,
    guard_launchpad,
    open_session,
)
from sld_workflows.store.keys import FireworkState, FrameKind, FwSpec, TrajectoryStatus
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
    "TrajectoryStatus",
    "DocumentTooLargeError",
    "FrameConflictError",
    "Session",
    "StoreError",
    "StoreLockedError",
    "TrajectoryStore",
    "UnknownTrajectoryError",
    "default_store_file",
    "guard_launchpad",
    "open_session",
]
