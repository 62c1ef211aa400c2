"""Submit, continue, branch and recover trajectories (used by the ``sld`` CLI and by tests).

Inputs are validated completely before anything is written. Everything needed to continue a
trajectory lives in the store (engine dict, dynamics settings, frames), so ``extend``, ``resume``
and ``restart`` work even after its workflow was deleted from the LaunchPad.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.errors import SLDError, SpecError
from sld_workflows.run.output import package_versions
from sld_workflows.state import SLDState
from sld_workflows.store.connection import Session
from sld_workflows.store.keys import (
    ACTIVE_FIREWORK_STATES,
    QUEUED_FIREWORK_STATES,
    FireworkState,
    FrameKind,
    FwSpec,
    TrajectoryStatus,
)
from sld_workflows.store.trajectories import new_trajectory_id
from sld_workflows.workflows.phases import EngineRequest, Frames, engine_for, settings_for
from sld_workflows.workflows.tasks import trajectory_workflow

if TYPE_CHECKING:
    from fireworks import Workflow

LAYOUTS = ("merged", "split")
ACTIVE_STATES = [str(s) for s in ACTIVE_FIREWORK_STATES]


@dataclasses.dataclass
class TrajectoryInput:
    """What a trajectory needs, independent of how it was specified."""

    name: str
    initial_state: SLDState
    engine: Any
    dynamics: DynamicsSettings
    steps: int
    output_every: int = 1
    spec: dict[str, Any] | None = None
    engine_kind: str | None = None

    @property
    def default_layout(self) -> str:
        # engines that run a DFT code in a directory (VASP, ABINIT): one engine Firework per calculation
        from sld_workflows.engines.file_engine import FileEngine

        file_engine = isinstance(self.engine, FileEngine) or "vasp" in type(self.engine).__module__
        return "split" if self.engine_kind in ("vasp", "abinit") or file_engine else "merged"


def read_spec_file(source: str | os.PathLike) -> dict[str, Any]:
    """The mapping of a YAML spec file (one-line errors for a missing file, bad YAML, no mapping)."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"spec file {path} does not exist")
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError("", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise SpecError("", f"{path} must contain a mapping at the top level")
    return dict(raw)


def load_input(source: str | os.PathLike | Mapping[str, Any]) -> TrajectoryInput:
    """A run spec (``sld_workflows.run.spec``; YAML path or mapping), or the internal form
    ``{name, initial_state: SLDState dict, engine: engine dict, dynamics: dict, steps, output_every}``."""
    raw: Any = source if isinstance(source, Mapping) else read_spec_file(source)
    if "initial_state" in raw:
        return _internal_input(raw)
    from sld_workflows.run.spec import RunSpec

    spec = RunSpec.from_dict(source) if isinstance(source, Mapping) else RunSpec.from_file(source)
    engine = spec.build_engine()
    if not hasattr(engine, "as_dict"):
        raise SpecError("engine", f"{type(engine).__name__} is not serialisable (no as_dict); cannot submit it")
    return TrajectoryInput(
        name=spec.name, initial_state=spec.build_initial_state(), engine=engine, dynamics=spec.settings,
        steps=int(spec.steps), output_every=int(spec.output_every),
        spec=spec.with_embedded_structure().as_dict(),  # stored specs must not depend on this machine's files
        engine_kind=spec.engine_kind,
    )


def _internal_input(raw: Mapping[str, Any]) -> TrajectoryInput:
    from monty.json import MontyDecoder

    missing = {"initial_state", "engine", "dynamics", "steps"} - set(raw)
    if missing:
        raise SpecError(sorted(missing)[0], "required key is missing")
    try:
        state = SLDState.from_dict(raw["initial_state"])
    except (ValueError, TypeError, KeyError) as exc:
        raise SpecError("initial_state", str(exc)) from None
    try:
        engine = MontyDecoder().process_decoded(raw["engine"])
    except Exception as exc:
        raise SpecError("engine", f"cannot rebuild the engine: {exc}") from None
    if not hasattr(engine, "evaluate") or not hasattr(engine, "as_dict"):
        raise SpecError("engine", "must be an MSONable engine dict (@module/@class) with evaluate()")
    try:
        dynamics = DynamicsSettings.from_dict(dict(raw["dynamics"]))
    except (ValueError, TypeError) as exc:
        raise SpecError("dynamics", str(exc)) from None
    steps = raw["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise SpecError("steps", f"must be an integer >= 0, got {steps!r}")
    output_every = raw.get("output_every", 1)
    if isinstance(output_every, bool) or not isinstance(output_every, int) or output_every < 1:
        raise SpecError("output_every", f"must be an integer >= 1, got {output_every!r}")
    return TrajectoryInput(str(raw.get("name", "trajectory")), state, engine, dynamics, steps, output_every,
                           spec=None)


def _versions() -> dict[str, str]:
    return package_versions(extra=("fireworks", "pymongo", "custodian"))


def _provenance(engine: Any, engine_dict: dict[str, Any], dynamics: DynamicsSettings) -> dict[str, Any]:
    return {
        "engine_class": f"{engine_dict.get('@module')}.{engine_dict.get('@class')}",
        "engine_settings": {k: v for k, v in engine_dict.items() if not k.startswith("@")}
        if len(str(engine_dict)) < 100_000 else "see engine",
        "spin_scheme": dynamics.spin_scheme.value,
        "seed": dynamics.seed,
        "versions": _versions(),
        "submitted_from": socket.gethostname(),
    }


def _first_request(doc: dict[str, Any]) -> EngineRequest:
    return EngineRequest(doc["_id"], int(doc["steps_done"]), FrameKind.STATE)


def _add_workflow(session: Session, doc: dict[str, Any]) -> int:
    request = None
    if doc.get("layout") == "split":
        has_eval = Frames(session.store, doc["_id"]).get(doc["steps_done"], FrameKind.EVALUATION) is not None
        request = None if not has_eval else _split_resume_request(session, doc)
        request = request or _first_request(doc)
    wf = trajectory_workflow(doc, request)
    old_new = session.lpad.add_wf(wf)
    fw_id = min(old_new.values())
    session.store.update_trajectory(doc["_id"], status=TrajectoryStatus.READY.value, root_fw_id=fw_id, worker=None)
    return fw_id


def _split_resume_request(session: Session, doc: dict[str, Any]) -> EngineRequest | None:
    from sld_workflows.workflows.phases import integrate

    request, _ = integrate(session.store, doc, store_intermediates=True)
    return request


def new_trajectory_doc(
    inp: TrajectoryInput,
    layout: str | None = None,
    name: str | None = None,
    fireworks_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The store document of a new trajectory of ``inp`` (validated layout; not yet stored)."""
    layout = layout or inp.default_layout
    if layout not in LAYOUTS:
        raise SLDError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    engine_dict = inp.engine.as_dict()
    start = int(inp.initial_state.step)
    return {
        "_id": new_trajectory_id(),
        "name": name or inp.name,
        "parent": None,
        "engine": engine_dict,
        "dynamics": inp.dynamics.as_dict(),
        "spec": inp.spec,
        "start_step": start,
        "steps_requested": start + int(inp.steps),
        "steps_done": start,
        "output_every": inp.output_every,
        "layout": layout,
        "fireworks": fireworks_options or {},
        "provenance": _provenance(inp.engine, engine_dict, inp.dynamics),
        "engine_wall_time_s": 0.0,
        "last_energy_ev": None,
    }


def store_new_trajectory(store: Any, doc: dict[str, Any], initial_state: SLDState) -> str:
    """Store the document and the state of its first step (both or neither)."""
    tid = store.create_trajectory(doc)
    try:
        Frames(store, tid).put(int(doc["start_step"]), FrameKind.STATE, initial_state)
    except BaseException:
        store.delete_trajectory(tid)
        raise
    return tid


def first_workflow(doc: dict[str, Any]) -> Workflow:
    """The workflow of a freshly stored trajectory (its first step's Firework)."""
    return trajectory_workflow(doc, _first_request(doc) if doc.get("layout") == "split" else None)


def submit(
    session: Session,
    source: str | os.PathLike | Mapping[str, Any] | TrajectoryInput,
    layout: str | None = None,
    name: str | None = None,
    fireworks_options: dict[str, Any] | None = None,
) -> str:
    """Validate, store the trajectory (document + state of its first step), add its workflow."""
    inp = source if isinstance(source, TrajectoryInput) else load_input(source)
    doc = new_trajectory_doc(inp, layout, name, fireworks_options)
    session.store.check_size(doc, "trajectory document")
    session.initialize_launchpad()
    tid = store_new_trajectory(session.store, doc, inp.initial_state)
    try:
        _add_workflow(session, session.store.get_trajectory(tid))
    except BaseException:
        session.store.delete_trajectory(tid)
        raise
    return tid


def active_fw_ids(session: Session, trajectory: str) -> list[int]:
    return session.lpad.get_fw_ids(FwSpec.query(trajectory, ACTIVE_FIREWORK_STATES))


def _require_idle(session: Session, trajectory: str, what: str) -> None:
    active = active_fw_ids(session, trajectory)
    if active:
        raise SLDError(
            f"cannot {what} trajectory {trajectory}: it still has active Fireworks {active[:5]} "
            "(running or queued); wait for them, or run `sld recover` if their worker died"
        )


def resume(session: Session, trajectory: str) -> int | None:
    """Add a workflow continuing ``trajectory`` from its stored frames; None if nothing is left."""
    doc = session.store.get_trajectory(trajectory)
    _require_idle(session, trajectory, "resume")
    if doc["steps_done"] >= doc["steps_requested"] and Frames(session.store, trajectory).get(
        doc["steps_done"], FrameKind.EVALUATION
    ) is not None:
        return None
    return _add_workflow(session, doc)


def extend(session: Session, trajectory: str, steps: int) -> int:
    """Ask for ``steps`` more steps and continue (works after the workflow was deleted)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SLDError(f"--steps must be an integer >= 1, got {steps!r}")
    doc = session.store.get_trajectory(trajectory)
    _require_idle(session, trajectory, "extend")
    new_target = int(doc["steps_requested"]) + steps
    session.store.update_trajectory(trajectory, steps_requested=new_target, status=TrajectoryStatus.READY.value)
    doc = session.store.get_trajectory(trajectory)
    return _add_workflow(session, doc)


def restart(
    session: Session,
    trajectory: str,
    from_step: int,
    steps: int | None = None,
    seed: int | None = None,
    name: str | None = None,
) -> str:
    """New branch trajectory starting from the stored state of ``from_step`` (the parent is kept)."""
    parent = session.store.get_trajectory(trajectory)
    if isinstance(from_step, bool) or not isinstance(from_step, int):
        raise SLDError(f"--from-step must be an integer, got {from_step!r}")
    frames = Frames(session.store, trajectory)
    state = frames.get(from_step, FrameKind.STATE)
    if state is None:
        raise SLDError(
            f"trajectory {trajectory} has no stored state at step {from_step} "
            f"(stored steps: {parent.get('start_step', 0)}..{parent['steps_done']})"
        )
    evaluation = frames.get(from_step, FrameKind.EVALUATION)
    if steps is None:
        steps = max(int(parent["steps_requested"]) - from_step, 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SLDError(f"--steps must be an integer >= 1, got {steps!r}")
    dynamics = settings_for(parent)
    if seed is not None:
        try:
            dynamics = dynamics.replace(seed=seed)
        except ValueError as exc:
            raise SLDError(f"--seed: {exc}") from None
    engine_for(parent)  # the stored engine must still rebuild
    doc = {k: v for k, v in parent.items() if k not in ("_id", "created_on", "updated_on", "worker", "root_fw_id")}
    doc.update(
        _id=new_trajectory_id(), name=name or f"{parent.get('name', 'trajectory')}-from{from_step}",
        parent={"trajectory": trajectory, "step": from_step}, branch_step=from_step,
        dynamics=dynamics.as_dict(), start_step=from_step, steps_requested=from_step + steps,
        steps_done=from_step, status=TrajectoryStatus.READY.value, engine_wall_time_s=0.0,
        last_energy_ev=None if evaluation is None else evaluation.energy_ev,
    )
    doc["provenance"] = {**parent.get("provenance", {}), "seed": dynamics.seed, "versions": _versions()}
    session.initialize_launchpad()
    tid = session.store.create_trajectory(doc)
    new_frames = Frames(session.store, tid)
    new_frames.put(from_step, FrameKind.STATE, state)
    if evaluation is not None:
        src = session.store.get_frame(trajectory, from_step, FrameKind.EVALUATION)
        session.store.put_frame(tid, from_step, FrameKind.EVALUATION, src["data"], energy_ev=src.get("energy_ev"),
                                info=src.get("info"), launch_dir=src.get("launch_dir"),
                                copied_from=trajectory)
    _add_workflow(session, session.store.get_trajectory(tid))
    return tid


# ------------------------------------------------------------------------------------ recovery
def _pid_dead(worker: Mapping[str, Any]) -> bool:
    if worker.get("host") != socket.gethostname():
        return False
    try:
        import psutil
    except ImportError:  # pragma: no cover - without psutil: is any process with this pid alive?
        try:
            os.kill(int(worker["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, KeyError):
            return False
        return False
    try:
        proc = psutil.Process(int(worker["pid"]))
    except (psutil.NoSuchProcess, ValueError, KeyError):
        return True
    return proc.create_time() > float(worker.get("since", 0)) + 1.0 or proc.status() == psutil.STATUS_ZOMBIE


def running_workers(session: Session, fw_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Who runs each RUNNING Firework: the ``sld_worker`` identity its launch recorded at checkout
    (``sld worker``), else the worker our task recorded on the trajectory (plain ``rlaunch``)."""
    out: dict[int, dict[str, Any]] = {}
    for launch in session.lpad.launches.find({"fw_id": {"$in": list(fw_ids)}, "state": "RUNNING"},
                                             {"fw_id": 1, "launch_id": 1, "fworker.env.sld_worker": 1, "host": 1}):
        identity = (((launch.get("fworker") or {}).get("env") or {}).get("sld_worker"))
        previous = out.get(launch["fw_id"])
        if identity and (previous is None or previous.get("launch_id", -1) < launch["launch_id"]):
            out[launch["fw_id"]] = {**identity, "launch_id": launch["launch_id"]}
    for doc in session.store.running_with_worker():
        worker = doc.get("worker") or {}
        if worker.get("fw_id") in fw_ids and worker["fw_id"] not in out:
            out[worker["fw_id"]] = worker
    return out


def release_dead_workflow_locks(session: Session, dead: list[int], wait_s: float = 2.0) -> list[int]:
    """Unlock SLD workflows whose lock was left by a killed worker.

    FireWorks locks a workflow document (``locked: true``) for the few milliseconds of a checkout or
    a completion; a worker killed inside that window leaves it locked, and every later update waits
    ``WFLOCK_EXPIRATION_SECS`` (300 s) and then fails or breaks it. A lock seen twice ``wait_s``
    apart whose workflow has no RUNNING Firework of a live worker is such a leftover. Returns the
    fw_ids (one per workflow) whose workflow was unlocked.
    """
    import time

    wfs = session.lpad.workflows

    def locked() -> dict[Any, list[int]]:
        return {w["_id"]: w["nodes"] for w in wfs.find({"locked": True, "metadata.sld_trajectory": {"$exists": True}},
                                                       {"nodes": 1})}

    first = locked()
    if not first:
        return []
    time.sleep(wait_s)
    released = []
    for wf_id, nodes in locked().items():
        if wf_id not in first:
            continue
        running = session.lpad.get_fw_ids({"fw_id": {"$in": nodes}, "state": FireworkState.RUNNING.value})
        if all(fw in dead for fw in running):
            wfs.update_one({"_id": wf_id, "locked": True}, {"$unset": {"locked": 1}})
            released.append(nodes[0])
    return released


def recover(session: Session, expiration_secs: float | None = None) -> dict[str, list[int]]:
    """Rerun lost SLD Fireworks with FireWorks' ``detect_lostruns``.

    Lost = RUNNING and (a) on the embedded store: always (this process holds the store's lock, so
    no live worker can be running them); (b) its worker (host, pid recorded at checkout by ``sld
    worker``, or by our task) is gone from this host — whether it died before or after our task
    claimed the step; (c) no heartbeat for ``expiration_secs`` (default FireWorks' RUN_EXPIRATION_SECS:
    workers on other hosts, plain ``rlaunch`` killed before our task ran). Also refreshes inconsistent
    Fireworks (RUNNING with a finished launch).
    """
    from fireworks.fw_config import RUN_EXPIRATION_SECS

    lpad = session.lpad
    running = lpad.get_fw_ids(FwSpec.query(states=FireworkState.RUNNING))
    dead: list[int] = []
    if session.embedded:
        dead = list(running)
    else:
        for fw_id, worker in running_workers(session, running).items():
            if _pid_dead(worker):
                dead.append(fw_id)
    release_dead_workflow_locks(session, dead)
    rerun: list[int] = []
    if dead:
        _, lost, _ = lpad.detect_lostruns(expiration_secs=0, rerun=True, query={"fw_id": {"$in": sorted(dead)}})
        rerun += lost
    expiration = RUN_EXPIRATION_SECS if expiration_secs is None else expiration_secs
    _, lost, inconsistent = lpad.detect_lostruns(
        expiration_secs=expiration, rerun=True, refresh=True, query=FwSpec.query()
    )
    rerun += [f for f in lost if f not in rerun]
    for fw_id in rerun:
        tid = session.store.trajectory_of_firework(fw_id)
        if tid:
            session.store.update_trajectory(tid, status=TrajectoryStatus.READY.value, worker=None)
    rerun += [f for f in release_interrupted_checkouts(session) if f not in rerun]
    resumed = resume_broken_chains(session)
    return {"rerun": sorted(rerun), "inconsistent": sorted(inconsistent), "running_checked": sorted(running),
            "resumed": resumed}


def release_interrupted_checkouts(session: Session, older_than_s: float = 10.0) -> list[int]:
    """Put back to READY the SLD Fireworks a killed worker left RESERVED.

    FireWorks' checkout marks the Firework RESERVED, then stores the launch and marks it RUNNING, a
    few milliseconds later; a worker killed in between leaves it RESERVED, which neither
    ``detect_lostruns`` (RUNNING only) nor a later worker ever picks up, and ``sld worker`` then
    waits for it for ever. A queue reservation (``qlaunch -r``) is RESERVED too, but has a RESERVED
    launch; those are left alone.
    """
    import datetime

    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=older_than_s)
    lpad = session.lpad
    released = []
    for fw in lpad.fireworks.find(FwSpec.query(states=FireworkState.RESERVED),
                                  {"fw_id": 1, "updated_on": 1, "sld_reserved_by": 1}):
        updated = fw.get("updated_on")
        reserver = fw.get("sld_reserved_by")
        if reserver and not _pid_dead(reserver) and reserver.get("host") == socket.gethostname():
            continue  # its worker is alive here: a checkout in progress
        if reserver and _pid_dead(reserver):
            updated = None  # cut by a kill: release now
        if isinstance(updated, datetime.datetime) and updated.tzinfo is None:
            updated = updated.replace(tzinfo=datetime.UTC)
        if isinstance(updated, datetime.datetime) and updated > cutoff:
            continue  # maybe a checkout in progress right now
        if lpad.launches.count_documents({"fw_id": fw["fw_id"], "state": "RESERVED"}, limit=1):
            continue
        lpad.rerun_fw(fw["fw_id"])
        released.append(fw["fw_id"])
    return released


def resume_broken_chains(session: Session) -> list[str]:
    """Continue trajectories whose chain ended early: unfinished, no active Firework, workflow not
    locked. That is a worker killed inside FireWorks' completion of a step (the Firework is COMPLETED,
    its successor never stored). A locked workflow may be a live worker completing a step right now,
    so it is left alone (a lock left by a dead worker was released above)."""
    resumed = []
    active = session.store.firework_states()
    for doc in session.store.find_trajectories():
        unfinished = doc.get("status") != TrajectoryStatus.COMPLETED or doc["steps_done"] < doc["steps_requested"]
        states = active.get(doc["_id"], {})
        if not unfinished or any(states.get(s) for s in ACTIVE_FIREWORK_STATES):
            continue
        if not states or states.get(FireworkState.FIZZLED):
            continue  # deleted workflow, or a failed step: the user decides (`sld resume`)
        if session.lpad.workflows.count_documents({"metadata.sld_trajectory": doc["_id"], "locked": True}):
            continue
        if resume(session, doc["_id"]) is not None:
            resumed.append(doc["_id"])
    return resumed


# ------------------------------------------------------------------------------------ status
def _display_status(doc: dict[str, Any], states: dict[str, int]) -> str:
    """COMPLETED, RUNNING (a Firework runs), QUEUED (waiting for a worker), FAILED (a step fizzled and
    nothing is queued: `sld resume`), STOPPED (no Firework left, e.g. workflow deleted: `sld resume`)."""
    if doc.get("status") == TrajectoryStatus.COMPLETED and doc.get("steps_done", 0) >= doc.get("steps_requested", 0):
        return "COMPLETED"
    if states.get(FireworkState.RUNNING):
        return "RUNNING"
    if any(states.get(s) for s in QUEUED_FIREWORK_STATES):
        return "QUEUED"
    return "FAILED" if states.get(FireworkState.FIZZLED) else "STOPPED"


def status_rows(session: Session, trajectory: str | None = None) -> list[dict[str, Any]]:
    docs = [session.store.get_trajectory(trajectory)] if trajectory else session.store.find_trajectories()
    all_states = session.store.firework_states(trajectory)
    rows = []
    for doc in docs:
        states = all_states.get(doc["_id"], {})
        rows.append({
            "id": doc["_id"], "name": doc.get("name"), "status": _display_status(doc, states),
            "steps_done": doc.get("steps_done"), "steps_requested": doc.get("steps_requested"),
            "start_step": doc.get("start_step", 0), "fireworks": states,
            "last_energy_ev": doc.get("last_energy_ev"), "engine_wall_time_s": doc.get("engine_wall_time_s"),
            "parent": doc.get("parent"), "layout": doc.get("layout"),
            "spin_scheme": (doc.get("provenance") or {}).get("spin_scheme"),
        })
    return rows
