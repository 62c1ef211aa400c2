"""Training sets of the three protocols of the paper's Fig. 3, split by initial structure.

All sets take whole initial structures in a seeded random order (frames of one structure are never split
between training and validation), then truncate the last structure to hit the requested count:

- :func:`fixed_count` — ``n`` frames of one arm;
- :func:`fixed_budget` — ``budget`` reference-point units: ``budget`` reference frames, or
  ``round(budget·ratio)`` SLD snapshots (``ratio`` = SLD snapshots per reference point, ≈ 2 in the paper);
- :func:`strided` — the fixed-budget SLD set keeping every ``stride``-th snapshot of each segment (stride =
  ratio rounded), so that it has about as many frames as the reference set of the same budget.
"""

from __future__ import annotations

import numpy as np

from sld_workflows.mlbench import BenchmarkError
from sld_workflows.mlbench.frames import FrameSet


def structure_order(fs: FrameSet, seed: int) -> np.ndarray:
    """The arm's initial-structure ids in a seeded random order."""
    ids = np.unique(fs.structure)
    return np.random.default_rng([seed, 17]).permutation(ids)


def split_validation(fs: FrameSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool indices, validation indices): the last ``fraction`` of the structures (≥ 1 if fraction > 0)."""
    order = structure_order(fs, seed)
    n_val = int(round(fraction * len(order))) if fraction > 0 else 0
    n_val = max(n_val, 1) if fraction > 0 and len(order) > 1 else n_val
    val_ids = order[len(order) - n_val:] if n_val else order[:0]
    val = np.flatnonzero(np.isin(fs.structure, val_ids))
    pool = np.flatnonzero(~np.isin(fs.structure, val_ids))
    return pool, val


def take_frames(fs: FrameSet, pool: np.ndarray, n: int, seed: int, what: str) -> np.ndarray:
    """``n`` indices from ``pool``, whole structures in seeded order, each structure in step order."""
    if n < 1:
        raise BenchmarkError(f"{what}: needs at least 1 frame, got {n}")
    if n > len(pool):
        raise BenchmarkError(f"{what}: needs {n} frames, arm {fs.name!r} has {len(pool)} available for training")
    chosen: list[int] = []
    for sid in structure_order(fs, seed):
        idx = pool[fs.structure[pool] == sid]
        chosen.extend(idx[np.argsort(fs.step[idx], kind="stable")].tolist())
        if len(chosen) >= n:
            break
    return np.array(chosen[:n])


def fixed_count(fs: FrameSet, pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    return take_frames(fs, pool, n, seed, f"fixed count {n}")


def fixed_budget(fs: FrameSet, pool: np.ndarray, budget: float, frames_per_unit: float, seed: int) -> np.ndarray:
    """Frames bought by ``budget`` reference-point units at ``frames_per_unit`` frames per unit."""
    n = int(round(budget * frames_per_unit))
    if n > len(pool):
        raise BenchmarkError(
            f"budget {budget:g} reference units needs {n} frames of arm {fs.name!r}, it has {len(pool)} for training")
    return take_frames(fs, pool, n, seed, f"budget {budget:g}")


def strided(fs: FrameSet, index: np.ndarray, stride: int) -> np.ndarray:
    """Every ``stride``-th snapshot of each segment in ``index`` (the first one kept)."""
    if stride < 1:
        raise BenchmarkError(f"stride must be >= 1, got {stride}")
    keep = []
    for sid in dict.fromkeys(fs.structure[index].tolist()):
        idx = index[fs.structure[index] == sid]
        keep.extend(idx[np.argsort(fs.step[idx], kind="stable")][::stride].tolist())
    return np.array(keep, dtype=int)


def measured_cost_ratio(sld: FrameSet, reference: FrameSet) -> float:
    """SLD snapshots per reference point of equal cost, from the frames' ``cost_s`` records."""
    c_sld, c_ref = np.nanmean(sld.cost_s), np.nanmean(reference.cost_s)
    if not (np.isfinite(c_sld) and np.isfinite(c_ref)) or c_sld <= 0:
        raise BenchmarkError("the campaign's frames have no cost records (cost_s); give the cost ratio instead")
    return float(c_ref / c_sld)
