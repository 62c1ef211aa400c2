"""Create, feed, prune and summarise campaigns.

Campaign document (collection ``sld_campaigns``, unique ``name``)::

    {name, created (ISO time), spec (validated spec dict), state ("created" | "running" | "completed"),
     arms: {arm: {kind: "sld"|"reference"|"test", n_structures, n_steps | n_statics, trajectories: [ids]}},
     pool: {source, n_entries, temperatures_k: [...], test_indices: [...]}}

Every trajectory document of a campaign has top-level ``campaign`` (name), ``arm``, ``structure_index``
(pool entry: the split key), ``tags`` and ``campaign_queue``: ``pending`` (stored, no workflow yet) →
``submitted`` (its workflow is on the LaunchPad) → ``finished`` (complete, pack stored) → ``pruned``
(workflow deleted from the LaunchPad; the trajectory store keeps everything needed to extend or restart).

Throttled submission: :func:`feed` adds workflows only while fewer than ``max_active`` of the campaign's
trajectories are submitted, so FireWorks' working set stays bounded; :func:`prune` removes finished
workflows. :func:`run_campaign` loops feed → launch → prune in one process (several such processes may
run against one MongoDB server: a trajectory is claimed with an atomic update).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import time
from typing import Any

import pymongo
import pymongo.errors

from sld_workflows.campaigns import adapters as ad
from sld_workflows.campaigns.pool import build_pool
from sld_workflows.campaigns.spec import CampaignSpec
from sld_workflows.campaigns.tasks import pack_state, sld_firework, static_firework
from sld_workflows.errors import SLDError

CAMPAIGNS = "sld_campaigns"


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def campaigns(db: Any):
    coll = db[CAMPAIGNS]
    coll.create_index([("name", 1)], unique=True, name="name")
    return coll


def _ensure_indexes(db: Any) -> None:
    db[ad.TRAJECTORIES].create_index([("campaign", 1), ("arm", 1)], name="campaign_arm")
    db[ad.TRAJECTORIES].create_index([("campaign", 1), ("campaign_queue", 1)], name="campaign_queue")


def _provenance(engine_dict: dict[str, Any], settings: Any) -> dict[str, Any]:
    from sld_workflows.run.output import package_versions

    return {"engine_class": f"{engine_dict.get('@module')}.{engine_dict.get('@class')}",
            "spin_scheme": settings.spin_scheme.value, "seed": settings.seed,
            "versions": package_versions(extra=("fireworks", "pymongo", "custodian"))}


def _engine_dict(spec: CampaignSpec, run: Any) -> dict[str, Any]:
    """The engine as stored in the trajectory documents: by recipe (:class:`SpecEngine`) for in-process
    engines when the recipe rebuilds the very same engine, else the engine's own ``as_dict``."""
    full = run.build_engine().as_dict()
    if spec.in_process:
        from sld_workflows.campaigns.engine import SpecEngine

        recipe = SpecEngine({"structure": spec.raw["structure"], "engine": spec.raw["engine"]})
        if recipe.engine.as_dict() == full:
            return recipe.as_dict()
    return full


