"""Glue between the step phases of :mod:`sld_workflows.dynamics.step` and the trajectory store.

No physics here: :func:`integrate` calls ``midpoint_state``/``propagate``/``complete`` on frames read
from the store and writes their results back; :func:`evaluate_request` runs the engine on one stored
input frame. A step is therefore split at its engine calls, and every piece is idempotent: inputs are
immutable stored frames, outputs are insert-or-verify upserts, and the noise of step n is a pure
function of (seed, n) — a piece recomputed after a crash writes the same bits (or finds them stored).

Frame flow of step n → n+1 (keys are (step, kind))::

    (n, state) + (n, evaluation)
      ─ sib only ─> (n, midpoint_state) ─engine─> (n, midpoint_evaluation)
      ─ propagate ─> (n+1, provisional_state) ─engine─> (n+1, evaluation)
      ─ complete ─> (n+1, state)
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.dynamics import step as sld_step
from sld_workflows.dynamics.settings import DynamicsSettings, SpinScheme
from sld_workflows.engines.file_engine import FileEngine
from sld_workflows.evaluation import Evaluation
from sld_workflows.jsonable import jsonable
from sld_workflows.state import SLDState
from sld_workflows.store.keys import FrameKind
from sld_workflows.store.runtime import WorkerRuntime, in_engine_call
from sld_workflows.store.trajectories import StoreError, TrajectoryStore

#: Which frame an engine evaluation of an input frame produces (same step).
OUTPUT_KIND = {FrameKind.STATE: FrameKind.EVALUATION, FrameKind.PROVISIONAL_STATE: FrameKind.EVALUATION,
               FrameKind.MIDPOINT_STATE: FrameKind.MIDPOINT_EVALUATION}


@dataclasses.dataclass(frozen=True)
class EngineRequest:
    """The next engine call a trajectory needs: evaluate frame (step, input_kind)."""

    trajectory: str
    step: int
    input_kind: str

    @property
    def output_kind(self) -> str:
        return OUTPUT_KIND[FrameKind(self.input_kind)].value


# ------------------------------------------------------------------------------------ worker caches
# Frames never change once stored (insert-or-verify), so decoded frames are cached per worker;
# engines are rebuilt once per (trajectory, worker) from the stored engine dict. The caches live on
# the process's WorkerRuntime (sld_workflows.store.runtime), not in this module.


def _runtime() -> WorkerRuntime:
    return WorkerRuntime.current()


def clear_caches() -> None:
    """Forget this worker's decoded frames and engines (not needed for correctness: keys are unique
    trajectory ids and frames are immutable)."""
    _runtime().clear()


def _cache_put(key: tuple[str, int, str], obj: Any) -> None:
    _runtime().frames.put(key, obj)


def engine_for(doc: dict[str, Any]) -> Any:
    engines = _runtime().engines
    engine = engines.get(doc["_id"])
    if engine is None:
        from monty.json import MontyDecoder

        engine = MontyDecoder().process_decoded(doc["engine"])
        if not hasattr(engine, "evaluate"):
            raise StoreError(f"trajectory {doc['_id']}: stored engine {doc['engine'].get('@class')} has no evaluate()")
        engines[doc["_id"]] = engine
    return engine


def settings_for(doc: dict[str, Any]) -> DynamicsSettings:
    cache = _runtime().settings
    settings = cache.get(doc["_id"])
    if settings is None:
        settings = DynamicsSettings.from_dict(doc["dynamics"])
        cache[doc["_id"]] = settings
    return settings


def _jsonable(value: Any) -> Any:
    """Engine info made BSON-safe (numpy scalars/arrays → Python)."""
    return jsonable(value, non_finite="keep", objects="as_dict_or_str")


def evaluation_data(evaluation: Evaluation) -> dict[str, Any]:
    """The deterministic part of an evaluation (arrays); ``info`` is stored beside it."""
    d = evaluation.as_dict()
    d.pop("info", None)
    return d


class Frames:
    """Frames of one trajectory around one step, fetched with one query and decoded lazily."""

    def __init__(self, store: TrajectoryStore, trajectory: str, optimistic: bool = False) -> None:
        """``optimistic``: when this process already holds state and evaluation of step n (it just
        computed them), do not read steps n, n+1 from the store but recompute; a frame that is in
        fact stored (a crashed run wrote it) is then verified equal by the insert-or-verify write.
        For deterministic in-process engines (merged layout) only."""
        self.store = store
        self.trajectory = trajectory
        self.optimistic = optimistic
        self._docs: dict[tuple[int, str], dict[str, Any]] = {}
        self._fetched: set[int] = set()  # steps whose stored frames are all in _docs (one task's view)

    def prefetch(self, steps: list[int]) -> None:
        """One query for every stored frame of ``steps`` (absent frames are then known absent)."""
        missing = [s for s in steps if s not in self._fetched]
        if not missing:
            return
        cache = _runtime().frames
        if self.optimistic and all((self.trajectory, steps[0], k) in cache for k in ("state", "evaluation")):
            self._fetched.update(missing)
            return
        for doc in self.store.frames_of_steps(self.trajectory, missing):
            self._docs[(doc["step"], doc["kind"])] = doc
        self._fetched.update(missing)

    def get(self, step: int, kind: str) -> Any:
        key = (self.trajectory, step, kind)
        cache = _runtime().frames
        if key in cache:
            return cache[key]
        doc = self._docs.get((step, kind))
        if doc is None:
            if step in self._fetched:
                return None
            doc = self.store.get_frame(self.trajectory, step, kind)
            if doc is None:
                return None
        obj = decode_frame(doc)
        _cache_put(key, obj)
        return obj

    def put(self, step: int, kind: str, obj: Any, **extra: Any) -> None:
        if isinstance(obj, Evaluation):
            data = evaluation_data(obj)
            extra.setdefault("energy_ev", obj.energy_ev)
            extra["info"] = _jsonable(obj.info)
        else:
            data = obj.as_dict()
            extra.setdefault("time_fs", obj.time_fs)
        self.store.put_frame(self.trajectory, step, kind, data, **extra)
        _cache_put((self.trajectory, step, kind), obj)


def decode_frame(doc: dict[str, Any]) -> SLDState | Evaluation:
    if FrameKind(doc["kind"]).is_evaluation:
        return Evaluation.from_dict({**doc["data"], "info": doc.get("info") or {}})
    return SLDState.from_dict(doc["data"])


def integrate(
    store: TrajectoryStore,
    doc: dict[str, Any],
    max_steps: int | None = None,
    store_intermediates: bool = True,
    frames: Frames | None = None,
) -> tuple[EngineRequest | None, int]:
    """Run the integrator phases as far as the stored frames allow.

    Returns (the next engine evaluation needed or None when the target step is reached, the number
    of steps completed now). Stops after ``max_steps`` completed steps (the request is then the next
    one needed). ``store_intermediates`` keeps midpoint/provisional states (engine inputs of separate
    engine Fireworks); the merged layout needs only states and evaluations.
    """
    tid = doc["_id"]
    settings = settings_for(doc)
    target = int(doc["steps_requested"])
    n = int(doc.get("steps_done", doc.get("start_step", 0)))
    frames = frames or Frames(store, tid)
    completed = 0
    while True:
        if max_steps is not None and completed >= max_steps and completed and n < target:
            # the next Firework goes on from here: nothing more to read
            return _peek_request(frames, settings, frames.get(n, "state"), None, n, store_intermediates), completed
        frames.prefetch([n, n + 1])
        state = frames.get(n, "state")
        if state is None:
            raise StoreError(f"trajectory {tid}: state of step {n} is missing from the store")
        evaluation = frames.get(n, "evaluation")
        if evaluation is None:
            return EngineRequest(tid, n, "state"), completed
        if n >= target or (max_steps is not None and completed >= max_steps):
            if n >= target:
                return None, completed
            return _peek_request(frames, settings, state, evaluation, n, store_intermediates), completed
        if frames.get(n + 1, "state") is not None:  # written before a crash; just move on
            store.record_step(tid, n + 1, frames.get(n + 1, "evaluation").energy_ev, 0.0)
            n += 1
            completed += 1
            continue
        mid_eval = None
        mid = sld_step.midpoint_state(state, evaluation, settings)
        if mid is not None:
            mid_eval = frames.get(n, "midpoint_evaluation")
            if mid_eval is None:
                if store_intermediates:
                    frames.put(n, "midpoint_state", mid)
                else:
                    _cache_put((tid, n, "midpoint_state"), mid)
                return EngineRequest(tid, n, "midpoint_state"), completed
        provisional = frames.get(n + 1, "provisional_state")
        if provisional is None:
            provisional = sld_step.propagate(state, evaluation, settings, mid_eval)
            if store_intermediates:
                frames.put(n + 1, "provisional_state", provisional)
        new_eval = frames.get(n + 1, "evaluation")
        if new_eval is None:
            if not store_intermediates:
                _cache_put((tid, n + 1, "provisional_state"), provisional)
            return EngineRequest(tid, n + 1, "provisional_state"), completed
        new_state = sld_step.complete(provisional, new_eval, settings)
        frames.put(n + 1, "state", new_state)
        store.record_step(tid, n + 1, new_eval.energy_ev, 0.0)
        n += 1
        completed += 1


def _peek_request(frames: Frames, settings: DynamicsSettings, state: SLDState, evaluation: Evaluation | None,
                  n: int, store_intermediates: bool) -> EngineRequest:
    """The first engine request of step n → n+1 without computing it (for the next Firework)."""
    if settings.spin_scheme == SpinScheme.SIB and np.any(state.magnetic):
        return EngineRequest(frames.trajectory, n, "midpoint_state")
    return EngineRequest(frames.trajectory, n + 1, "provisional_state")


def evaluate_request(
    store: TrajectoryStore,
    doc: dict[str, Any],
    request: EngineRequest,
    launch_dir: str | None = None,
    frames: Frames | None = None,
) -> float:
    """Evaluate the stored input frame of ``request`` and store the result. Returns the engine wall
    time (0 if the result was already stored, e.g. by a run that crashed before finishing its
    Firework). File engines (VASP, ABINIT) run in ``<launch_dir>/engine/<run_dir_name>``, seeded from
    the previous evaluation's recorded run directory (:func:`previous_run_dir`); engines with
    ``evaluate_in(state, directory, previous_directory)`` get the previous launch directory."""
    frames = frames or Frames(store, request.trajectory)
    if frames.get(request.step, request.output_kind) is not None:
        return 0.0
    state = frames.get(request.step, request.input_kind)
    if state is None and request.input_kind != "state":
        # merged layout keeps engine inputs in memory only: recompute them (deterministic)
        integrate(store, doc, store_intermediates=False, frames=frames)
        state = frames.get(request.step, request.input_kind)
    if state is None:
        raise StoreError(
            f"trajectory {request.trajectory}: engine input {request.input_kind} of step {request.step} is not stored"
        )
    engine = engine_for(doc)
    launch_dir = launch_dir or os.getcwd()
    run_dir = previous_dir = None
    if isinstance(engine, FileEngine):
        run_dir = str(Path(launch_dir) / "engine" / engine.run_dir_name(state))
        previous_dir = previous_run_dir(store, request)
    previous = _previous_launch_dir(store, request) if hasattr(engine, "evaluate_in") else None
    start = time.perf_counter()
    with in_engine_call():  # SIGTERM here: save the store and exit (the step is rerun by `sld recover`)
        if run_dir is not None:
            evaluation = engine.run(state, run_dir, previous_dir)
        elif hasattr(engine, "evaluate_in"):
            evaluation = engine.evaluate_in(state, launch_dir, previous)
        else:
            evaluation = engine.evaluate(state)
    wall = time.perf_counter() - start
    evaluation.check_matches(state)
    info = evaluation.info or {}
    frames.put(
        request.step, request.output_kind, evaluation,
        launch_dir=launch_dir, engine_run_dir=run_dir, wall_time_s=wall,
        scf_iterations=info.get("scf_iterations"),
        custodian_corrections=_jsonable(info.get("custodian_corrections", info.get("corrections"))),
    )
    store.add_engine_time(request.trajectory, wall)
    return wall


def previous_run_dir(store: TrajectoryStore, request: EngineRequest) -> str | None:
    """The run directory of the trajectory's latest evaluation before this request, as recorded in
    its stored frame (``engine_run_dir``), whichever worker and launch directory it ran in: file
    engines (:class:`~sld_workflows.engines.file_engine.FileEngine`) seed the next calculation from it
    (WAVECAR/CHGCAR, WFK/DEN chain across Fireworks)."""
    doc = store.latest_frame_with(request.trajectory, "engine_run_dir",
                                  ["evaluation", "midpoint_evaluation"], request.step)
    return None if doc is None else doc["engine_run_dir"]


def _previous_launch_dir(store: TrajectoryStore, request: EngineRequest) -> str | None:
    doc = store.latest_frame_with(request.trajectory, "launch_dir", ["evaluation", "midpoint_evaluation"],
                                  request.step)
    return None if doc is None else doc.get("launch_dir")
