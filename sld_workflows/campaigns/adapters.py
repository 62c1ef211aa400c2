"""The few store/workflow entry points the campaign code uses, in one place.

Keeping every import of the store and workflow layers here means a change there re-points these
names and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sld_workflows.store.embedded import flush_if_due, guard_launchpad
from sld_workflows.store.runtime import WorkerRuntime
from sld_workflows.store.session import open_session
from sld_workflows.store.trajectories import FRAMES, TRAJECTORIES, StoreError, TrajectoryStore, new_trajectory_id
from sld_workflows.workflows.phases import (
    EngineRequest,
    Frames,
    engine_for,
    evaluate_request,
    integrate,
    settings_for,
)
from sld_workflows.workflows.tasks import trajectory_workflow

__all__ = [
    "FRAMES", "TRAJECTORIES", "EngineRequest", "Frames", "StoreError", "TrajectoryStore", "engine_for",
    "evaluate_request", "flush_if_due", "frame_doc", "in_task", "integrate", "new_trajectory_id", "open_session",
    "put_frames", "settings_for", "store_of_task", "trajectory_workflow",
]


@contextlib.contextmanager
def in_task(task: Any) -> Iterator[None]:
    """Scope of a campaign FireTask in the worker's runtime: a SIGTERM inside puts its Firework back
    to READY and exits 143 (as for every SLD task)."""
    lpad = getattr(task, "launchpad", None)
    with WorkerRuntime.current().task(lpad, getattr(task, "fw_id", None), task.get("trajectory")):
        yield


def frame_doc(trajectory: str, step: int, kind: str, obj: Any, **extra: Any) -> dict[str, Any]:
    """The ``sld_frames`` document :meth:`Frames.put` would write for ``obj`` (a state or evaluation)."""
    import datetime

    from sld_workflows.evaluation import Evaluation
    from sld_workflows.jsonable import jsonable
    from sld_workflows.workflows.phases import evaluation_data

    if isinstance(obj, Evaluation):
        data = evaluation_data(obj)
        extra.setdefault("energy_ev", obj.energy_ev)
        extra["info"] = jsonable(obj.info, non_finite="keep", objects="as_dict_or_str")
    else:
        data = obj.as_dict()
        extra.setdefault("time_fs", obj.time_fs)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return {"trajectory": trajectory, "step": int(step), "kind": kind, "data": data, **extra, "written_on": now}


def put_frames(store: TrajectoryStore, docs: list[dict[str, Any]]) -> None:
    """Insert-or-verify many frames in one round trip (``insert_many``, unordered). Frames already
    stored (a batch recomputed after a crash) are verified through :meth:`TrajectoryStore.put_frame`,
    which raises ``FrameConflictError`` if their data differ. Belongs in the store layer; kept here
    until it has a batch write of its own."""
    import pymongo.errors

    if not docs:
        return
    store.check_size(docs[0], f"frame {docs[0]['kind']} of trajectory {docs[0]['trajectory']}")
    try:
        store.frames.insert_many(docs, ordered=False)
    except pymongo.errors.BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        for e in errors:
            d = docs[e["index"]]
            extra = {k: v for k, v in d.items() if k not in ("trajectory", "step", "kind", "data", "written_on", "_id")}
            store.put_frame(d["trajectory"], d["step"], d["kind"], d["data"], **extra)


def store_of_task(task: Any) -> tuple[Any, TrajectoryStore]:
    """(LaunchPad, TrajectoryStore) of a running FireTask (spec ``_add_launchpad_and_fw_id``)."""
    from sld_workflows.errors import SLDError

    lpad = getattr(task, "launchpad", None)
    if lpad is None:
        raise SLDError(f"{type(task).__name__} needs the LaunchPad (spec _add_launchpad_and_fw_id)")
    guard_launchpad(lpad)
    return lpad, WorkerRuntime.current().store_for(lpad)