def create_campaign(session: Any, spec: CampaignSpec, pool: list | None = None) -> dict[str, Any]:
    """Validate, build the pool, store the campaign and its trajectories (queue ``pending``).
    Nothing is written if the name is taken or anything fails before the campaign document exists;
    a failure while storing trajectories removes what this call stored."""
    db = session.lpad.db
    coll = campaigns(db)
    if coll.find_one({"name": spec.name}, {"_id": 1}) is not None:
        raise SLDError(f"campaign name {spec.name!r} is already taken (see `sld campaign list`); choose another name")
    pool = build_pool(spec) if pool is None else pool  # may raise (unreadable file): nothing written yet
    raw = spec.raw
    sizes = spec.arm_sizes()
    train = [e for e in pool if not e.test]
    tests = [e for e in pool if e.test]
    session.initialize_launchpad()
    _ensure_indexes(db)
    doc = {"name": spec.name, "created": _now_iso(), "spec": raw, "state": "created",
           "arms": {arm: {**cfg, "trajectories": []} for arm, cfg in sizes.items()},
           "pool": {"source": raw["pool"]["source"], "n_entries": len(pool),
                    "temperatures_k": [e.temperature_k for e in pool],
                    "test_indices": [e.index for e in tests]}}
    try:
        coll.insert_one(doc)
    except pymongo.errors.DuplicateKeyError:
        raise SLDError(f"campaign name {spec.name!r} is already taken (see `sld campaign list`)") from None
    store = session.store
    created: list[str] = []
    try:
        engine_dict: dict[str, Any] | None = None
        arm_ids: dict[str, list[str]] = {arm: [] for arm in sizes}
        for arm, cfg in sizes.items():
            entries = tests if arm == "test" else train
            for e in entries:
                seed = (raw["seed"] * 1_000_003 + e.index * 7 + (1 if arm == "test" else 0)) % 2**31
                steps = cfg.get("n_steps", 1)
                run = spec.base_run_spec(temperature_k=e.temperature_k, steps=max(steps - 1, 1), seed=seed)
                settings = run.settings
                if engine_dict is None:
                    engine_dict = _engine_dict(spec, run)
                tdoc = {
                    "_id": ad.new_trajectory_id(), "name": f"{spec.name}:{arm}:{e.index}",
                    "campaign": spec.name, "arm": arm, "structure_index": e.index, "tags": dict(raw["tags"]),
                    "pool_temperature_k": e.temperature_k, "parent": None, "engine": engine_dict,
                    "dynamics": settings.as_dict(), "spec": None, "start_step": 0, "steps_done": 0,
                    "output_every": 1, "fireworks": {"category": raw["submission"].get("category")},
                    "provenance": _provenance(engine_dict, settings), "engine_wall_time_s": 0.0,
                    "last_energy_ev": None, "campaign_queue": "pending", "status": "READY",
                }
                if cfg["kind"] == "reference":
                    tdoc.update(layout="static", steps_requested=int(cfg["n_statics"]),
                                pool_state=pack_state(e.state), reference_seed=int(raw["seed"]))
                else:
                    layout = "merged" if spec.in_process else "split"
                    tdoc.update(layout=layout, steps_requested=int(steps) - 1)
                tid = store.create_trajectory(tdoc)
                created.append(tid)
                if cfg["kind"] != "reference":
                    ad.Frames(store, tid).put(0, "state", e.state)
                arm_ids[arm].append(tid)
        coll.update_one({"name": spec.name}, {"$set": {f"arms.{a}.trajectories": ids for a, ids in arm_ids.items()}})
    except BaseException:
        for tid in created:
            store.delete_trajectory(tid)
        coll.delete_one({"name": spec.name})
        raise
    return coll.find_one({"name": spec.name})


def get_campaign(db: Any, name: str) -> dict[str, Any]:
    doc = campaigns(db).find_one({"name": name})
    if doc is None:
        names = [d["name"] for d in campaigns(db).find({}, {"name": 1})]
        raise SLDError(f"no campaign named {name!r} (stored: {', '.join(names) or 'none'})")
    return doc


def list_campaigns(db: Any) -> list[dict[str, Any]]:
    return [{"name": d["name"], "created": d.get("created"), "state": d.get("state"),
             "arms": {a: {k: v for k, v in c.items() if k != "trajectories"} for a, c in d.get("arms", {}).items()}}
            for d in campaigns(db).find({}, {"spec": 0}).sort("created", 1)]


# ------------------------------------------------------------------------------------ feeding
def _workflow(spec: CampaignSpec, doc: dict[str, Any]):
    from fireworks import Workflow

    meta = {"sld_trajectory": doc["_id"], "sld_campaign": doc["campaign"], "sld_arm": doc["arm"]}
    name = f"sld-campaign:{doc['campaign']}:{doc['arm']}:{doc['_id']}"
    if doc["layout"] == "static":
        return Workflow([static_firework(doc, int(doc.get("steps_done", 0)), spec.statics_per_firework())],
                        name=name, metadata=meta)
    if doc["layout"] == "merged":
        return Workflow([sld_firework(doc, int(doc["steps_done"]), spec.steps_per_firework())], name=name,
                        metadata=meta)
    wf = ad.trajectory_workflow(doc, ad.EngineRequest(doc["_id"], int(doc["steps_done"]), "state"))
    wf.metadata.update(meta)
    return wf


