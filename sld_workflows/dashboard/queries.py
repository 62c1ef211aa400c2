"""Every database read of the dashboard: small documents and indexed queries, never whole trajectories.

This module is the one place the dashboard talks to the database (pymongo API on a
:class:`~sld_workflows.dashboard.source.ReadOnlyDatabase`), so it can be re-pointed at other store
modules without touching the pages. What each page reads:

- trajectories table: ``sld_trajectories`` documents with a projection (no spec/engine/provenance
  bodies), filtered, sorted, skipped and limited by the database — one ``find`` and one ``count``;
- one trajectory: its document; the steps to plot are ``start_step .. steps_done`` thinned to at most
  ``max_points``, each read by a point lookup on the unique ``(trajectory, step, kind)`` index (large
  ``$in`` lists were the slowest queries on the local server). Temperatures, magnetisation and order
  parameters are computed from those frames only and cached per (trajectory, step) — stored frames are
  immutable (insert-or-verify), so a cached value never goes stale; its Fireworks by one range query on
  the ``fw_id`` span of its workflow;
- campaigns: ``sld_campaigns`` plus one projected ``find`` of the campaign's trajectory documents;
- workers: RUNNING launches (``state`` is indexed by FireWorks) and the latest launches by ``launch_id``.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import socket
import time
from collections import OrderedDict
from typing import Any

TRAJECTORIES = "sld_trajectories"
FRAMES = "sld_frames"
CAMPAIGNS = "sld_campaigns"

#: projection of a trajectory document for tables (the spec, engine and provenance bodies can be large)
TABLE_PROJECTION = {
    "name": 1, "status": 1, "steps_done": 1, "steps_requested": 1, "start_step": 1, "last_energy_ev": 1,
    "engine_wall_time_s": 1, "worker": 1, "campaign": 1, "arm": 1, "created_on": 1, "updated_on": 1,
    "layout": 1, "spec.spec.structure.preset": 1, "spec.spec.engine.kind": 1, "spec.spec.engine.preset": 1,
    "engine.@class": 1, "root_fw_id": 1,
}
#: sortable columns of the trajectories table -> database field
SORT_FIELDS = {
    "id": "_id", "name": "name", "material": "spec.spec.structure.preset", "engine": "spec.spec.engine.kind",
    "steps_done": "steps_done", "steps_requested": "steps_requested", "state": "status",
    "last_energy_ev": "last_energy_ev", "wall_time_s": "engine_wall_time_s", "worker": "worker.host",
    "created": "created_on", "updated": "updated_on", "campaign": "campaign",
}
STATES = ("READY", "RUNNING", "COMPLETED", "STOPPED", "FIZZLED")
EVAL_KINDS = ["evaluation", "midpoint_evaluation"]
#: a RUNNING launch whose heartbeat is older than this counts as not alive (FireWorks' RUN_EXPIRATION_SECS
#: with config/FW_config.yaml); on this host a live pid overrides it
DEFAULT_EXPIRATION_S = 1800.0
#: seconds the filter menus' values are reused
FACETS_TTL_S = 30.0


def _epoch(value: Any) -> float | None:
    """Seconds since the epoch from a datetime (naive = UTC), an ISO string (FireWorks) or a number."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    return None


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def material_of(doc: dict[str, Any]) -> str | None:
    spec = ((doc.get("spec") or {}).get("spec")) or {}
    return ((spec.get("structure") or {}).get("preset")) or ((spec.get("engine") or {}).get("preset"))


def engine_of(doc: dict[str, Any]) -> str | None:
    spec = ((doc.get("spec") or {}).get("spec")) or {}
    return ((spec.get("engine") or {}).get("kind")) or ((doc.get("engine") or {}).get("@class"))


