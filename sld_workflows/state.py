"""The dynamical state of a spin-lattice system.

``SLDState`` holds arrays (positions, cell, velocities, unit spins, moment sizes) rather than a live
pymatgen ``Structure``: building a ``Structure`` of 2000 sites costs milliseconds, more than a
model-engine step, so the structure is a view (:attr:`SLDState.structure`) made on demand.
States are immutable in spirit: integrators return new states via :meth:`SLDState.replace`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from monty.json import MSONable
from pymatgen.core import Element, Lattice, Structure

#: Spins further than this from unit length are normalised on construction; SIB keeps |s| = 1 to
#: round-off (~1e-15), far inside it.
UNIT_NORM_TOL = 1e-12


def _array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.array(value, dtype=float)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class SLDState(MSONable):
    """Positions (Å, Cartesian, unwrapped), cell rows (Å), velocities (Å/fs), unit spins and
    moment sizes (μB; 0 marks a non-magnetic site, whose spin is stored as the zero vector).

    Spins given with non-unit but non-zero length on magnetic sites are normalised; a zero-length
    spin on a magnetic site is an error. The one exception is the SIB midpoint state handed to an
    engine (``unit_spins=False``): SIB evaluates the field at the un-normalised s̄ = (sₙ + s̃)/2.
    """

    species: tuple[str, ...]
    positions: np.ndarray
    cell: np.ndarray
    velocities: np.ndarray
    spins: np.ndarray
    moments: np.ndarray
    time_fs: float = 0.0
    step: int = 0
    pbc: tuple[bool, bool, bool] = (True, True, True)
    unit_spins: bool = True

    def __post_init__(self) -> None:
        species = tuple(str(s) for s in self.species)
        n = len(species)
        if n == 0:
            raise ValueError("a state needs at least one site")
        _masses(species)  # validates the element symbols (once per species tuple: cached)
        positions = _array("positions", self.positions, (n, 3))
        cell = _array("cell", self.cell, (3, 3))
        if abs(np.linalg.det(cell)) < 1e-8:
            raise ValueError("cell is singular (zero volume)")
        velocities = _array("velocities", self.velocities, (n, 3))
        moments = _array("moments", self.moments, (n,))
        if np.any(moments < 0):
            raise ValueError("moments must be >= 0 μB (0 marks a non-magnetic site)")
        spins = _array("spins", self.spins, (n, 3))
        magnetic = moments > 0
        norms = np.linalg.norm(spins, axis=1)
        zero = magnetic & (norms < 1e-12)
        if np.any(zero):
            raise ValueError(
                f"spins: zero-length spin on magnetic site(s) {np.flatnonzero(zero)[:10].tolist()}"
            )
        if self.unit_spins:
            # Only spins measurably off the unit sphere are rescaled: renormalising a unit vector
            # can flip its last bit, and a resumed trajectory must continue bit for bit.
            off = magnetic & (np.abs(norms - 1.0) > UNIT_NORM_TOL)
            if np.any(off):
                spins = spins.copy()
                spins[off] /= norms[off, None]
            spins = np.where(magnetic[:, None], spins, 0.0)
        else:
            spins = np.where(magnetic[:, None], spins, 0.0)
        if not np.isfinite(self.time_fs):
            raise ValueError("time_fs must be finite")
        if int(self.step) != self.step or self.step < 0:
            raise ValueError(f"step must be a non-negative integer, got {self.step!r}")
        for name, value in (
            ("species", species),
            ("positions", positions),
            ("cell", cell),
            ("velocities", velocities),
            ("spins", spins),
            ("moments", moments),
            ("time_fs", float(self.time_fs)),
            ("step", int(self.step)),
            ("pbc", tuple(bool(p) for p in self.pbc)),
        ):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_structure(
        cls,
        structure: Structure,
        spins: np.ndarray | Sequence | None = None,
        moments: np.ndarray | Sequence | dict[str, float] | None = None,
        velocities: np.ndarray | None = None,
        time_fs: float = 0.0,
        step: int = 0,
    ) -> SLDState:
        """Build a state from a pymatgen ``Structure``.

        ``moments`` may be an array (μB per site), a ``{species: μB}`` dict (species not named are
        non-magnetic), or ``None`` to read the ``magmom`` site property (vector or scalar).
        ``spins`` defaults to the direction of vector ``magmom`` values, else +z.
        """
        n = len(structure)
        species = tuple(site.specie.symbol for site in structure)
        magmom = structure.site_properties.get("magmom")
        if moments is None:
            if magmom is None:
                raise ValueError("moments: give moments or set the 'magmom' site property")
            moments = [float(np.linalg.norm(np.atleast_1d(np.asarray(m, dtype=float)))) for m in magmom]
        elif isinstance(moments, dict):
            unknown = set(moments) - set(species)
            if unknown:
                raise ValueError(f"moments: species {sorted(unknown)} not in the structure")
            moments = [float(moments.get(s, 0.0)) for s in species]
        moments = np.asarray(moments, dtype=float)
        if spins is None:
            spins = np.tile([0.0, 0.0, 1.0], (n, 1))
            if magmom is not None:
                for i, m in enumerate(magmom):
                    m = np.atleast_1d(np.asarray(m, dtype=float))
                    if m.size == 3 and np.linalg.norm(m) > 0:
                        spins[i] = m
                    elif m.size == 1 and m[0] < 0:
                        spins[i] = [0.0, 0.0, -1.0]
        spins = np.where((moments > 0)[:, None], np.asarray(spins, dtype=float), 0.0)
        return cls(
            species=species,
            positions=structure.cart_coords,
            cell=structure.lattice.matrix,
            velocities=np.zeros((n, 3)) if velocities is None else velocities,
            spins=spins,
            moments=moments,
            time_fs=time_fs,
            step=step,
            pbc=tuple(structure.lattice.pbc),
        )

    def replace(self, **changes: Any) -> SLDState:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived views
    @property
    def n_sites(self) -> int:
        return len(self.species)

    @property
    def magnetic(self) -> np.ndarray:
        """Boolean mask of magnetic sites (moment > 0)."""
        return self.moments > 0

    @property
    def masses_amu(self) -> np.ndarray:
        return _masses(self.species)

    @property
    def volume_a3(self) -> float:
        return float(abs(np.linalg.det(self.cell)))

    @property
    def structure(self) -> Structure:
        """pymatgen view with vector ``magmom`` (μB) as a site property."""
        lattice = Lattice(self.cell, pbc=self.pbc)
        return Structure(
            lattice,
            list(self.species),
            self.positions,
            coords_are_cartesian=True,
            site_properties={"magmom": (self.spins * self.moments[:, None]).tolist()},
        )

    # ------------------------------------------------------------------ serialisation
    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict. Floats survive JSON exactly (Python's repr round-trips)."""
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "species": list(self.species),
            "positions": self.positions.tolist(),
            "cell": self.cell.tolist(),
            "velocities": self.velocities.tolist(),
            "spins": self.spins.tolist(),
            "moments": self.moments.tolist(),
            "time_fs": self.time_fs,
            "step": self.step,
            "pbc": list(self.pbc),
            "unit_spins": self.unit_spins,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SLDState:
        missing = {"species", "positions", "cell", "velocities", "spins", "moments"} - set(d)
        if missing:
            raise ValueError(f"SLDState dict is missing keys {sorted(missing)}")
        return cls(
            species=tuple(d["species"]),
            positions=np.asarray(d["positions"], dtype=float),
            cell=np.asarray(d["cell"], dtype=float),
            velocities=np.asarray(d["velocities"], dtype=float),
            spins=np.asarray(d["spins"], dtype=float),
            moments=np.asarray(d["moments"], dtype=float),
            time_fs=float(d.get("time_fs", 0.0)),
            step=int(d.get("step", 0)),
            pbc=tuple(d.get("pbc", (True, True, True))),
            unit_spins=bool(d.get("unit_spins", True)),
        )

    def same_as(self, other: SLDState) -> bool:
        """Bit-for-bit equality of every field."""
        return (
            self.species == other.species
            and self.pbc == other.pbc
            and self.step == other.step
            and self.time_fs == other.time_fs
            and self.unit_spins == other.unit_spins
            and all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in ("positions", "cell", "velocities", "spins", "moments")
            )
        )


_MASS_CACHE: dict[tuple[str, ...], np.ndarray] = {}


def _masses(species: tuple[str, ...]) -> np.ndarray:
    masses = _MASS_CACHE.get(species)
    if masses is None:
        table = {}
        for s in set(species):
            try:
                table[s] = float(Element(s).atomic_mass)
            except ValueError as exc:
                raise ValueError(f"species: unknown element symbol {s!r}") from exc
        masses = np.array([table[s] for s in species])
        masses.setflags(write=False)
        if len(_MASS_CACHE) > 64:
            _MASS_CACHE.clear()
        _MASS_CACHE[species] = masses
    return masses
