"""Which frames an export takes: the query, the paper's protocols, and the split by initial structure.

Everything here works on metadata (trajectory documents and the step numbers each trajectory has
stored), never on frame arrays, so a plan for 18,000 frames costs milliseconds and the export can then
stream the arrays trajectory by trajectory.

Protocols (deterministic for a given ``seed``; recorded in the manifest):

- ``stride k``: keep steps with (step − first step) % k == 0 (temporal subsampling);
- ``count N``: exactly N frames; ``budget B``: frames whose summed cost ≤ B reference points (one
  static reference calculation = 1; an SLD snapshot costs ``sld_frame_cost``, measured from the
  campaign's recorded costs unless given). Both take whole *structures* in a seeded random order and
  each trajectory from its first selected step (an SLD trajectory cannot have step 15 without steps
  0–14), the last one cut where the count/budget is reached;
- ``split (train, val, test)``: initial structures (``(campaign, structure_index)``, or the trajectory
  for trajectories outside a campaign) are shuffled with ``seed`` and cut by the ratios, so no initial
  structure appears in two splits (the paper splits at the level of initial structures).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sld_workflows.datasets.blocks import PACKS
from sld_workflows.errors import SLDError

TRAJECTORIES = "sld_trajectories"
FRAMES = "sld_frames"
SPLIT_NAMES = ("train", "val", "test")


class ExportError(SLDError):
    """A bad export request; nothing was written."""


@dataclasses.dataclass(frozen=True)
class ExportQuery:
    campaign: str | None = None
    arms: tuple[str, ...] = ()
    trajectories: tuple[str, ...] = ()
    step_min: int | None = None
    step_max: int | None = None
    stride: int = 1
    tags: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ExportError(f"--stride must be >= 1, got {self.stride}")
        if self.step_min is not None and self.step_max is not None and self.step_min > self.step_max:
            raise ExportError(f"--steps: first step {self.step_min} is after the last {self.step_max}")

    def mongo(self) -> dict[str, Any]:
        q: dict[str, Any] = {}
        if self.campaign:
            q["campaign"] = self.campaign
        if self.arms:
            q["arm"] = {"$in": list(self.arms)}
        if self.trajectories:
            q["_id"] = {"$in": list(self.trajectories)}
        for k, v in self.tags:
            q[f"tags.{k}"] = v
        return q

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tags"] = dict(self.tags)
        d["mongo"] = self.mongo()
        return d


@dataclasses.dataclass(frozen=True)
class Protocol:
    count: int | None = None
    budget: float | None = None
    sld_frame_cost: float | None = None
    split: tuple[float, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count is not None and self.budget is not None:
            raise ExportError("give --count or --budget, not both")
        if self.count is not None and self.count < 1:
            raise ExportError(f"--count must be >= 1, got {self.count}")
        if self.budget is not None and not self.budget > 0:
            raise ExportError(f"--budget must be > 0 reference points, got {self.budget}")
        if self.split is not None:
            if not 2 <= len(self.split) <= 3 or any(r < 0 for r in self.split):
                raise ExportError(f"--split needs 2 or 3 non-negative ratios (train,val[,test]), got {self.split}")
            if abs(sum(self.split) - 1.0) > 1e-9:
                raise ExportError(f"--split ratios must sum to 1, got {'+'.join(f'{r:g}' for r in self.split)} "
                                  f"= {sum(self.split):g}")


@dataclasses.dataclass
class PlannedTrajectory:
    doc: dict[str, Any]
    steps: np.ndarray
    split: str = "all"

    @property
    def id(self) -> str:
        return self.doc["_id"]

    @property
    def structure_key(self) -> str:
        if self.doc.get("campaign") is not None and self.doc.get("structure_index") is not None:
            return f"{self.doc['campaign']}#{int(self.doc['structure_index'])}"
        return f"trajectory#{self.doc['_id']}"


def stored_steps(db: Any, doc: dict[str, Any]) -> np.ndarray:
    """Steps of ``doc`` that have both a state and an evaluation frame (from its pack if stored)."""
    packs = list(db[PACKS].find({"trajectory": doc["_id"]}, {"arrays.step": 1, "chunk": 1}).sort("chunk", 1))
    if packs:
        parts = [np.frombuffer(p["arrays"]["step"]["bytes"], dtype="<i8") for p in packs]
        return np.concatenate(parts).astype(np.int64)
    kinds: dict[str, set[int]] = {"state": set(), "evaluation": set()}
    for f in db[FRAMES].find({"trajectory": doc["_id"], "kind": {"$in": ["state", "evaluation"]}},
                             {"step": 1, "kind": 1}):
        kinds[f["kind"]].add(int(f["step"]))
    return np.array(sorted(kinds["state"] & kinds["evaluation"]), dtype=np.int64)


def select(db: Any, query: ExportQuery) -> list[PlannedTrajectory]:
    fields = {"engine": 0, "spec": 0, "pool_state": 0}
    docs = list(db[TRAJECTORIES].find(query.mongo(), fields).sort([("structure_index", 1), ("_id", 1)]))
    plan = []
    for doc in docs:
        steps = stored_steps(db, doc)
        if query.step_min is not None:
            steps = steps[steps >= query.step_min]
        if query.step_max is not None:
            steps = steps[steps <= query.step_max]
        if query.stride > 1 and steps.size:
            steps = steps[(steps - steps[0]) % query.stride == 0]
        if steps.size:
            plan.append(PlannedTrajectory(doc, steps))
    if not plan:
        what = (f"{len(docs)} trajectories matched but none has stored frames in the step range"
                if docs else "no trajectory matches")
        raise ExportError(f"the query {query.mongo()} selects no frames ({what}); nothing was written")
    return plan


def frame_costs(plan: list[PlannedTrajectory], sld_frame_cost: float | None, measured: dict[str, float]) -> dict:
    """Cost of one frame per arm in reference points."""
    costs = {}
    for p in plan:
        arm = p.doc.get("arm") or "sld"
        if arm in costs:
            continue
        if arm == "reference":
            costs[arm] = 1.0
        elif sld_frame_cost is not None:
            costs[arm] = float(sld_frame_cost)
        elif measured.get(arm) is not None:
            costs[arm] = float(measured[arm])
        else:
            raise ExportError(f"--budget: no recorded cost for arm {arm!r}; give --sld-frame-cost "
                              "(e.g. 0.5 as in the paper)")
    return costs


def apply_protocol(plan: list[PlannedTrajectory], protocol: Protocol,
                   measured_costs: dict[str, float] | None = None) -> tuple[list[PlannedTrajectory], dict[str, Any]]:
    """Cut ``plan`` by count/budget and assign splits. Returns (plan, what was done, for the manifest)."""
    rng = np.random.default_rng(protocol.seed)
    info: dict[str, Any] = {"seed": protocol.seed}
    total = sum(p.steps.size for p in plan)
    if protocol.count is not None or protocol.budget is not None:
        costs = {arm: 1.0 for arm in {p.doc.get("arm") for p in plan}}
        limit = float(protocol.count) if protocol.count is not None else float(protocol.budget)
        if protocol.budget is not None:
            costs = frame_costs(plan, protocol.sld_frame_cost, measured_costs or {})
        available = sum(p.steps.size * costs[p.doc.get("arm")] for p in plan)
        if limit > available + 1e-9:
            unit = "frames" if protocol.count is not None else "reference points"
            raise ExportError(f"{'--count' if protocol.count is not None else '--budget'} {limit:g} is larger than "
                              f"the selected data ({available:g} {unit} in {total} frames); nothing was written")
        keys = sorted({p.structure_key for p in plan})
        order = {k: i for i, k in enumerate(rng.permutation(np.array(keys, dtype=object)))}
        ordered = sorted(plan, key=lambda p: (order[p.structure_key], p.id))
        kept, used = [], 0.0
        for p in ordered:
            c = costs[p.doc.get("arm")]
            n = int(min(p.steps.size, np.floor((limit - used) / c + 1e-9)))
            if n <= 0:
                break
            kept.append(PlannedTrajectory(p.doc, p.steps[:n]))
            used += n * c
        plan = kept
        info.update({"count": protocol.count, "budget": protocol.budget, "cost_per_frame": costs,
                     "cost_used": used})
    if protocol.split is not None:
        ratios = list(protocol.split) + [0.0] * (3 - len(protocol.split))
        # structures of a campaign's test arm are test data whatever the ratios (never trained on)
        held_out = {p.structure_key for p in plan if p.doc.get("arm") == "test"}
        keys = sorted({p.structure_key for p in plan} - held_out)
        shuffled = list(rng.permutation(np.array(keys, dtype=object)))
        bounds = np.rint(np.cumsum(ratios) * len(keys)).astype(int)
        where = {k: "test" for k in held_out}
        for i, k in enumerate(shuffled):
            where[k] = SPLIT_NAMES[int(np.searchsorted(bounds, i, side="right"))]
        for p in plan:
            p.split = where[p.structure_key]
        info["split"] = {"ratios": ratios, "structures": {s: sorted(k for k, v in where.items() if v == s)
                                                           for s in SPLIT_NAMES}}
    return plan, info