def table_row(doc: dict[str, Any]) -> dict[str, Any]:
    worker = doc.get("worker") or {}
    return {
        "id": doc["_id"], "name": doc.get("name"), "material": material_of(doc), "engine": engine_of(doc),
        "steps_done": doc.get("steps_done"), "steps_requested": doc.get("steps_requested"),
        "start_step": doc.get("start_step"), "state": doc.get("status"),
        "last_energy_ev": _finite(doc.get("last_energy_ev")), "wall_time_s": _finite(doc.get("engine_wall_time_s")),
        "worker": worker.get("host") and f"{worker.get('host')}:{worker.get('pid')}",
        "campaign": doc.get("campaign"), "arm": doc.get("arm"), "layout": doc.get("layout"),
        "created": _epoch(doc.get("created_on")), "updated": _epoch(doc.get("updated_on")),
    }


class SeriesCache:
    """Derived per-step scalars keyed by (trajectory, step); bounded LRU. Frames never change once
    stored, so entries stay valid; a different store (``generation``) clears it."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = int(max_entries)
        self._data: OrderedDict[tuple[str, int], dict[str, float | None]] = OrderedDict()
        self.generation: Any = None
        self.facets: tuple[float, dict[str, list[str]]] | None = None

    def check_generation(self, generation: Any) -> None:
        if generation != self.generation:
            self._data.clear()
            self.facets = None
            self.generation = generation

    def get(self, key: tuple[str, int]) -> dict[str, float | None] | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[str, int], value: dict[str, float | None]) -> None:
        self._data[key] = value
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)


def pick_steps(steps: list[int], max_points: int) -> list[int]:
    """At most ``max_points`` of the sorted ``steps``, evenly spaced, always with the first and last."""
    if len(steps) <= max_points:
        return list(steps)
    n = max(2, int(max_points))
    idx = sorted({round(i * (len(steps) - 1) / (n - 1)) for i in range(n)})
    return [steps[i] for i in idx]


class Queries:
    """The dashboard's reads on one database (a :class:`ReadOnlyDatabase`)."""

    def __init__(self, db: Any, cache: SeriesCache | None = None, live_pid_check: bool = True) -> None:
        self.db = db
        self.cache = cache if cache is not None else SeriesCache()
        self.live_pid_check = live_pid_check

    # ------------------------------------------------------------------ trajectories
    def trajectory_query(self, params: dict[str, Any]) -> dict[str, Any]:
        query: dict[str, Any] = {}
        clauses = []
        if params.get("q"):
            rx = {"$regex": re.escape(params["q"]), "$options": "i"}
            clauses.append({"$or": [{"name": rx}, {"_id": rx}]})
        if params.get("material"):
            clauses.append({"$or": [{"spec.spec.structure.preset": params["material"]},
                                    {"spec.spec.engine.preset": params["material"]}]})
        if params.get("engine"):
            clauses.append({"$or": [{"spec.spec.engine.kind": params["engine"]},
                                    {"engine.@class": params["engine"]}]})
        if params.get("state"):
            query["status"] = params["state"]
        if params.get("campaign"):
            query["campaign"] = params["campaign"]
        if params.get("arm"):
            query["arm"] = params["arm"]
        if clauses:
            query["$and"] = clauses
        return query

    def trajectories(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of the table: {rows, total, page, per_page, pages, sort, order, facets}."""
        coll = self.db[TRAJECTORIES]
        query = self.trajectory_query(params)
        total = coll.count_documents(query)
        per_page, page = int(params["per_page"]), int(params["page"])
        pages = max(1, math.ceil(total / per_page))
        field = SORT_FIELDS[params["sort"]]
        direction = -1 if params["order"] == "desc" else 1
        sort = [(field, direction)] + ([("_id", 1)] if field != "_id" else [])
        cursor = coll.find(query, TABLE_PROJECTION).sort(sort).skip((page - 1) * per_page).limit(per_page)
        rows = [table_row(d) for d in cursor]
        return {"rows": rows, "total": total, "page": page, "per_page": per_page, "pages": pages,
                "sort": params["sort"], "order": params["order"], "facets": self.facets()}

    def facets(self) -> dict[str, list[str]]:
        """Values offered by the filter menus (three ``distinct``), reused for ``FACETS_TTL_S``."""
        cached = self.cache.facets
        if cached is not None and time.monotonic() - cached[0] < FACETS_TTL_S:
            return cached[1]
        coll = self.db[TRAJECTORIES]
        mats = {*coll.distinct("spec.spec.structure.preset"), *coll.distinct("spec.spec.engine.preset")}
        engines = set(coll.distinct("spec.spec.engine.kind"))
        out = {"material": sorted(str(m) for m in mats if m), "engine": sorted(str(e) for e in engines if e),
               "state": list(STATES)}
        self.cache.facets = (time.monotonic(), out)
        return out

    def trajectory(self, trajectory_id: str) -> dict[str, Any] | None:
        provenance = ("engine_class", "spin_scheme", "seed", "versions", "submitted_from")  # not engine_settings
        fields = {**TABLE_PROJECTION, "parent": 1, "branch_step": 1, "output_every": 1, "dynamics": 1,
                  **{f"provenance.{k}": 1 for k in provenance}}
        doc = self.db[TRAJECTORIES].find_one({"_id": trajectory_id}, fields)
        if doc is None:
            return None
        row = table_row(doc)
        dyn = doc.get("dynamics") or {}
        temp = dyn.get("temperature")
        if isinstance(temp, dict):
            temp = temp.get("points")
        row.update({
            "parent": doc.get("parent"), "branch_step": doc.get("branch_step"), "output_every": doc.get("output_every"),
            "dynamics": {k: dyn.get(k) for k in ("dt_fs", "ensemble", "spin_scheme", "alpha", "seed",
                                                 "friction_per_fs", "pressure_gpa")} | {"temperature": temp},
            "provenance": {k: v for k, v in (doc.get("provenance") or {}).items() if k != "engine_settings"},
            "worker_record": doc.get("worker"), "root_fw_id": doc.get("root_fw_id"),
        })
        return row

    # ------------------------------------------------------------------ series of one trajectory
    def state_steps(self, doc: dict[str, Any]) -> list[int]:
        """Steps with a stored state: every step from ``start_step`` to ``steps_done`` (a task stores the
        state of each step it completes; ``steps_done`` only moves forward after the frame is written)."""
        start, done = int(doc.get("start_step") or 0), doc.get("steps_done")
        return list(range(start, int(done) + 1)) if done is not None else []

    def _frame(self, trajectory_id: str, step: int, kind: str, projection: dict[str, Any]) -> dict | None:
        # a point lookup on the unique (trajectory, step, kind) index; measured faster than one `$in`
        # query for 200 steps on the local server (0.5 ms each against ~1 s)
        return self.db[FRAMES].find_one({"trajectory": trajectory_id, "step": int(step), "kind": kind}, projection)

    def series(self, trajectory_id: str, max_points: int = 150) -> dict[str, Any]:
        """Per-step values at <= max_points stored steps: time, energy, temperatures, |m|, the preset's
        order parameters, cell lengths and volume (NpT), SCF iterations, Custodian corrections, restart breaks.

        Each step's values are computed once from its two frames and cached (frames are immutable), so
        a page that was viewed before reads only the trajectory document and its new steps."""
        doc = self.db[TRAJECTORIES].find_one({"_id": trajectory_id}, {**TABLE_PROJECTION, "dynamics.ensemble": 1})
        if doc is None:
            raise KeyError(trajectory_id)
        material = material_of(doc)
        all_steps = self.state_steps(doc)
        chosen = pick_steps(all_steps, max_points)
        rows = []
        for step in chosen:
            values = self.cache.get((trajectory_id, step))
            if values is None:
                values = self._step_values(trajectory_id, step, material)
                if values is None:  # a live trajectory whose newest frame is not visible yet
                    continue
            rows.append(values)
        keys = sorted({k for r in rows for k in r})
        columns = {k: [r.get(k) for r in rows] for k in keys}
        is_dft = any(v is not None for v in columns.get("scf_iterations", [])) or \
            any(v is not None for v in columns.get("restart_break", []))
        return {"trajectory": trajectory_id, "material": material, "n_stored_steps": len(all_steps),
                "n_points": len(rows), "columns": columns, "dft": is_dft,
                "npt": (doc.get("dynamics") or {}).get("ensemble") == "npt"}

    def _step_values(self, trajectory_id: str, step: int, material: str | None) -> dict[str, float | None] | None:
        import numpy as np

        from sld_workflows.analysis.order import magnetisation, order_parameters
        from sld_workflows.dynamics.lattice import kinetic_temperature_k
        from sld_workflows.dynamics.spin import state_spin_temperature_k
        from sld_workflows.evaluation import Evaluation
        from sld_workflows.state import SLDState

        sdoc = self._frame(trajectory_id, step, "state", {"_id": 0, "data": 1})
        if sdoc is None:
            return None
        ev = self._frame(trajectory_id, step, "evaluation", {"_id": 0, "written_on": 0}) or {}
        state = SLDState.from_dict(sdoc["data"])
        evaluation = Evaluation.from_dict(ev["data"]) if ev.get("data") else None
        values: dict[str, Any] = {}
        if material:
            try:
                values = dict(order_parameters(material, state, evaluation))
            except KeyError:  # a preset this version does not know: the generic quantities below
                values = {}
        if "m" not in values:
            values["m"] = magnetisation(state.spins, state.magnetic)[1]
            values["T_lattice_K"] = kinetic_temperature_k(state.velocities, state.masses_amu)
            if evaluation is not None:
                values["T_spin_K"] = state_spin_temperature_k(state, evaluation)
        cell = np.asarray(state.cell, dtype=float)
        lengths = np.linalg.norm(cell, axis=1)
        info = ev.get("info") or {}
        chain = info.get("restart_chain") if isinstance(info, dict) else None
        corrections = ev.get("custodian_corrections")
        values.update({
            "a_A": lengths[0], "b_A": lengths[1], "c_A": lengths[2], "volume_A3": abs(np.linalg.det(cell)),
            "time_fs": float(state.time_fs), "step": step, "energy_ev": ev.get("energy_ev"),
            "wall_time_s": ev.get("wall_time_s"), "scf_iterations": ev.get("scf_iterations"),
            "custodian_corrections": len(corrections) if isinstance(corrections, list | dict) else corrections,
            "restart_break": _restart_break(chain),
        })
        out = {k: _finite(v) for k, v in values.items()}
        out["step"] = step
        if ev:  # cache only complete steps (an evaluation may appear after its state on a live server)
            self.cache.put((trajectory_id, step), out)
        return out

    def spins(self, trajectory_id: str) -> dict[str, Any] | None:
        """Positions, spins and species of the latest stored state (one frame, projected)."""
        traj = self.db[TRAJECTORIES].find_one({"_id": trajectory_id}, {"steps_done": 1, "start_step": 1}) or {}
        projection = {"_id": 0, "step": 1, "data.positions": 1, "data.spins": 1, "data.species": 1,
                      "data.cell": 1, "data.time_fs": 1}
        doc = None
        if traj.get("steps_done") is not None:  # a point lookup at the latest step the document names
            doc = self._frame(trajectory_id, int(traj["steps_done"]), "state", projection)
        if doc is None:
            doc = self.db[FRAMES].find_one({"trajectory": trajectory_id, "kind": "state"}, projection,
                                           sort=[("step", -1)])
        if doc is None:
            return None
        data = doc.get("data") or {}
        return {"step": doc["step"], "time_fs": data.get("time_fs"), "positions": data.get("positions"),
                "spins": data.get("spins"), "species": data.get("species"), "cell": data.get("cell")}

    # ------------------------------------------------------------------ Fireworks
    def fireworks(self, trajectory_id: str, root_fw_id: int | None, limit: int = 200) -> dict[str, Any]:
        """The trajectory's Fireworks (newest first, at most ``limit``) with state and launch directory.

        One query: the fw_id range of its workflow (FireWorks' unique fw_id index) and the trajectory id;
        without a workflow (deleted from the LaunchPad) the trajectory id alone."""
        query: dict[str, Any] = {"spec.sld.trajectory": trajectory_id}
        if root_fw_id is not None:
            wf = self.db["workflows"].find_one({"nodes": root_fw_id}, {"_id": 0, "nodes": 1})
            nodes = [int(x) for x in (wf or {}).get("nodes", [])]
            if nodes:
                query["fw_id"] = {"$gte": min(nodes), "$lte": max(nodes)}
        fws = sorted(self.db["fireworks"].find(query, {"_id": 0, "fw_id": 1, "name": 1, "state": 1, "launches": 1,
                                                       "spec.sld": 1}),
                     key=lambda fw: -int(fw["fw_id"]))
        counts: dict[str, int] = {}
        for fw in fws:
            counts[str(fw.get("state"))] = counts.get(str(fw.get("state")), 0) + 1
        shown = fws[:limit]
        launches = self._launches([fw["launches"][-1] for fw in shown if fw.get("launches")])
        rows = []
        for fw in shown:
            launch = launches.get(fw["launches"][-1]) if fw.get("launches") else None
            sld = (fw.get("spec") or {}).get("sld") or {}
            rows.append({"fw_id": fw["fw_id"], "name": fw.get("name"), "state": fw.get("state"),
                         "step": sld.get("step"), "kind": sld.get("kind"),
                         "launch_dir": (launch or {}).get("launch_dir"), "host": (launch or {}).get("host"),
                         "error": _failure_reason(launch)})
        return {"total": len(fws), "states": counts, "rows": rows, "shown": len(rows)}

    def _launches(self, launch_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Launches by id: one range query on the unique launch_id index when the ids are dense, else one
        point lookup each (``$in`` over many ids was the slowest query on the local server)."""
        ids = sorted({int(i) for i in launch_ids})
        if not ids:
            return {}
        fields = {"_id": 0, "launch_id": 1, "launch_dir": 1, "host": 1, "state": 1,
                  "action.stored_data._exception._stacktrace": 1}
        wanted = set(ids)
        if ids[-1] - ids[0] + 1 <= 4 * len(ids):
            docs = self.db["launches"].find({"launch_id": {"$gte": ids[0], "$lte": ids[-1]}}, fields)
            return {d["launch_id"]: d for d in docs if d["launch_id"] in wanted}
        out = {}
        for i in ids:
            d = self.db["launches"].find_one({"launch_id": i}, fields)
            if d is not None:
                out[i] = d
        return out

    # ------------------------------------------------------------------ campaigns
    def campaigns(self) -> list[dict[str, Any]]:
        return [self.campaign_summary(doc) for doc in
                self.db[CAMPAIGNS].find({}, {"_id": 0}).sort("created", -1).limit(200)]

    def campaign(self, name: str) -> dict[str, Any] | None:
        doc = self.db[CAMPAIGNS].find_one({"name": name}, {"_id": 0})
        return None if doc is None else self.campaign_summary(doc, failures=True)

    def campaign_summary(self, doc: dict[str, Any], failures: bool = False) -> dict[str, Any]:
        """Per arm: trajectories by state, steps done/requested, engine time, cost in reference-point units.

        Cost unit: one static reference calculation = 1. A unit's wall time is the mean engine time per
        finished reference calculation of this campaign's reference arms; without one, each engine
        evaluation counts as one unit (a DFT SLD step restarted from the previous WAVECAR is cheaper in
        practice, so this bound is conservative)."""
        name = doc.get("name")
        arms: dict[str, Any] = {}
        # a projected find on the campaign's trajectories, summed here: the same on every backend (mongomock's
        # $group sorts with its slow BSON comparison), and a campaign's trajectory documents are small
        fields = {"_id": 0, "arm": 1, "status": 1, "steps_done": 1, "start_step": 1, "steps_requested": 1,
                  "engine_wall_time_s": 1}
        for d in self.db[TRAJECTORIES].find({"campaign": name}, fields):
            arm = str(d.get("arm"))
            a = arms.setdefault(arm, {"states": {}, "trajectories": 0, "steps_done": 0, "steps_requested": 0,
                                      "wall_time_s": 0.0})
            status = str(d.get("status"))
            a["states"][status] = a["states"].get(status, 0) + 1
            a["trajectories"] += 1
            start = int(d.get("start_step") or 0)
            a["steps_done"] += int(d.get("steps_done") or start) - start
            a["steps_requested"] += int(d.get("steps_requested") or start) - start
            a["wall_time_s"] += float(d.get("engine_wall_time_s") or 0.0)
        spec_arms = doc.get("arms") or {}
        for arm, a in spec_arms.items():
            got = arms.setdefault(arm, {"states": {}, "trajectories": 0, "steps_done": 0, "steps_requested": 0,
                                        "wall_time_s": 0.0})
            got["kind"] = a.get("kind")
            got["planned_structures"] = a.get("n_structures")
            got["planned_steps"] = a.get("n_steps", a.get("n_statics"))
        ref_wall = sum(a["wall_time_s"] for a in arms.values() if a.get("kind") == "reference")
        ref_evals = sum(a["steps_done"] + a.get("states", {}).get("COMPLETED", 0)
                        for a in arms.values() if a.get("kind") == "reference")
        unit_s = ref_wall / ref_evals if ref_evals and ref_wall > 0 else None
        for a in arms.values():
            evaluations = a["steps_done"] + a["trajectories"]  # + the initial evaluation of each trajectory
            a["cost_units"] = a["wall_time_s"] / unit_s if unit_s else float(evaluations)
            a["fraction_done"] = a["steps_done"] / a["steps_requested"] if a["steps_requested"] else None
        out = {"name": name, "created": _epoch(doc.get("created")), "state": doc.get("state"), "arms": arms,
               "cost_units": sum(a["cost_units"] for a in arms.values()),
               "cost_method": "wall time / mean reference calculation" if unit_s else "engine evaluations",
               "reference_unit_s": unit_s,
               "trajectories": sum(a["trajectories"] for a in arms.values()),
               "states": _merge_counts(a["states"] for a in arms.values())}
        if failures:
            out["failures"] = self.campaign_failures(name)
        return out

    def campaign_failures(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """FIZZLED Fireworks of the campaign's trajectories with the last line of their error."""
        ids = {d["_id"] for d in self.db[TRAJECTORIES].find({"campaign": name}, {"_id": 1})}
        if not ids:
            return []
        fizzled = self.db["fireworks"].find({"state": "FIZZLED"},  # FireWorks indexes state; few fizzle
                                            {"_id": 0, "fw_id": 1, "launches": 1, "spec.sld": 1})
        fws = sorted((fw for fw in fizzled if ((fw.get("spec") or {}).get("sld") or {}).get("trajectory") in ids),
                     key=lambda fw: -int(fw["fw_id"]))[:limit]
        launches = self._launches([fw["launches"][-1] for fw in fws if fw.get("launches")])
        return [{"fw_id": fw["fw_id"], "trajectory": fw["spec"]["sld"].get("trajectory"),
                 "step": fw["spec"]["sld"].get("step"),
                 "reason": _failure_reason(launches.get(fw["launches"][-1]) if fw.get("launches") else None)}
                for fw in fws]

    # ------------------------------------------------------------------ workers
    def workers(self, expiration_s: float = DEFAULT_EXPIRATION_S, recent: int = 200,
                now: float | None = None) -> dict[str, Any]:
        """Workers seen in RUNNING and recent launches, grouped by (host, FireWorker name)."""
        now = time.time() if now is None else now
        fields = {"_id": 0, "launch_id": 1, "fw_id": 1, "host": 1, "fworker.name": 1, "state": 1,
                  "time_start": 1, "time_end": 1, "state_history": {"$slice": -1}, "launch_dir": 1}
        launches = {d["launch_id"]: d for d in self.db["launches"].find({"state": "RUNNING"}, fields)}
        # the latest launches: FireWorks numbers them from a counter, so select the last ids by value
        # (an index lookup) instead of sorting the whole collection
        counter = self.db["fw_id_assigner"].find_one({}, {"_id": 0, "next_launch_id": 1}) or {}
        if isinstance(counter.get("next_launch_id"), int):
            last = counter["next_launch_id"]
            latest = self.db["launches"].find({"launch_id": {"$gte": last - recent}}, fields)
        else:
            latest = self.db["launches"].find({}, fields).sort("launch_id", -1).limit(recent)
        for d in latest:
            launches.setdefault(d["launch_id"], d)
        fw_traj = {}
        for d in launches.values():
            if d.get("state") == "RUNNING":
                fw = self.db["fireworks"].find_one({"fw_id": d["fw_id"]}, {"_id": 0, "spec.sld": 1}) or {}
                fw_traj[d["fw_id"]] = (fw.get("spec") or {}).get("sld") or {}
        pids: dict[int, int] = {}
        for d in self.db[TRAJECTORIES].find({"status": "RUNNING", "worker": {"$ne": None}},
                                            {"_id": 1, "worker": 1}):
            w = d.get("worker") or {}
            if w.get("fw_id") is not None and w.get("pid") is not None:
                pids[int(w["fw_id"])] = int(w["pid"])
        workers: dict[tuple[str, str], dict[str, Any]] = {}
        here = socket.gethostname()
        for d in sorted(launches.values(), key=lambda x: x["launch_id"]):
            key = (str(d.get("host")), str((d.get("fworker") or {}).get("name")))
            w = workers.setdefault(key, {"host": key[0], "fworker": key[1], "running": [], "last_seen": None,
                                         "launches_seen": 0, "alive": False})
            w["launches_seen"] += 1
            history = d.get("state_history") or [{}]
            beat = _epoch(history[-1].get("updated_on")) or _epoch(history[-1].get("created_on")) \
                or _epoch(d.get("time_end")) or _epoch(d.get("time_start"))
            if beat is not None and (w["last_seen"] is None or beat > w["last_seen"]):
                w["last_seen"] = beat
            if d.get("state") == "RUNNING":
                sld = fw_traj.get(d["fw_id"], {})
                pid = pids.get(d["fw_id"])
                alive = beat is not None and now - beat < expiration_s
                if self.live_pid_check and pid is not None and key[0] == here:
                    alive = _pid_alive(pid)
                w["running"].append({"fw_id": d["fw_id"], "trajectory": sld.get("trajectory"),
                                     "step": sld.get("step"), "pid": pid, "heartbeat": beat, "alive": alive,
                                     "launch_dir": d.get("launch_dir")})
                w["alive"] = w["alive"] or alive
        rows = sorted(workers.values(), key=lambda w: (not w["running"], -(w["last_seen"] or 0)))
        for w in rows:
            w["heartbeat_age_s"] = None if w["last_seen"] is None else max(0.0, now - w["last_seen"])
        return {"workers": rows, "expiration_s": expiration_s, "running": sum(len(w["running"]) for w in rows)}

    # ------------------------------------------------------------------ overview
    def counts(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for d in self.db[TRAJECTORIES].find({}, {"_id": 0, "status": 1}):  # one small projected read
            status = str(d.get("status"))
            states[status] = states.get(status, 0) + 1
        return {"trajectories": sum(states.values()), "states": states,
                "campaigns": self.db[CAMPAIGNS].count_documents({})}


def _merge_counts(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _restart_break(chain: Any) -> float | None:
    """1 if a DFT step's WAVECAR/CHGCAR chain was broken (a Custodian correction reset it, or a seeded run
    did not keep it), 0 if kept, None for engines without a chain (``info["restart_chain"]``, VASP engine)."""
    if not isinstance(chain, dict):
        return None
    broken = bool(chain.get("broken_by")) or (chain.get("seeded_from") is not None and not chain.get("intact", True))
    return float(broken)


def _failure_reason(launch: dict[str, Any] | None) -> str | None:
    """Last line of a fizzled launch's stored stack trace (FireWorks keeps it in action.stored_data)."""
    trace = ((((launch or {}).get("action") or {}).get("stored_data") or {}).get("_exception") or {}).get("_stacktrace")
    if not trace:
        return None
    lines = [ln for ln in str(trace).strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