def feed(session: Any, name: str, max_active: int | None = None) -> int:
    """Add workflows for pending trajectories while fewer than ``max_active`` are submitted. Returns
    the number added."""
    db = session.lpad.db
    camp = get_campaign(db, name)
    spec = CampaignSpec(camp["spec"])
    limit = int(max_active or spec.raw["submission"]["max_active"])
    trajs = db[ad.TRAJECTORIES]
    active = trajs.count_documents({"campaign": name, "campaign_queue": "submitted"})
    added = 0
    while active + added < limit:
        doc = trajs.find_one_and_update({"campaign": name, "campaign_queue": "pending"},
                                        {"$set": {"campaign_queue": "submitted"}},
                                        sort=[("structure_index", 1), ("arm", 1)],
                                        return_document=pymongo.ReturnDocument.AFTER)
        if doc is None:
            break
        try:
            old_new = session.lpad.add_wf(_workflow(spec, doc))
        except BaseException:
            trajs.update_one({"_id": doc["_id"]}, {"$set": {"campaign_queue": "pending"}})
            raise
        trajs.update_one({"_id": doc["_id"]}, {"$set": {"root_fw_id": min(old_new.values())}})
        added += 1
    if added and camp.get("state") == "created":
        campaigns(db).update_one({"name": name}, {"$set": {"state": "running"}})
    return added


def prune(session: Any, name: str) -> int:
    """Delete the workflows of finished trajectories from the LaunchPad (their frames and pack stay in
    the trajectory store). Split-layout trajectories completed by the ordinary tasks get their pack
    here. Returns the number of workflows deleted."""
    from sld_workflows.campaigns.tasks import finish_trajectory

    db = session.lpad.db
    trajs = db[ad.TRAJECTORIES]
    for doc in trajs.find({"campaign": name, "campaign_queue": "submitted", "status": "COMPLETED"}):
        finish_trajectory(session.store, doc)
    pruned = 0
    quiet = contextlib.redirect_stdout(io.StringIO())  # LaunchPad.delete_wf prints what it removes
    for doc in trajs.find({"campaign": name, "campaign_queue": "finished"}, {"root_fw_id": 1}):
        fw_id = doc.get("root_fw_id")
        if fw_id is not None:
            try:
                with quiet:
                    session.lpad.delete_wf(int(fw_id), delete_launch_dirs=False)
            except ValueError:  # already gone
                pass
        trajs.update_one({"_id": doc["_id"]}, {"$set": {"campaign_queue": "pruned"}, "$unset": {"root_fw_id": ""}})
        pruned += 1
    if pruned and trajs.count_documents({"campaign": name, "campaign_queue": {"$ne": "pruned"}}) == 0:
        campaigns(db).update_one({"name": name}, {"$set": {"state": "completed"}})
    return pruned


def run_campaign(session: Any, name: str, launch_dir: str, max_active: int | None = None,
                 timeout_s: float | None = None, max_launches: int | None = None) -> dict[str, Any]:
    """Feed, launch (FireWorks ``launch_rocket`` in this process) and prune until the campaign is done
    (or ``timeout_s``/``max_launches``). Returns counts and the wall time spent."""
    from fireworks.core.fworker import FWorker
    from fireworks.core.rocket_launcher import launch_rocket

    get_campaign(session.lpad.db, name)
    os.makedirs(launch_dir, exist_ok=True)
    fworker = FWorker(name="sld-campaign")
    for logger in ("rocket.launcher", "launchpad"):  # one line per Firework would drown the output
        logging.getLogger(logger).setLevel(logging.WARNING)
    start = time.perf_counter()
    launches = 0
    max_fireworks = 0
    cwd = os.getcwd()
    os.chdir(launch_dir)
    try:
        while True:
            feed(session, name, max_active)
            max_fireworks = max(max_fireworks, session.lpad.fireworks.count_documents({}))
            ran = 0
            while True:
                if max_launches is not None and launches >= max_launches:
                    break
                if not launch_rocket(session.lpad, fworker, strm_lvl="ERROR"):
                    break
                launches += 1
                ran += 1
                if ran % 16 == 0:  # finished trajectories leave and new ones come in while we work
                    prune(session, name)
                    feed(session, name, max_active)
                    max_fireworks = max(max_fireworks, session.lpad.fireworks.count_documents({}))
            prune(session, name)
            pending = session.lpad.db[ad.TRAJECTORIES].count_documents(
                {"campaign": name, "campaign_queue": {"$in": ["pending", "submitted", "finished"]}})
            if pending == 0 or ran == 0 and feed(session, name, max_active) == 0:
                break
            if max_launches is not None and launches >= max_launches:
                break
            if timeout_s is not None and time.perf_counter() - start > timeout_s:
                break
            session.flush_if_due()
    finally:
        os.chdir(cwd)
    return {"launches": launches, "wall_time_s": time.perf_counter() - start, "max_fireworks": max_fireworks}


