"""FireTasks of SLD trajectories. Specs carry ids only (trajectory, step, kind); arrays live in the store.

Layouts (chosen per trajectory, ``layout`` in its store document):

- ``merged`` — one Firework per SLD step: :class:`SLDStepTask` runs the integrator phases and the
  in-process engine call(s) of step n → n+1, stores the frames, and adds the Firework of step n+1
  (``FWAction(additions=...)``). For the model and analytic engines.
- ``split`` — the engine in its own Firework (VASP: its own launch directory, Custodian):
  :class:`SLDEngineTask` evaluates one stored input frame and adds an :class:`SLDIntegratorTask`
  Firework, which finishes what the frames allow and adds the next engine Firework. Fireworks per step: 2 with
  ``sib-fixed-field``, 4 with full ``sib`` (two engine calls). Each Firework adds the next one
  (single-Firework additions, like a plain FireWorks chain).

Each task reaches the store through the Rocket's LaunchPad (``_add_launchpad_and_fw_id``), never a
second client. Every task is idempotent (see :mod:`sld_workflows.workflows.phases`), so a lost run
can simply be rerun.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize

from sld_workflows.errors import SLDError
from sld_workflows.store.connection import flush_if_due, guard_launchpad, in_task
from sld_workflows.store.keys import FwSpec
from sld_workflows.store.trajectories import TrajectoryStore
from sld_workflows.workflows.phases import EngineRequest, Frames, evaluate_request, integrate

_STORES: dict[int, TrajectoryStore] = {}


def _store(task: FiretaskBase) -> tuple[Any, TrajectoryStore]:
    lpad = getattr(task, "launchpad", None)
    if lpad is None:
        raise SLDError(
            f"{type(task).__name__} needs the LaunchPad (spec _add_launchpad_and_fw_id); offline mode "
            "is not supported for SLD tasks"
        )
    guard_launchpad(lpad)
    store = _STORES.get(id(lpad.db))
    if store is None or store.db is not lpad.db:
        store = TrajectoryStore(lpad.db)
        _STORES.clear()
        _STORES[id(lpad.db)] = store
    return lpad, store


def _claim(store: TrajectoryStore, trajectory: str, fw_id: Any) -> dict[str, Any]:
    """Mark the trajectory RUNNING by this process (``sld recover`` checks the pid) and return it."""
    worker = {"fw_id": fw_id, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    return store.claim(trajectory, worker)


def _finish(store: TrajectoryStore, trajectory: str) -> None:
    store.finish(trajectory)


@explicit_serialize
class SLDStepTask(FiretaskBase):
    """Merged layout: one whole SLD step (integrator + in-process engine) per Firework."""

    required_params = ["trajectory"]
    #: ``step`` is not read (the step comes from the stored ``steps_done``); Fireworks stored before
    #: it was dropped still carry it, so it stays accepted
    optional_params = ["step"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        with in_task():
            return self._run(fw_spec)

    def _run(self, fw_spec: dict[str, Any]) -> FWAction:
        lpad, store = _store(self)
        trajectory = self["trajectory"]
        doc = _claim(store, trajectory, getattr(self, "fw_id", None))
        # at most one read of the frames of steps n, n+1 per Firework (none if this process has them)
        frames = Frames(store, trajectory, optimistic=True)
        completed = 0
        while True:
            request, done = integrate(store, doc, max_steps=1 - completed, store_intermediates=False, frames=frames)
            completed += done
            if request is None or completed >= 1:
                break
            evaluate_request(store, doc, request, frames=frames)
            flush_if_due(lpad)
        doc = store.get_trajectory(trajectory)
        flush_if_due(lpad)
        stored = {"trajectory": trajectory, "steps_done": doc["steps_done"], "energy_ev": doc.get("last_energy_ev")}
        if doc["steps_done"] >= doc["steps_requested"]:
            _finish(store, trajectory)
            return FWAction(stored_data=stored)
        return FWAction(stored_data=stored, additions=[step_firework(doc, doc["steps_done"])])


@explicit_serialize
class SLDEngineTask(FiretaskBase):
    """Split layout: evaluate one stored input frame with the trajectory's engine, in the launch dir."""

    required_params = ["trajectory", "step", "input_kind"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        with in_task():
            return self._run(fw_spec)

    def _run(self, fw_spec: dict[str, Any]) -> FWAction:
        lpad, store = _store(self)
        doc = _claim(store, self["trajectory"], getattr(self, "fw_id", None))
        request = EngineRequest(self["trajectory"], int(self["step"]), self["input_kind"])
        wall = evaluate_request(store, doc, request, launch_dir=os.getcwd())
        flush_if_due(lpad)
        return FWAction(stored_data={"trajectory": request.trajectory, "step": request.step,
                                     "kind": request.output_kind, "engine_wall_time_s": wall},
                        additions=[integrator_firework(doc, request.step)])


@explicit_serialize
class SLDIntegratorTask(FiretaskBase):
    """Split layout: finish step(s) from stored frames, then add the next engine Firework."""

    required_params = ["trajectory"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        with in_task():
            return self._run(fw_spec)

    def _run(self, fw_spec: dict[str, Any]) -> FWAction:
        lpad, store = _store(self)
        trajectory = self["trajectory"]
        doc = _claim(store, trajectory, getattr(self, "fw_id", None))
        request, _ = integrate(store, doc, store_intermediates=True)
        doc = store.get_trajectory(trajectory)
        flush_if_due(lpad)
        stored = {"trajectory": trajectory, "steps_done": doc["steps_done"], "energy_ev": doc.get("last_energy_ev")}
        if request is None:
            _finish(store, trajectory)
            return FWAction(stored_data=stored)
        return FWAction(stored_data=stored, additions=[engine_firework(doc, request)])


# ------------------------------------------------------------------------------------ builders
def _base_spec(doc: dict[str, Any], step: int, kind: str, engine: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "_add_launchpad_and_fw_id": True,
        FwSpec.KEY: FwSpec.make(doc["_id"], step, kind),
    }
    options = doc.get("fireworks") or {}
    category = (options.get("engine_category") or options.get("category")) if engine else options.get("category")
    if category:
        spec["_category"] = category
    if options.get("priority") is not None:
        spec["_priority"] = options["priority"]
    return spec


def _fw_name(doc: dict[str, Any], step: int, what: str) -> str:
    return f"{doc.get('name', 'sld')}:{doc['_id']}:{what}{step}"


def step_firework(doc: dict[str, Any], step: int) -> Firework:
    """Merged layout: the Firework that advances ``doc`` from ``step`` to ``step + 1``."""
    return Firework(
        SLDStepTask(trajectory=doc["_id"]),
        spec=_base_spec(doc, step, "step", engine=True),
        name=_fw_name(doc, step, "step"),
    )


def engine_firework(doc: dict[str, Any], request: EngineRequest) -> Firework:
    """Split layout: the engine Firework of ``request`` (it adds its integrator Firework when done)."""
    return Firework(
        SLDEngineTask(trajectory=doc["_id"], step=request.step, input_kind=request.input_kind),
        spec=_base_spec(doc, request.step, request.input_kind, engine=True),
        name=_fw_name(doc, request.step, f"engine-{request.input_kind}-"),
    )


def integrator_firework(doc: dict[str, Any], step: int) -> Firework:
    """Split layout: the integrator Firework that follows an engine Firework."""
    return Firework(
        SLDIntegratorTask(trajectory=doc["_id"]),
        spec=_base_spec(doc, step, "integrate", engine=False),
        name=_fw_name(doc, step, "integrate"),
    )


def trajectory_workflow(doc: dict[str, Any], request: EngineRequest | None = None) -> Workflow:
    """The workflow that runs (or continues) one trajectory from its stored ``steps_done``."""
    step = int(doc.get("steps_done", doc.get("start_step", 0)))
    metadata = {"sld_trajectory": doc["_id"], "sld_name": doc.get("name")}
    name = f"sld:{doc.get('name', 'trajectory')}:{doc['_id']}"
    if doc.get("layout", "merged") == "merged":
        return Workflow([step_firework(doc, step)], name=name, metadata=metadata)
    if request is None:
        raise SLDError("split layout: the first engine request is needed to build the workflow")
    return Workflow([engine_firework(doc, request)], name=name, metadata=metadata)
