"""FireTasks of campaigns: granularity that fits the engine.

- :class:`CampaignSLDTask` runs up to ``max_steps`` SLD steps of one trajectory in one Firework (the
  same integrator/engine phases as :class:`~sld_workflows.workflows.tasks.SLDStepTask`, which runs one),
  so a campaign of in-process (model) engines is not dominated by per-Firework overhead. DFT engines
  use the ordinary split layout instead (one engine calculation per Firework).
- :class:`CampaignStaticTask` runs ``count`` static calculations of the reference arm (uniformly random
  spins on the magnetic sites of one pool structure); one per Firework for DFT engines.

Both are idempotent (a stored evaluation is never recomputed; frames are insert-or-verify), record the
cost of every calculation on its frame (``wall_time_s``, ``scf_iterations``, ``engine_calls``) and,
when the trajectory is complete, store its frame pack (:mod:`sld_workflows.datasets.blocks`) and mark
it finished; the campaign feeder then removes its workflow from the LaunchPad.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from pathlib import Path
from typing import Any

import bson
import numpy as np
from fireworks import FiretaskBase, Firework, FWAction, explicit_serialize

from sld_workflows.campaigns import adapters as ad
from sld_workflows.datasets.blocks import block_from_docs, block_from_frames, write_pack
from sld_workflows.dynamics import step as sld_step
from sld_workflows.state import SLDState


def _claim(store: ad.TrajectoryStore, trajectory: str, fw_id: Any) -> dict[str, Any]:
    worker = {"fw_id": fw_id, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    return store.claim(trajectory, worker)


def finish_trajectory(store: ad.TrajectoryStore, doc: dict[str, Any], docs: list[dict[str, Any]] | None = None) -> None:
    """Pack the frames (``docs``: all of them, when this process just wrote them; else read from the
    store), mark COMPLETED and ready for pruning (idempotent)."""
    block = block_from_docs(doc["_id"], docs) if docs is not None else block_from_frames(store.db, doc["_id"])
    write_pack(store.db, block, meta={"campaign": doc.get("campaign"), "arm": doc.get("arm"),
                                      "structure_index": doc.get("structure_index")})
    a = block.arrays
    scf = a["scf_iterations"]
    cost = {"evaluations": int(block.n_frames), "engine_calls": int(a["engine_calls"].sum()),
            "wall_time_s": float(np.nansum(a["wall_time_s"])),
            "scf_iterations": float(np.nansum(scf)) if np.any(np.isfinite(scf)) else None}
    store.update_trajectory(doc["_id"], status="COMPLETED", worker=None, campaign_queue="finished", cost=cost)


def _spec(doc: dict[str, Any], step: int, kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"_add_launchpad_and_fw_id": True,
                            "sld": {"trajectory": doc["_id"], "step": int(step), "kind": kind},
                            "sld_campaign": doc.get("campaign")}
    category = (doc.get("fireworks") or {}).get("category")
    if category:
        spec["_category"] = category
    return spec


def sld_firework(doc: dict[str, Any], step: int, max_steps: int) -> Firework:
    return Firework(CampaignSLDTask(trajectory=doc["_id"], step=int(step), max_steps=int(max_steps)),
                    spec=_spec(doc, step, "campaign-sld"), name=f"{doc.get('name')}:{doc['_id']}:sld{step}")


def static_firework(doc: dict[str, Any], first: int, count: int) -> Firework:
    return Firework(CampaignStaticTask(trajectory=doc["_id"], first=int(first), count=int(count)),
                    spec=_spec(doc, first, "campaign-static"), name=f"{doc.get('name')}:{doc['_id']}:static{first}")


class _CampaignTask(FiretaskBase):
    """What both campaign tasks do around their work: run in the worker's runtime (SIGTERM policy),
    find the store through the Firework's LaunchPad, and claim the trajectory for this worker."""

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        with ad.in_task(self):
            lpad, store = ad.store_of_task(self)
            return self._run(lpad, store, _claim(store, self["trajectory"], getattr(self, "fw_id", None)))

    def _run(self, lpad: Any, store: ad.TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        raise NotImplementedError


@explicit_serialize
class CampaignSLDTask(_CampaignTask):
    """Up to ``max_steps`` SLD steps of one trajectory (merged layout, in-process engines)."""

    required_params = ["trajectory", "step", "max_steps"]

    def _run(self, lpad: Any, store: ad.TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        tid = self["trajectory"]
        per_fw = int(self["max_steps"])
        if ad.settings_for(doc).evaluations_per_step == 1 and doc.get("layout") == "merged":
            return self._run_batched(lpad, store, doc, per_fw)
        frames = ad.Frames(store, tid, optimistic=True)
        completed = 0
        while True:
            request, done = ad.integrate(store, doc, max_steps=per_fw - completed, store_intermediates=False,
                                         frames=frames)
            completed += done
            # integrate starts from doc["steps_done"]: keep this process's copy current
            doc = {**doc, "steps_done": int(doc["steps_done"]) + done}
            if request is None or completed >= per_fw:
                break
            ad.evaluate_request(store, doc, request, frames=frames)
            ad.flush_if_due(lpad)
        doc = store.get_trajectory(tid)
        stored = {"trajectory": tid, "steps_done": doc["steps_done"]}
        if doc["steps_done"] >= doc["steps_requested"] and frames.get(doc["steps_done"], "evaluation") is not None:
            finish_trajectory(store, doc)
            ad.flush_if_due(lpad)
            return FWAction(stored_data=stored)
        ad.flush_if_due(lpad)
        return FWAction(stored_data=stored, additions=[sld_firework(doc, doc["steps_done"], per_fw)])


    def _run_batched(self, lpad: Any, store: ad.TrajectoryStore, doc: dict[str, Any], per_fw: int) -> FWAction:
        """One engine call per step (``sib-fixed-field``): the steps run in memory with the same step
        function as ``sld run`` (:func:`~sld_workflows.dynamics.step.advance`, bit-identical to the
        phase-by-phase path) and their frames are written in one batch, with one update of the
        trajectory document: ~4 database operations per Firework instead of ~4 per step. A crash
        loses only this Firework's batch, which the rerun recomputes from the last stored step."""
        tid = doc["_id"]
        settings = ad.settings_for(doc)
        engine = ad.engine_for(doc)
        n, target = int(doc["steps_done"]), int(doc["steps_requested"])
        frames = ad.Frames(store, tid)
        frames.prefetch([n])
        state, evaluation = frames.get(n, "state"), frames.get(n, "evaluation")
        if state is None:
            raise ad.StoreError(f"trajectory {tid}: state of step {n} is missing from the store")
        docs: list[dict[str, Any]] = []
        walls: list[float] = []
        here = os.getcwd()

        def evaluate(s: SLDState):
            start = time.perf_counter()
            ev = engine.evaluate(s)
            walls.append(time.perf_counter() - start)
            ev.check_matches(s)
            return ev

        def put_evaluation(step: int, ev: Any) -> None:
            info = ev.info or {}
            docs.append(ad.frame_doc(tid, step, "evaluation", ev, launch_dir=here, engine_run_dir=None,
                                     wall_time_s=walls[-1], scf_iterations=info.get("scf_iterations"),
                                     custodian_corrections=None, engine_calls=1))

        complete = n == int(doc.get("start_step", 0)) and evaluation is None  # every frame will be in memory
        if complete:
            docs.append(ad.frame_doc(tid, n, "state", state))  # for the pack only (already stored)
        if evaluation is None:
            evaluation = evaluate(state)
            put_evaluation(n, evaluation)
        end = min(target, n + per_fw)
        while n < end:
            state, evaluation = sld_step.advance(state, evaluation, settings, evaluate)
            n += 1
            docs.append(ad.frame_doc(tid, n, "state", state))
            put_evaluation(n, evaluation)
        ad.put_frames(store, docs[1:] if complete else docs)
        store.record_step(tid, n, evaluation.energy_ev, float(sum(walls)))
        doc = {**doc, "steps_done": n}
        stored = {"trajectory": tid, "steps_done": n}
        if n >= target:
            finish_trajectory(store, doc, docs if complete else None)
            ad.flush_if_due(lpad)
            return FWAction(stored_data=stored)
        ad.flush_if_due(lpad)
        return FWAction(stored_data=stored, additions=[sld_firework(doc, n, per_fw)])


def random_unit_spins(magnetic: np.ndarray, seed: int, structure_index: int, sample: int) -> np.ndarray:
    """Uniformly random unit vectors on the magnetic sites (zeros elsewhere); a pure function of
    (campaign seed, structure, sample) so a rerun static reproduces its spins bit for bit."""
    rng = np.random.Generator(np.random.Philox(key=[int(seed), int(structure_index) * 1_000_003 + int(sample)]))
    v = rng.standard_normal((magnetic.shape[0], 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.where(magnetic[:, None], v, 0.0)


_PACKED = ("positions", "cell", "velocities", "spins", "moments")


def pack_state(state: SLDState) -> dict[str, Any]:
    """A state with its arrays as raw float64 bytes: the local server decodes nested lists slowly, and
    reference-arm documents are updated after every static calculation."""
    d = state.as_dict()
    for k in _PACKED:
        d[k] = bson.Binary(np.ascontiguousarray(getattr(state, k), dtype="<f8").tobytes())
    return d


def unpack_state(d: dict[str, Any]) -> SLDState:
    n = len(d["species"])
    shapes = {"positions": (n, 3), "cell": (3, 3), "velocities": (n, 3), "spins": (n, 3), "moments": (n,)}
    d = dict(d)
    for k in _PACKED:
        if isinstance(d[k], bytes | bytearray):
            d[k] = np.frombuffer(d[k], dtype="<f8").reshape(shapes[k])
    return SLDState.from_dict(d)


def static_state(doc: dict[str, Any], sample: int) -> SLDState:
    base = unpack_state(doc["pool_state"])
    spins = random_unit_spins(base.magnetic, doc["reference_seed"], doc["structure_index"], sample)
    return base.replace(spins=spins, step=int(sample), time_fs=0.0)


def _evaluate_static(engine: Any, state: SLDState) -> Any:
    """A fresh static calculation: DFT engines in this Firework's directory, never seeded by a previous
    run (the reference arm's calculations are independent)."""
    if hasattr(engine, "run_root"):
        engine = copy.copy(engine)
        engine.run_root = str(Path(os.getcwd()) / "engine")
        if hasattr(engine, "_last_dir"):
            engine._last_dir = None
    if hasattr(engine, "evaluate_in"):
        return engine.evaluate_in(state, os.getcwd(), None)
    return engine.evaluate(state)


@explicit_serialize
class CampaignStaticTask(_CampaignTask):
    """Static calculations ``first .. first+count-1`` of one reference-arm structure."""

    required_params = ["trajectory", "first", "count"]

    def _run(self, lpad: Any, store: ad.TrajectoryStore, doc: dict[str, Any]) -> FWAction:
        tid = self["trajectory"]
        frames = ad.Frames(store, tid)
        total = int(doc["steps_requested"])
        first, last = int(self["first"]), min(int(self["first"]) + int(self["count"]), total)
        frames.prefetch(list(range(first, last)))
        engine = ad.engine_for(doc)
        docs: list[dict[str, Any]] = []
        total_wall, energy = 0.0, None
        for k in range(first, last):  # written in one batch (one round trip) after the calculations
            if frames.get(k, "evaluation") is not None:
                continue
            state = static_state(doc, k)
            start = time.perf_counter()
            evaluation = _evaluate_static(engine, state)
            wall = time.perf_counter() - start
            evaluation.check_matches(state)
            info = evaluation.info or {}
            docs.append(ad.frame_doc(tid, k, "state", state))
            docs.append(ad.frame_doc(tid, k, "evaluation", evaluation, wall_time_s=wall,
                                     scf_iterations=info.get("scf_iterations"), engine_calls=1,
                                     launch_dir=os.getcwd()))
            total_wall += wall
            energy = evaluation.energy_ev
        ad.put_frames(store, docs)
        if energy is not None:
            store.record_step(tid, last, energy, total_wall)
        ad.flush_if_due(lpad)
        stored = {"trajectory": tid, "statics_done": last}
        if last >= total:
            # all K statics computed here: pack them from memory, else read them back
            finish_trajectory(store, doc, docs if first == 0 and len(docs) == 2 * total else None)
            ad.flush_if_due(lpad)
            return FWAction(stored_data=stored)
        return FWAction(stored_data=stored, additions=[static_firework(doc, last, int(self["count"]))])