# ------------------------------------------------------------------------------------ status
def campaign_status(db: Any, name: str) -> dict[str, Any]:
    """Progress and cost per arm, as plain dicts (the dashboard calls this).

    Cost per arm: engine wall time, SCF iterations (DFT engines), engine calls, summed over the
    arm's evaluation frames; ``cost_reference_points``: the arm's cost in units of one static reference
    calculation (mean reference cost by SCF iterations when recorded, else by wall time), as on the
    axes of the paper's Fig. 3.
    """
    camp = get_campaign(db, name)
    trajs = db[ad.TRAJECTORIES]
    frames = db[ad.FRAMES]
    arms: dict[str, Any] = {}
    for arm, cfg in camp["arms"].items():
        rows = list(trajs.find({"campaign": name, "arm": arm},
                               {"steps_done": 1, "steps_requested": 1, "start_step": 1, "status": 1,
                                "campaign_queue": 1, "engine_wall_time_s": 1, "cost": 1}))
        queue: dict[str, int] = {}
        for r in rows:
            queue[r.get("campaign_queue", "?")] = queue.get(r.get("campaign_queue", "?"), 0) + 1
        per_traj = cfg.get("n_steps", cfg.get("n_statics", 0))
        # finished trajectories carry their cost summary; only the others' frames are read
        done = [r["cost"] for r in rows if r.get("cost")]
        ids = [r["_id"] for r in rows if not r.get("cost")]
        wall = float(sum(c["wall_time_s"] for c in done))
        scf = float(sum(c["scf_iterations"] or 0.0 for c in done))
        scf_known = sum(c["scf_iterations"] is not None for c in done)
        calls = int(sum(c["engine_calls"] for c in done))
        evaluations = int(sum(c["evaluations"] for c in done))
        kinds = {"$in": ["evaluation", "midpoint_evaluation"]}
        scanned = frames.find({"trajectory": {"$in": ids}, "kind": kinds},
                              {"wall_time_s": 1, "scf_iterations": 1, "kind": 1}) if ids else []
        for f in scanned:
            wall += float(f.get("wall_time_s") or 0.0)
            if f.get("scf_iterations") is not None:
                scf += float(f["scf_iterations"])
                scf_known += 1
            calls += 1
            evaluations += f["kind"] == "evaluation"
        arms[arm] = {
            "kind": cfg["kind"], "n_structures": cfg["n_structures"],
            "points_per_structure": per_traj, "points_requested": per_traj * len(rows),
            "points_done": evaluations,
            "trajectories": len(rows), "completed": sum(r.get("status") == "COMPLETED" for r in rows),
            "queue": queue, "engine_wall_time_s": wall, "scf_iterations": scf if scf_known else None,
            "engine_calls": calls, "evaluations": evaluations,
        }
    ref = arms.get("reference")
    unit = None
    basis = None
    if ref and ref["evaluations"]:
        if ref["scf_iterations"]:
            unit, basis = ref["scf_iterations"] / ref["evaluations"], "scf_iterations"
        elif ref["engine_wall_time_s"] > 0:
            unit, basis = ref["engine_wall_time_s"] / ref["evaluations"], "engine_wall_time_s"
    for a in arms.values():
        cost = a.get(basis) if basis else None
        a["cost_reference_points"] = None if unit is None or cost is None else float(cost) / unit
        a["cost_per_point_reference_units"] = (None if a["cost_reference_points"] is None or not a["evaluations"]
                                               else a["cost_reference_points"] / a["evaluations"])
    return {"name": name, "state": camp.get("state"), "created": camp.get("created"),
            "cost_basis": basis, "reference_point_cost": unit, "arms": arms,
            "launchpad_fireworks": db["fireworks"].count_documents({"spec.sld_campaign": name})}
