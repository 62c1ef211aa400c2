"""The trajectory store: MongoDB schema, indexes and queries (pymongo API only).

This is the only module that reads or writes the ``sld_trajectories`` and ``sld_frames``
collections. It takes a pymongo-compatible ``Database`` — in practice the LaunchPad's own
``lpad.db`` — so the same code serves a real MongoDB and FireWorks' embedded mongomock store.

Schema
------
``sld_trajectories`` (one document per trajectory, ``_id`` = trajectory id)::

    {_id, name, status, parent: {trajectory, step} | None, branch_step,
     engine: <engine as_dict>, dynamics: <DynamicsSettings as_dict>, spec: <run spec dict> | None,
     start_step, steps_requested (absolute target step), steps_done (absolute), output_every,
     layout ("merged" | "split"), provenance: {engine_class, engine_settings, spin_scheme, seed,
     versions}, last_energy_ev, engine_wall_time_s, created_on, updated_on}

``sld_frames`` (unique index on (trajectory, step, kind))::

    {trajectory, step, kind, data: <SLDState or Evaluation as_dict, arrays as lists>,
     time_fs, energy_ev, launch_dir, info: {scf_iterations, custodian_corrections, wall_time_s, ...},
     written_on}

Kinds: ``state`` (the completed state of step n), ``evaluation`` (its engine evaluation),
``provisional_state`` (state n before the final half kick, the engine input of step n),
``midpoint_state`` / ``midpoint_evaluation`` (full SIB only, keyed by the step they start from).

Writes are *insert-or-verify* upserts: the first write of a key stores the document; a repeated
write (a step recomputed after a crash) must carry identical data and is then a no-op; different
data for a stored key raises :class:`FrameConflictError` and leaves the stored frame untouched.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import bson
import pymongo
import pymongo.errors

from sld_workflows.errors import SLDError
from sld_workflows.store.keys import EVALUATION_KINDS, FrameKind, FwSpec, TrajectoryStatus

TRAJECTORIES = "sld_trajectories"
FRAMES = "sld_frames"
#: who may add the successors of a chain position: {_id: "<trajectory>:<chain>:<seq>", token, ...}
CLAIMS = "sld_claims"

#: MongoDB's hard limit on one BSON document.
MONGODB_MAX_BSON_BYTES = 16 * 1024 * 1024
#: Our guard refuses documents above this (margin for FireWorks' own wrappers and driver overhead).
DEFAULT_MAX_DOCUMENT_BYTES = MONGODB_MAX_BSON_BYTES - 512 * 1024

FRAME_KINDS = tuple(FrameKind)  # kept for importers of the tuple
STATUSES = tuple(TrajectoryStatus)


class StoreError(SLDError):
    """A store operation could not be done; nothing was written."""


class UnknownTrajectoryError(StoreError, KeyError):
    def __init__(self, trajectory_id: str) -> None:
        self.trajectory_id = trajectory_id
        super().__init__(f"unknown trajectory id {trajectory_id!r} (see `sld status` for the stored ones)")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DocumentTooLargeError(StoreError):
    """A document would exceed the size guard (MongoDB's 16 MB limit minus a margin)."""


class FrameConflictError(StoreError):
    """A frame with the same (trajectory, step, kind) is stored with different data."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def new_trajectory_id() -> str:
    return "sld-" + uuid.uuid4().hex[:12]


class TrajectoryStore:
    """Trajectories and their frames in one MongoDB database (``lpad.db``)."""

    def __init__(self, db: Any, max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> None:
        self.db = db
        self.trajectories = db[TRAJECTORIES]
        self.frames = db[FRAMES]
        self.claims = db[CLAIMS]
        self.max_document_bytes = int(max_document_bytes)
        self.ensure_indexes()

    # ------------------------------------------------------------------ schema
    def ensure_indexes(self) -> None:
        """Create the indexes (idempotent). mongomock-persistence does not persist indexes, so this
        runs on every connection."""
        self.frames.create_index(
            [("trajectory", 1), ("step", 1), ("kind", 1)], unique=True, name="trajectory_step_kind"
        )
        self.trajectories.create_index([("name", 1)], name="name")
        self.trajectories.create_index([("parent.trajectory", 1)], name="parent")

    def check_size(self, doc: dict[str, Any], what: str) -> int:
        """Raise :class:`DocumentTooLargeError` if ``doc`` is too big for MongoDB; return its size."""
        size = len(bson.encode(doc))
        if size > self.max_document_bytes:
            raise DocumentTooLargeError(
                f"{what}: document of {size / 2**20:.2f} MiB exceeds the store's limit of "
                f"{self.max_document_bytes / 2**20:.2f} MiB (MongoDB refuses documents over 16 MiB); "
                "nothing was written — store fewer sites per frame or split the data"
            )
        return size

    # ------------------------------------------------------------------ trajectories
    def create_trajectory(self, doc: dict[str, Any]) -> str:
        doc = dict(doc)
        doc.setdefault("_id", new_trajectory_id())
        doc.setdefault("status", TrajectoryStatus.READY.value)
        doc.setdefault("created_on", _now())
        doc["updated_on"] = _now()
        self.check_size(doc, f"trajectory {doc['_id']}")
        self.trajectories.insert_one(doc)
        return doc["_id"]

    def get_trajectory(self, trajectory_id: str) -> dict[str, Any]:
        doc = self.trajectories.find_one({"_id": trajectory_id})
        if doc is None:
            raise UnknownTrajectoryError(trajectory_id)
        return doc

    def find_trajectories(self, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.trajectories.find(query or {}, {"spec": 0}).sort("created_on", 1))

    def update_trajectory(self, trajectory_id: str, **fields: Any) -> None:
        fields["updated_on"] = _now()
        result = self.trajectories.update_one({"_id": trajectory_id}, {"$set": fields})
        if result.matched_count == 0:
            raise UnknownTrajectoryError(trajectory_id)

    def delete_trajectory(self, trajectory_id: str) -> None:
        """Remove a trajectory and its frames (used only to undo a submission that failed)."""
        self.frames.delete_many({"trajectory": trajectory_id})
        self.trajectories.delete_one({"_id": trajectory_id})

    def record_step(self, trajectory_id: str, step: int, energy_ev: float, wall_time_s: float) -> None:
        """Advance ``steps_done`` monotonically ($max: a recomputed step never moves it back)."""
        self.trajectories.update_one(
            {"_id": trajectory_id},
            {"$max": {"steps_done": int(step)},
             "$set": {"updated_on": _now(), "last_energy_ev": float(energy_ev)},
             "$inc": {"engine_wall_time_s": float(wall_time_s)}},
        )

    def claim(self, trajectory_id: str, worker: dict[str, Any]) -> dict[str, Any]:
        """Mark RUNNING by ``worker`` (host, pid, fw_id, since); return the trajectory document."""
        doc = self.trajectories.find_one_and_update(
            {"_id": trajectory_id},
            {"$set": {"status": TrajectoryStatus.RUNNING.value, "worker": worker, "updated_on": _now()}},
            return_document=pymongo.ReturnDocument.AFTER,
        )
        if doc is None:
            raise UnknownTrajectoryError(trajectory_id)
        return doc

    def finish(self, trajectory_id: str) -> None:
        self.update_trajectory(trajectory_id, status=TrajectoryStatus.COMPLETED.value, worker=None)

    def running_with_worker(self) -> list[dict[str, Any]]:
        """Trajectories a task marked RUNNING, with its worker record (for dead-worker detection)."""
        return list(self.trajectories.find({"worker": {"$ne": None}, "status": TrajectoryStatus.RUNNING.value},
                                           {"worker": 1, "status": 1}))

    # ------------------------------------------------------------------ claims of chain positions
    @staticmethod
    def _claim_id(trajectory_id: str, chain: str, seq: int) -> str:
        return f"{trajectory_id}:{chain}:{int(seq)}"

    def claim_successor(self, trajectory_id: str, chain: str, seq: int, token: str) -> bool:
        """Record ``token`` as the one adder of chain position ``seq`` (insert-or-verify).

        True if ``token`` holds the claim (now or from before). A claim whose successor Firework was
        never added (its claimant died between claiming and FireWorks storing the additions) is taken
        over; one whose successor exists is kept: a rerun Firework then adds no second chain. The
        successor itself checks the claim when it starts (:meth:`claim_holder`), so even a race
        between two claimants leaves one live chain.
        """
        key = self._claim_id(trajectory_id, chain, seq)
        try:
            self.claims.insert_one({"_id": key, "trajectory": trajectory_id, "chain": chain, "seq": int(seq),
                                    "token": token, "claimed_on": _now()})
            return True
        except pymongo.errors.DuplicateKeyError:
            pass
        doc = self.claims.find_one({"_id": key})
        if doc is None or doc["token"] == token:
            return doc is not None
        successor = self.db["fireworks"].count_documents(
            {FwSpec.TRAJECTORY: trajectory_id, "spec.sld.chain": chain, "spec.sld.seq": int(seq),
             "spec.sld.claim": doc["token"]}, limit=1)
        if successor:
            return False
        result = self.claims.update_one({"_id": key, "token": doc["token"]},
                                        {"$set": {"token": token, "claimed_on": _now(), "took_over": doc["token"]}})
        return result.modified_count == 1

    def claim_holder(self, trajectory_id: str, chain: str, seq: int) -> str | None:
        doc = self.claims.find_one({"_id": self._claim_id(trajectory_id, chain, seq)}, {"token": 1})
        return None if doc is None else doc["token"]

    def add_engine_time(self, trajectory_id: str, wall_time_s: float) -> None:
        self.trajectories.update_one({"_id": trajectory_id}, {"$inc": {"engine_wall_time_s": float(wall_time_s)}})

    # ------------------------------------------------------------------ frames
    def frames_of_steps(self, trajectory_id: str, steps: list[int]) -> list[dict[str, Any]]:
        """Every stored frame of the given steps (one query)."""
        return list(self.frames.find({"trajectory": trajectory_id, "step": {"$in": [int(x) for x in steps]}}))

    def latest_frame_with(
        self, trajectory_id: str, field: str, kinds: list[str], max_step: int
    ) -> dict[str, Any] | None:
        """The latest frame (by step, then kind descending) of ``kinds`` up to ``max_step`` that has
        ``field`` set; only ``field``, step and kind are returned."""
        return self.frames.find_one(
            {"trajectory": trajectory_id, "kind": {"$in": kinds}, "step": {"$lte": int(max_step)},
             field: {"$ne": None}},
            {field: 1, "step": 1, "kind": 1}, sort=[("step", -1), ("kind", -1)],
        )

    def engine_wall_time(self, query: dict[str, Any] | None = None) -> float:
        """Sum of stored engine wall times of evaluation frames (benchmarks)."""
        q = {"kind": {"$in": sorted(str(k) for k in EVALUATION_KINDS)}, **(query or {})}
        return float(sum(d.get("wall_time_s") or 0.0 for d in self.frames.find(q, {"wall_time_s": 1})))

    def delete_all(self) -> None:
        """Empty both collections (benchmarks on a scratch database only)."""
        self.frames.delete_many({})
        self.trajectories.delete_many({})

    def put_frame(
        self,
        trajectory_id: str,
        step: int,
        kind: str,
        data: dict[str, Any],
        **extra: Any,
    ) -> bool:
        """Insert-or-verify one frame. Returns True if written now, False if an identical frame was
        already stored. Raises :class:`FrameConflictError` for different stored data."""
        try:
            kind = FrameKind(kind).value
        except ValueError:
            raise StoreError(f"frame kind must be one of {[k.value for k in FrameKind]}, got {kind!r}") from None
        key = {"trajectory": trajectory_id, "step": int(step), "kind": kind}
        doc = {**key, "data": data, **extra, "written_on": _now()}
        self.check_size(doc, f"frame {kind} of step {step} of trajectory {trajectory_id}")
        try:
            # one round trip; the unique index makes it an atomic "insert if absent"
            self.frames.insert_one(doc)
            return True
        except pymongo.errors.DuplicateKeyError:
            pass
        stored = self.frames.find_one(key, {"data": 1})
        # compare the BSON bytes: bit-exact floats (-0.0 differs from 0.0), tuples equal lists
        if stored is None or bson.encode({"d": stored["data"]}) != bson.encode({"d": data}):
            raise FrameConflictError(
                f"frame {kind} of step {step} of trajectory {trajectory_id} is already stored with "
                "different data; the stored frame was kept (a step must be a deterministic function "
                "of the stored inputs)"
            )
        return False

    def get_frame(self, trajectory_id: str, step: int, kind: str) -> dict[str, Any] | None:
        return self.frames.find_one({"trajectory": trajectory_id, "step": int(step), "kind": kind})

    def has_frame(self, trajectory_id: str, step: int, kind: str) -> bool:
        return self.frames.count_documents(
            {"trajectory": trajectory_id, "step": int(step), "kind": kind}, limit=1
        ) > 0

    def iter_frames(
        self, trajectory_id: str, kind: str | None = None, max_step: int | None = None
    ) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {"trajectory": trajectory_id}
        if kind is not None:
            query["kind"] = kind
        if max_step is not None:
            query["step"] = {"$lte": int(max_step)}
        return iter(self.frames.find(query).sort([("step", 1), ("kind", 1)]))

    def count_frames(self, trajectory_id: str, kind: str | None = None) -> int:
        query: dict[str, Any] = {"trajectory": trajectory_id}
        if kind is not None:
            query["kind"] = kind
        return self.frames.count_documents(query)

    def last_step(self, trajectory_id: str, kind: str = "state") -> int | None:
        doc = self.frames.find_one({"trajectory": trajectory_id, "kind": kind}, {"step": 1},
                                   sort=[("step", -1)])
        return None if doc is None else int(doc["step"])

    # ------------------------------------------------------------------ FireWorks' view (read only)
    def firework_states(self, trajectory_id: str | None = None) -> dict[str, dict[str, int]]:
        """{trajectory: {Firework state: count}} from the LaunchPad's ``fireworks`` collection."""
        out: dict[str, dict[str, int]] = {}
        for fw in self.db["fireworks"].find(FwSpec.query(trajectory_id), FwSpec.projection()):
            tid = FwSpec.trajectory_of(fw)
            out.setdefault(tid, {})
            out[tid][fw["state"]] = out[tid].get(fw["state"], 0) + 1
        return out

    def trajectory_of_firework(self, fw_id: int) -> str | None:
        return FwSpec.trajectory_of(self.db["fireworks"].find_one({"fw_id": fw_id}, {FwSpec.TRAJECTORY: 1}))
