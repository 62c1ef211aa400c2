"""Frame blocks: all stored snapshots of one trajectory as numpy arrays, and their packed copy.

A *block* is the export view of one trajectory: for each stored step that has both a ``state`` and
an ``evaluation`` frame, the arrays below (F = frames, N = sites). It is built from ``sld_frames``
(the trajectory store, the source of truth) by :func:`block_from_frames`.

A *pack* is the same block stored once, when a campaign trajectory is finished, in the collection
``sld_frame_packs`` as raw little-endian float64 bytes (one document per trajectory, split in
chunks under MongoDB's 16 MB limit). Why: exports read 18,000 frames of 80 atoms; decoding 36,000
frame documents of nested lists costs ~1 ms each on the local server, a pack of 20 frames costs about
the same as one frame document. Packs are a derived cache: :func:`read_block` falls back to the
frames when a trajectory has none (e.g. an unfinished or a plain ``sld submit`` trajectory), and
:func:`write_pack` of :func:`block_from_frames` rebuilds one.

Arrays of a block: ``positions, velocities, spins, forces, fields`` (F, N, 3); ``moments,
field_parallel`` (F, N) (NaN where the engine gives no parallel field); ``cell, stress`` (F, 3, 3)
(stress NaN if absent); ``energy, time_fs, wall_time_s, scf_iterations`` (F,) (NaN if unknown);
``step, engine_calls`` (F,) integers. ``species`` is the tuple of site symbols.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import bson
import numpy as np

PACKS = "sld_frame_packs"
#: bytes of array data per pack document (MongoDB's limit is 16 MiB per document)
PACK_CHUNK_BYTES = 8 * 2**20

FLOAT_ARRAYS = ("positions", "velocities", "spins", "forces", "fields", "moments", "field_parallel", "cell",
                "stress", "energy", "time_fs", "wall_time_s", "scf_iterations")
INT_ARRAYS = ("step", "engine_calls")
_INDEXED: set[int] = set()  # databases whose pack index this process has created


@dataclasses.dataclass
class Block:
    trajectory: str
    species: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    pbc: tuple[bool, bool, bool] = (True, True, True)

    @property
    def n_frames(self) -> int:
        return int(self.arrays["step"].shape[0])

    def take(self, mask_or_index: np.ndarray) -> Block:
        return Block(self.trajectory, self.species, {k: v[mask_or_index] for k, v in self.arrays.items()},
                     self.pbc)


def _nan(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, np.nan)


def block_from_frames(db: Any, trajectory: str, step_range: tuple[int | None, int | None] = (None, None)) -> Block:
    """Build the block of ``trajectory`` from its ``sld_frames`` documents (steps within ``step_range``,
    inclusive). Midpoint evaluations (full SIB) count into the engine calls and wall time of the step
    they lead to."""
    from sld_workflows.store.trajectories import FRAMES

    query: dict[str, Any] = {"trajectory": trajectory, "kind": {"$in": ["state", "evaluation",
                                                                        "midpoint_evaluation"]}}
    lo, hi = step_range
    if lo is not None or hi is not None:
        query["step"] = {}
        if lo is not None:
            query["step"]["$gte"] = int(lo) - 1  # the midpoint of step lo-1 belongs to step lo
        if hi is not None:
            query["step"]["$lte"] = int(hi)
    docs = db[FRAMES].find(query, {"written_on": 0, "launch_dir": 0, "engine_run_dir": 0})
    return block_from_docs(trajectory, docs, step_range)


def block_from_docs(trajectory: str, docs: Any, step_range: tuple[int | None, int | None] = (None, None)) -> Block:
    """The block of frame documents ``docs`` (as stored in ``sld_frames``) of one trajectory."""
    lo, hi = step_range
    states: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    mids: dict[int, dict] = {}
    for doc in docs:
        {"state": states, "evaluation": evals, "midpoint_evaluation": mids}[doc["kind"]][int(doc["step"])] = doc
    steps = sorted(s for s in states if s in evals and (lo is None or s >= lo) and (hi is None or s <= hi))
    n = len(states[steps[0]]["data"]["species"]) if steps else 0
    species = tuple(states[steps[0]]["data"]["species"]) if steps else ()
    pbc = tuple(states[steps[0]]["data"].get("pbc", (True, True, True))) if steps else (True, True, True)
    f = len(steps)
    a: dict[str, np.ndarray] = {
        "positions": np.empty((f, n, 3)), "velocities": np.empty((f, n, 3)), "spins": np.empty((f, n, 3)),
        "forces": np.empty((f, n, 3)), "fields": np.empty((f, n, 3)), "moments": np.empty((f, n)),
        "field_parallel": _nan((f, n)), "cell": np.empty((f, 3, 3)), "stress": _nan((f, 3, 3)),
        "energy": np.empty(f), "time_fs": np.empty(f), "wall_time_s": _nan((f,)), "scf_iterations": _nan((f,)),
        "step": np.array(steps, dtype=np.int64), "engine_calls": np.ones(f, dtype=np.int64),
    }
    for i, s in enumerate(steps):
        sd, ed = states[s]["data"], evals[s]
        e = ed["data"]
        a["positions"][i] = sd["positions"]
        a["velocities"][i] = sd["velocities"]
        a["spins"][i] = sd["spins"]
        a["moments"][i] = sd["moments"]
        a["cell"][i] = sd["cell"]
        a["time_fs"][i] = sd.get("time_fs", 0.0)
        a["energy"][i] = e["energy_ev"]
        a["forces"][i] = e["forces_ev_per_a"]
        a["fields"][i] = e["fields_ev_per_mub"]
        if e.get("field_parallel_ev_per_mub") is not None:
            a["field_parallel"][i] = e["field_parallel_ev_per_mub"]
        if e.get("stress_ev_per_a3") is not None:
            a["stress"][i] = e["stress_ev_per_a3"]
        wall = ed.get("wall_time_s")
        scf = ed.get("scf_iterations")
        mid = mids.get(s - 1)
        if mid is not None:
            a["engine_calls"][i] += 1
            wall = None if wall is None else wall + (mid.get("wall_time_s") or 0.0)
            scf = None if scf is None else scf + (mid.get("scf_iterations") or 0)
        if wall is not None:
            a["wall_time_s"][i] = wall
        if scf is not None:
            a["scf_iterations"][i] = scf
    return Block(trajectory, species, a, pbc)  # type: ignore[arg-type]


def write_pack(db: Any, block: Block, meta: dict[str, Any] | None = None) -> int:
    """Store ``block`` in ``sld_frame_packs`` (replacing an older pack of the trajectory). Returns the
    number of chunk documents."""
    coll = db[PACKS]
    if id(db) not in _INDEXED:
        coll.create_index([("trajectory", 1), ("chunk", 1)], unique=True, name="trajectory_chunk")
        _INDEXED.add(id(db))
    per_frame = sum(v[:1].nbytes for v in block.arrays.values()) or 1
    per_chunk = max(1, PACK_CHUNK_BYTES // per_frame)
    docs = []
    for c, start in enumerate(range(0, max(block.n_frames, 1), per_chunk)):
        part = {k: v[start:start + per_chunk] for k, v in block.arrays.items()}
        docs.append({
            "trajectory": block.trajectory, "chunk": c, "species": list(block.species), "pbc": list(block.pbc),
            "n_frames": int(part["step"].shape[0]), **(meta or {}),
            "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                           "bytes": bson.Binary(np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<")).tobytes())}
                       for k, v in part.items()},
        })
    coll.delete_many({"trajectory": block.trajectory})
    coll.insert_many(docs)
    return len(docs)


def read_pack(db: Any, trajectory: str) -> Block | None:
    chunks = list(db[PACKS].find({"trajectory": trajectory}).sort("chunk", 1))
    if not chunks:
        return None
    parts: dict[str, list[np.ndarray]] = {}
    for doc in chunks:
        for k, spec in doc["arrays"].items():
            arr = np.frombuffer(spec["bytes"], dtype=np.dtype(spec["dtype"]).newbyteorder("<"))
            parts.setdefault(k, []).append(arr.reshape(spec["shape"]).astype(spec["dtype"]))
    arrays = {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in parts.items()}
    return Block(trajectory, tuple(chunks[0]["species"]), arrays, tuple(chunks[0].get("pbc", (True,) * 3)))


def read_block(db: Any, trajectory: str, step_range: tuple[int | None, int | None] = (None, None)) -> Block:
    """The block of ``trajectory``: its pack when one is stored, else built from the frames."""
    block = read_pack(db, trajectory)
    if block is None:
        return block_from_frames(db, trajectory, step_range)
    lo, hi = step_range
    mask = np.ones(block.n_frames, dtype=bool)
    if lo is not None:
        mask &= block.arrays["step"] >= lo
    if hi is not None:
        mask &= block.arrays["step"] <= hi
    return block if mask.all() else block.take(mask)


def magnetic_forces(block: Block) -> tuple[np.ndarray, np.ndarray, str]:
    """(−∂E/∂M, its part ⊥ to the moment, projection) in eV/μB, per site (F, N, 3).

    With E = −μ s·B and M = μ s (μ fixed), −∂E/∂M = −(1/μ)∂E/∂s = B. The stored field is the part
    perpendicular to s; engines that know the parallel part (model engines) store it too, and then the
    full vector B⊥ + B∥ ŝ is returned (projection ``full``); otherwise (constrained DFT, which only
    supervises directions) the full vector is the transverse part (projection ``transverse``).
    Non-magnetic sites get zeros.
    """
    fields = block.arrays["fields"]
    spins = block.arrays["spins"]
    norms = np.linalg.norm(spins, axis=-1, keepdims=True)
    unit = np.divide(spins, norms, out=np.zeros_like(spins), where=norms > 0)
    perp = fields - np.einsum("fnk,fnk->fn", fields, unit)[..., None] * unit
    par = block.arrays["field_parallel"]
    if np.all(np.isfinite(par)):
        return perp + np.where(norms > 0, par[..., None], 0.0) * unit, perp, "full"
    return perp.copy(), perp, "transverse"
