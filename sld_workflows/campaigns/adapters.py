"""The few store/workflow entry points the campaign code uses, in one place.

The store layer is being reorganised (connection → embedded/session/runtime/server); keeping every
import of it here means a merge re-points these names and nothing else.
"""

from __future__ import annotations

from typing import Any

from sld_workflows.store.connection import flush_if_due, guard_launchpad, in_task, open_session
from sld_workflows.store.trajectories import FRAMES, TRAJECTORIES, TrajectoryStore, new_trajectory_id
from sld_workflows.workflows.phases import EngineRequest, Frames, engine_for, evaluate_request, integrate
from sld_workflows.workflows.tasks import trajectory_workflow

__all__ = [
    "FRAMES", "TRAJECTORIES", "EngineRequest", "Frames", "TrajectoryStore", "engine_for", "evaluate_request",
    "flush_if_due", "in_task", "integrate", "new_trajectory_id", "open_session", "store_of_task",
    "trajectory_workflow",
]

_STORES: dict[int, TrajectoryStore] = {}


def store_of_task(task: Any) -> tuple[Any, TrajectoryStore]:
    """(LaunchPad, TrajectoryStore) of a running FireTask (spec ``_add_launchpad_and_fw_id``)."""
    from sld_workflows.errors import SLDError

    lpad = getattr(task, "launchpad", None)
    if lpad is None:
        raise SLDError(f"{type(task).__name__} needs the LaunchPad (spec _add_launchpad_and_fw_id)")
    guard_launchpad(lpad)
    store = _STORES.get(id(lpad.db))
    if store is None or store.db is not lpad.db:
        _STORES.clear()
        store = _STORES[id(lpad.db)] = TrajectoryStore(lpad.db)
    return lpad, store
