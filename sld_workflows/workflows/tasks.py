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
import uuid
from typing import Any

from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize

from sld_workflows.errors import SLDError
from sld_workflows.store.embedded import flush_if_due, guard_launchpad
from sld_workflows.store.fireworks_compat import patch_launchpad
from sld_workflows.store.keys import FwSpec
from sld_workflows.store.runtime import WorkerRuntime
from sld_workflows.store.trajectories import TrajectoryStore
from sld_workflows.workflows.phases import EngineRequest, Frames, evaluate_request, integrate


class _SLDTask(FiretaskBase):
    """What every SLD task does around its step: find the store, run inside the worker runtime's
    task scope (SIGTERM policy), record the worker, and guard the chain with claim tokens."""

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        lpad = getattr(self, "launchpad", None)
        if lpad is None:
            raise SLDError(
                f"{type(self).__name__} needs the LaunchPad (spec _add_launchpad_and_fw_id); offline mode "
                "is not supported for SLD tasks"
            )
        guard_launchpad(lpad)
        patch_launchpad(lpad)  # also for a plain `rlaunch`: its additions draw fw_ids from the counter
        runtime = WorkerRuntime.current()
        store = runtime.store_for(lpad)
        trajectory = self["trajectory"]
        fw_id = getattr(self, "fw_id", None)
        with runtime.task(lpad, fw_id, trajectory):
            sld = FwSpec.of(fw_spec)
            claim = sld.get("claim")
            if claim is not None and store.claim_holder(trajectory, sld["chain"], sld["seq"]) != claim:
                # a second chain (its parent was rerun while the first chain went on): stop it here
                return FWAction(stored_data={"trajectory": trajectory, "orphan": True})
            worker = _worker_record(lpad, fw_id)
            doc = store.claim(trajectory, worker)
            action = self._run(lpad, store, doc)
            if action.additions and sld.get("chain") is not None:
                token = f"{worker.get('launch_id')}@{worker['host']}:{worker['pid']}"
                if not store.claim_successor(trajectory, sld["chain"], sld["seq"] + 1, token):
                    return FWAction(stored_data={**(action.stored_data or {}), "successor_claimed_by_other": True})
                for fw in action.additions:
                    fw.spec[FwSpec.KEY].update(chain=sld["chain"], seq=sld["seq"] + 1, claim=token)
            return action

    def _run(self, lpad: Any, store: TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        raise NotImplementedError


def _worker_record(lpad: Any, fw_id: Any) -> dict[str, Any]:
    """Who runs the trajectory now (``sld recover`` checks the pid and the launch)."""
    launch = None
    if fw_id is not None:
        launch = lpad.launches.find_one({"fw_id": fw_id, "state": "RUNNING"}, {"launch_id": 1},
                                        sort=[("launch_id", -1)])
    return {"fw_id": fw_id, "launch_id": None if launch is None else launch["launch_id"],
            "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _finish(store: TrajectoryStore, trajectory: str) -> None:
    store.finish(trajectory)


@explicit_serialize
class SLDStepTask(_SLDTask):
    """Merged layout: one whole SLD step (integrator + in-process engine) per Firework."""

    required_params = ["trajectory"]
    #: ``step`` is not read (the step comes from the stored ``steps_done``); Fireworks stored before
    #: it was dropped still carry it, so it stays accepted
    optional_params = ["step"]

    def _run(self, lpad: Any, store: TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        trajectory = self["trajectory"]
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
class SLDEngineTask(_SLDTask):
    """Split layout: evaluate one stored input frame with the trajectory's engine, in the launch dir."""

    required_params = ["trajectory", "step", "input_kind"]

    def _run(self, lpad: Any, store: TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        request = EngineRequest(self["trajectory"], int(self["step"]), self["input_kind"])
        wall = evaluate_request(store, doc, request, launch_dir=os.getcwd())
        flush_if_due(lpad)
        return FWAction(stored_data={"trajectory": request.trajectory, "step": request.step,
                                     "kind": request.output_kind, "engine_wall_time_s": wall},
                        additions=[integrator_firework(doc, request.step)])


@explicit_serialize
class SLDIntegratorTask(_SLDTask):
    """Split layout: finish step(s) from stored frames, then add the next engine Firework."""

    required_params = ["trajectory"]

    def _run(self, lpad: Any, store: TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        trajectory = self["trajectory"]
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
    chain = uuid.uuid4().hex[:12]  # a new chain of claims per workflow added (submit, resume, extend)
    metadata = {"sld_trajectory": doc["_id"], "sld_name": doc.get("name")}
    name = f"sld:{doc.get('name', 'trajectory')}:{doc['_id']}"
    if doc.get("layout", "merged") == "merged":
        root = step_firework(doc, step)
    elif request is None:
        raise SLDError("split layout: the first engine request is needed to build the workflow")
    else:
        root = engine_firework(doc, request)
    root.spec[FwSpec.KEY].update(chain=chain, seq=0)
    return Workflow([root], name=name, metadata=metadata)
