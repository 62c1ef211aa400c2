"""The benchmark's one adapter to its data source, and the arrays of one arm.

:func:`load_arm_frames` reads an export directory (``<arm>.extxyz`` + ``manifest.json``, MACE-style keys:
``REF_energy`` eV, ``REF_forces`` eV/Å, ``REF_magmom`` μB vectors, ``REF_magforces`` −∂E/∂M eV/μB). It is
the only place that knows where frames come from: pointing it at ``sld export`` output or a campaign store
changes nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.mlbench import BenchmarkError

MANIFEST_NAME = "manifest.json"


def load_manifest(source: str | Path) -> dict[str, Any]:
    path = Path(source) / MANIFEST_NAME
    if not path.is_file():
        raise BenchmarkError(f"{source}: no {MANIFEST_NAME}; give an export directory (sld export) of a campaign")
    return json.loads(path.read_text())


def load_arm_frames(source: str | Path, arm: str) -> list:
    """The frames (``ase.Atoms``) of ``arm`` (``sld``, ``reference`` or ``test``) of the export at ``source``."""
    from ase.io import read

    manifest = load_manifest(source)
    entry = manifest.get("arms", {}).get(arm)
    path = Path(source) / (entry["file"] if entry else f"{arm}.extxyz")
    if entry is None or not path.is_file() or not entry.get("frames"):
        what = "no test trajectory" if arm == "test" else f"no '{arm}' arm"
        raise BenchmarkError(f"campaign {manifest.get('campaign', source)!r} has {what} ({path.name} missing or empty)")
    return read(path, index=":", format="extxyz")


def export_campaign(db: Any, campaign: str, out: str | Path, arms: tuple[str, ...] = ("sld", "reference", "test"),
                    argv: list[str] | None = None) -> Path:
    """Write the arms of a stored campaign as a benchmark source: one ``sld export`` (MACE keys) per arm
    under ``out/arms/<arm>``, and a ``manifest.json`` naming each arm's file and frame count (the
    split key is the campaign's ``structure_index``). An arm the campaign lacks is left out, so the
    benchmark then says which one is missing."""
    from sld_workflows.datasets.export import export
    from sld_workflows.datasets.selection import ExportError, ExportQuery

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BenchmarkError(f"{out} exists and is not an empty directory; nothing was written")
    if db["sld_campaigns"].find_one({"name": campaign}, {"_id": 1}) is None:
        raise BenchmarkError(f"no campaign named {campaign!r} in this database")
    entries: dict[str, dict[str, Any]] = {}
    for arm in arms:
        try:
            manifest = export(db, out / "arms" / arm, "mace", ExportQuery(campaign=campaign, arms=(arm,)), argv=argv)
        except ExportError:
            continue  # the arm has no frames: absent from the manifest
        (name,) = [f for f in manifest["files"] if f.endswith(".extxyz")]
        entries[arm] = {"file": f"arms/{arm}/{name}", "frames": int(manifest["total_frames"])}
    (out / MANIFEST_NAME).write_text(json.dumps({"campaign": campaign, "source": "sld export (mace keys)",
                                                 "arms": entries}, indent=1) + "\n")
    return out


@dataclasses.dataclass
class FrameSet:
    """One arm as arrays (F frames of the same N atoms). Units: eV, Å, μB, eV/μB."""

    numbers: np.ndarray  # (N,)
    positions: np.ndarray  # (F, N, 3)
    cells: np.ndarray  # (F, 3, 3)
    energy_ev: np.ndarray  # (F,)
    forces_ev_per_a: np.ndarray  # (F, N, 3)
    magmom_mub: np.ndarray  # (F, N, 3)
    magforces_ev_per_mub: np.ndarray  # (F, N, 3)
    structure: np.ndarray  # (F,) initial-structure id (the split key)
    trajectory: np.ndarray  # (F,) str
    step: np.ndarray  # (F,)
    cost_s: np.ndarray  # (F,) NaN where no cost record
    index: np.ndarray = None  # (F,) position of each frame in its arm (the key of cached per-frame work)
    name: str = ""  # the arm
    #: per-frame results trainers may reuse (keyed by (trainer key, name, index)); shared by subsets
    cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.index is None:
            self.index = np.arange(len(self.energy_ev))

    @classmethod
    def from_atoms(cls, frames: list, name: str = "") -> FrameSet:
        if not frames:
            raise BenchmarkError("no frames")
        numbers = frames[0].numbers
        if any(len(a) != len(numbers) or np.any(a.numbers != numbers) for a in frames):
            raise BenchmarkError("frames of one arm must have the same atoms in the same order")
        try:
            return cls(
                numbers=np.array(numbers),
                positions=np.array([a.positions for a in frames]),
                cells=np.array([a.cell[:] for a in frames]),
                energy_ev=np.array([a.info["REF_energy"] for a in frames], dtype=float),
                forces_ev_per_a=np.array([a.arrays["REF_forces"] for a in frames]),
                magmom_mub=np.array([a.arrays["REF_magmom"] for a in frames]),
                magforces_ev_per_mub=np.array([a.arrays["REF_magforces"] for a in frames]),
                structure=np.array([int(a.info.get("structure", a.info.get("structure_index", i)))
                                    for i, a in enumerate(frames)]),
                trajectory=np.array([str(a.info.get("trajectory", "")) for a in frames]),
                step=np.array([int(a.info.get("step", 0)) for a in frames]),
                cost_s=np.array([float(a.info.get("cost_s", np.nan)) for a in frames]),
                name=name,
            )
        except KeyError as exc:
            raise BenchmarkError(f"frames lack the export key {exc.args[0]!r}") from exc

    def __len__(self) -> int:
        return len(self.energy_ev)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def magnetic(self) -> np.ndarray:
        """(N,) sites with a moment (in any frame)."""
        return np.any(np.linalg.norm(self.magmom_mub, axis=2) > 0, axis=0)

    def subset(self, index: np.ndarray) -> FrameSet:
        index = np.asarray(index, dtype=int)
        return dataclasses.replace(self, **{
            f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)
            if f.name not in ("numbers", "name", "cache")})

    def cached(self, key: str, f: int, compute):
        """``compute(f)`` for frame ``f``, computed once per arm frame and trainer ``key``."""
        k = (key, self.name, int(self.index[f]))
        if k not in self.cache:
            self.cache[k] = compute(f)
        return self.cache[k]


def transverse(vectors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The part of each vector perpendicular to its direction (rows, any leading shape); zero direction: as is."""
    norm = np.linalg.norm(directions, axis=-1, keepdims=True)
    unit = np.divide(directions, norm, out=np.zeros_like(directions), where=norm > 0)
    return vectors - np.sum(vectors * unit, axis=-1, keepdims=True) * unit


def neel_order(fs: FrameSet, signs: np.ndarray | None = None) -> np.ndarray:
    """(F,) G-type Néel order |L| of each frame; ``signs`` (N,) ±1 on magnetic sites, 0 elsewhere. Without
    ``signs`` they are the two-colouring of the magnetic nearest-neighbour graph of the first frame."""
    if signs is None:
        from sld_workflows.geometry import two_colouring

        sites = np.flatnonzero(fs.magnetic)
        signs = np.zeros(fs.n_atoms)
        signs[sites] = two_colouring(fs.positions[0], fs.cells[0], sites)
    mask = signs != 0
    m = fs.magmom_mub[:, mask]
    unit = m / np.linalg.norm(m, axis=2, keepdims=True)
    return np.linalg.norm(np.einsum("fnk,n->fk", unit, signs[mask]) / mask.sum(), axis=1)
