"""Small engines with analytic answers, for validating integrators and for users' own checks.

- :class:`ZeemanEngine` — independent moments in a uniform field;
- :class:`HeisenbergEngine` — fixed bonds, E = −Σ_bonds J s_i·s_j − Σ μ s·B (lattice frozen: no forces);
- :class:`HarmonicEngine` — Einstein crystal, E = ½ k Σ |r − r₀|² (no magnetism).

Sum them with :class:`~sld_workflows.engines.composite.CompositeEngine` (re-exported here, where
stored dicts of the former ``sld_workflows.engines.analytic.CompositeEngine`` still find it).

Fields follow the package convention: the part of −(1/μ)∂E/∂s perpendicular to the spin passed in
(for the un-normalised SIB midpoint, perpendicular to its direction), with the parallel component
reported separately.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from monty.json import MSONable

from sld_workflows.engines.composite import CompositeEngine
from sld_workflows.evaluation import Evaluation, Property, split_field
from sld_workflows.state import SLDState

__all__ = ["CompositeEngine", "HarmonicEngine", "HeisenbergEngine", "ZeemanEngine"]

#: spin-only terms: positions do not enter, so forces and stress are exactly zero (declared: stress
#: is a result, zero; forces are zeros by the Evaluation contract)
_SPIN_ONLY = frozenset({Property.ENERGY, Property.FIELDS, Property.FIELD_PARALLEL, Property.STRESS})


def _masked_field(field: np.ndarray, moments: np.ndarray) -> np.ndarray:
    return np.where((moments > 0)[:, None], field, 0.0)


@dataclasses.dataclass(frozen=True)
class ZeemanEngine(MSONable):
    """Uniform external field (eV/μB) on every magnetic site."""

    implemented_properties: ClassVar[frozenset[Property]] = _SPIN_ONLY
    field_ev_per_mub: tuple[float, float, float]

    def evaluate(self, state: SLDState) -> Evaluation:
        b = np.broadcast_to(np.asarray(self.field_ev_per_mub, dtype=float), (state.n_sites, 3))
        b = _masked_field(b, state.moments)
        energy = -float(np.sum(state.moments * np.einsum("ij,ij->i", state.spins, b)))
        perp, par = split_field(b, state.spins)
        return Evaluation(energy, np.zeros((state.n_sites, 3)), perp, np.zeros((3, 3)), field_parallel_ev_per_mub=par)


@dataclasses.dataclass(frozen=True)
class HeisenbergEngine(MSONable):
    """Fixed bond list: E = −Σ_bonds J_b s_i·s_j − Σ_i μ_i s_i·B_ext (each bond once, unit spins).

    ``bonds`` is a sequence of (i, j, J_ev). Positions do not enter: forces and stress are zero, so
    use it with ``ensemble: spin-only``.
    """

    implemented_properties: ClassVar[frozenset[Property]] = _SPIN_ONLY
    bonds: tuple[tuple[int, int, float], ...]
    field_ev_per_mub: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        bonds = tuple((int(i), int(j), float(jv)) for i, j, jv in self.bonds)
        object.__setattr__(self, "bonds", bonds)
        arr = np.array(bonds, dtype=float).reshape(-1, 3)
        object.__setattr__(self, "_i", arr[:, 0].astype(int))
        object.__setattr__(self, "_j", arr[:, 1].astype(int))
        object.__setattr__(self, "_jv", arr[:, 2])

    @classmethod
    def from_cutoff(
        cls, state: SLDState, j_ev: float, cutoff_a: float, field_ev_per_mub=(0.0, 0.0, 0.0)
    ) -> HeisenbergEngine:
        """Nearest-shell bonds between magnetic sites closer than ``cutoff_a`` (pymatgen neighbour list,
        periodic images included; each bond once)."""
        centers, points, _, _ = state.structure.get_neighbor_list(cutoff_a)
        magnetic = state.magnetic
        keep = (centers < points) & magnetic[centers] & magnetic[points]
        bonds = tuple((int(i), int(j), j_ev) for i, j in zip(centers[keep], points[keep], strict=True))
        return cls(bonds, field_ev_per_mub)

    def evaluate(self, state: SLDState) -> Evaluation:
        s = state.spins
        i, j, jv = self._i, self._j, self._jv
        if i.size and max(i.max(), j.max()) >= state.n_sites:
            raise ValueError("HeisenbergEngine: a bond names a site beyond the state's sites")
        b_ext = np.asarray(self.field_ev_per_mub, dtype=float)
        mu = state.moments
        energy = -float(np.sum(jv * np.einsum("ij,ij->i", s[i], s[j]))) - float(np.sum(mu * (s @ b_ext)))
        h = np.zeros_like(s)
        np.add.at(h, i, jv[:, None] * s[j])
        np.add.at(h, j, jv[:, None] * s[i])
        safe_mu = np.where(mu > 0, mu, 1.0)
        full = _masked_field(h / safe_mu[:, None] + b_ext, mu)
        perp, par = split_field(full, s)
        return Evaluation(energy, np.zeros_like(s), perp, np.zeros((3, 3)), field_parallel_ev_per_mub=par)

    def as_dict(self) -> dict[str, Any]:
        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "bonds": [list(b) for b in self.bonds], "field_ev_per_mub": list(self.field_ev_per_mub)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeisenbergEngine:
        return cls(tuple(tuple(b) for b in d["bonds"]), tuple(d.get("field_ev_per_mub", (0.0, 0.0, 0.0))))


@dataclasses.dataclass(frozen=True)
class HarmonicEngine(MSONable):
    """Einstein crystal: every atom tied to its reference position by a spring k (eV/Å²). No stress
    (the springs tie atoms to fixed points, not to the cell) and no dependence on the spins."""

    implemented_properties: ClassVar[frozenset[Property]] = frozenset({Property.ENERGY, Property.FORCES})
    reference_positions: tuple[tuple[float, float, float], ...]
    spring_ev_per_a2: float

    def evaluate(self, state: SLDState) -> Evaluation:
        d = state.positions - np.asarray(self.reference_positions, dtype=float)
        if d.shape != state.positions.shape:
            raise ValueError("HarmonicEngine: reference positions do not match the state's sites")
        energy = 0.5 * self.spring_ev_per_a2 * float(np.sum(d * d))
        zeros = np.zeros_like(d)
        return Evaluation(energy, -self.spring_ev_per_a2 * d, zeros, None)
