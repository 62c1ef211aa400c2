"""The engine protocol and the result of one evaluation (bottom layer: dynamics uses it, engines fulfil it)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Protocol, runtime_checkable

import numpy as np
from monty.json import MSONable

from sld_workflows.state import SLDState
from sld_workflows.vectors import unit_rows


class Property(enum.StrEnum):
    """What an engine can compute, declared per engine class as ``implemented_properties`` (as ASE
    calculators declare theirs), so that callers check a capability instead of guessing it from a type.

    ``forces`` and ``fields`` are arrays every :class:`Evaluation` carries: an engine that does not
    declare them does not depend on positions (resp. spins), and returns zeros for them.
    ``field_parallel`` and ``stress`` are optional results: an engine that does not declare them
    returns ``None`` for them.
    """

    ENERGY = "energy"
    FORCES = "forces"
    FIELDS = "fields"
    FIELD_PARALLEL = "field_parallel"
    STRESS = "stress"


#: everything an engine can declare (the model engine computes all of it)
ALL_PROPERTIES: frozenset[Property] = frozenset(Property)


def lacking(engine: Any, prop: Property) -> list[str]:
    """Names of the engines (the parts of a composite, or the engine itself) that do not compute
    ``prop``; empty if ``engine`` declares it. For error messages such as "npt needs stress"."""
    if prop in implemented_properties(engine):
        return []
    parts = getattr(engine, "engines", None) or (engine,)
    return [type(p).__name__ for p in parts if prop not in implemented_properties(p)] or [type(engine).__name__]


def implemented_properties(engine: Any) -> frozenset[Property]:
    """The declared ``implemented_properties`` of ``engine`` (empty for an engine that declares none)."""
    return frozenset(Property(p) for p in getattr(engine, "implemented_properties", ()))


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation(MSONable):
    """What an engine returns for one state.

    - ``energy_ev``: potential energy (eV); for constrained DFT the penalty is already removed.
    - ``forces_ev_per_a``: (N, 3) forces, −∂E/∂r.
    - ``fields_ev_per_mub``: (N, 3) effective fields B_i = −(1/μ_i)∂E/∂s_i, only the part
      perpendicular to s_i (the parallel part does no work on a unit spin); zero on non-magnetic sites.
      μ_i is the state's moment size, the one the LLG uses.
    - ``stress_ev_per_a3``: (3, 3) stress σ = (1/V)∂E/∂ε (ASE's sign: positive = tensile, the cell
      wants to shrink); ``None`` if the engine has none.
    - ``moments_mub``: (N,) moment sizes the engine found (e.g. VASP's M_int), or ``None``.
    - ``field_parallel_ev_per_mub``: (N,) component of −(1/μ)∂E/∂s along s, if the engine knows it
      (model engines do, constrained DFT does not); used only by the spin-temperature estimator.
    - ``info``: small JSON-able provenance (SCF iterations, wall time, corrections, ...).
    """

    energy_ev: float
    forces_ev_per_a: np.ndarray
    fields_ev_per_mub: np.ndarray
    stress_ev_per_a3: np.ndarray | None = None
    moments_mub: np.ndarray | None = None
    field_parallel_ev_per_mub: np.ndarray | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        forces = np.asarray(self.forces_ev_per_a, dtype=float)
        fields = np.asarray(self.fields_ev_per_mub, dtype=float)
        if forces.ndim != 2 or forces.shape[1] != 3:
            raise ValueError(f"forces_ev_per_a must have shape (N, 3), got {forces.shape}")
        if fields.shape != forces.shape:
            raise ValueError(f"fields_ev_per_mub must have shape {forces.shape}, got {fields.shape}")
        if not np.isfinite(self.energy_ev):
            raise ValueError("energy_ev is not finite")
        if not (np.all(np.isfinite(forces)) and np.all(np.isfinite(fields))):
            raise ValueError("forces or fields contain NaN or infinite values")
        object.__setattr__(self, "energy_ev", float(self.energy_ev))
        object.__setattr__(self, "forces_ev_per_a", forces)
        object.__setattr__(self, "fields_ev_per_mub", fields)
        if self.stress_ev_per_a3 is not None:
            stress = np.asarray(self.stress_ev_per_a3, dtype=float)
            if stress.shape != (3, 3):
                raise ValueError(f"stress_ev_per_a3 must have shape (3, 3), got {stress.shape}")
            object.__setattr__(self, "stress_ev_per_a3", stress)
        for name in ("moments_mub", "field_parallel_ev_per_mub"):
            value = getattr(self, name)
            if value is not None:
                arr = np.asarray(value, dtype=float)
                if arr.shape != forces.shape[:1]:
                    raise ValueError(f"{name} must have shape {forces.shape[:1]}, got {arr.shape}")
                object.__setattr__(self, name, arr)

    @property
    def n_sites(self) -> int:
        return self.forces_ev_per_a.shape[0]

    def check_matches(self, state: SLDState) -> None:
        """Raise if this evaluation cannot belong to ``state`` (wrong number of sites)."""
        if self.n_sites != state.n_sites:
            raise ValueError(
                f"engine returned {self.n_sites} sites for a state of {state.n_sites} sites"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "energy_ev": self.energy_ev,
            "forces_ev_per_a": self.forces_ev_per_a.tolist(),
            "fields_ev_per_mub": self.fields_ev_per_mub.tolist(),
            "stress_ev_per_a3": None if self.stress_ev_per_a3 is None else self.stress_ev_per_a3.tolist(),
            "moments_mub": None if self.moments_mub is None else self.moments_mub.tolist(),
            "field_parallel_ev_per_mub": None
            if self.field_parallel_ev_per_mub is None
            else self.field_parallel_ev_per_mub.tolist(),
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        return cls(
            energy_ev=d["energy_ev"],
            forces_ev_per_a=np.asarray(d["forces_ev_per_a"], dtype=float),
            fields_ev_per_mub=np.asarray(d["fields_ev_per_mub"], dtype=float),
            stress_ev_per_a3=None if d.get("stress_ev_per_a3") is None else np.asarray(d["stress_ev_per_a3"]),
            moments_mub=None if d.get("moments_mub") is None else np.asarray(d["moments_mub"]),
            field_parallel_ev_per_mub=None
            if d.get("field_parallel_ev_per_mub") is None
            else np.asarray(d["field_parallel_ev_per_mub"]),
            info=dict(d.get("info") or {}),
        )


@runtime_checkable
class Engine(Protocol):
    """Anything that turns a state into an :class:`Evaluation` (like an ASE calculator).

    Engines must be deterministic functions of the state, and should expose ``as_dict()`` (MSONable)
    so a workflow can rebuild them on another machine. They declare what they compute as
    ``implemented_properties`` (a class-level frozenset of :class:`Property`; not a protocol member,
    so that ``isinstance(x, Engine)`` still accepts a bare ``evaluate``).
    """

    def evaluate(self, state: SLDState) -> Evaluation: ...


def split_field(fields: np.ndarray, spins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B − (B·ŝ)ŝ, B·ŝ) per site (rows), ŝ the spin's direction: spins may be non-unit, as at the
    SIB midpoint. Where the spin is the zero vector the field is returned unchanged, parallel 0."""
    unit = unit_rows(spins)
    parallel = np.einsum("ij,ij->i", fields, unit)
    return fields - parallel[:, None] * unit, parallel


def perpendicular_part(fields: np.ndarray, spins: np.ndarray) -> np.ndarray:
    """The part of each field perpendicular to its spin's direction (see :func:`split_field`)."""
    return split_field(fields, spins)[0]
