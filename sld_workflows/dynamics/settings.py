"""Explicit, serialisable settings of one trajectory's dynamics."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np
from monty.json import MSONable

from sld_workflows.dynamics.lattice import CELL_DOFS
from sld_workflows.dynamics.rng import check_seed
from sld_workflows.dynamics.schedules import TemperatureSchedule
from sld_workflows.units import G_ELECTRON, GPA_TO_EV_PER_A3


class Ensemble(enum.StrEnum):
    """How the lattice moves. StrEnum: members are the plain strings stored in specs and documents."""

    NVE = "nve"  #: velocity Verlet
    NVT = "nvt"  #: BAOAB Langevin
    NPT = "npt"  #: BAOAB + stochastic cell rescaling
    SPIN_ONLY = "spin-only"  #: lattice frozen


class SpinScheme(enum.StrEnum):
    """How the spins move (both SIB, Mentink et al. 2010)."""

    #: full SIB, field re-evaluated at the midpoint (2 engine calls per step)
    SIB = "sib"
    #: one engine call per step; the field of sₙ is kept over the step while the damping and noise
    #: terms are still evaluated at the midpoint s̄ (the DFT-friendly choice)
    SIB_FIXED_FIELD = "sib-fixed-field"


#: The accepted spellings, as plain strings (for messages and spec validation).
ENSEMBLES = tuple(e.value for e in Ensemble)
SPIN_SCHEMES = tuple(s.value for s in SpinScheme)


@dataclasses.dataclass(frozen=True)
class DynamicsSettings(MSONable):
    """How a trajectory is integrated. Every field is explicit and recorded with the trajectory.

    - ``dt_fs``: time step (fs), > 0.
    - ``alpha``: Gilbert damping (≥ 0); spins feel noise when alpha > 0 and T > 0.
    - ``temperature``: bath temperature schedule (K) for spins and (nvt/npt) lattice.
    - ``ensemble``: ``nve`` (velocity Verlet), ``nvt`` (BAOAB Langevin), ``npt`` (BAOAB + stochastic
      cell rescaling), ``spin-only`` (lattice frozen).
    - ``friction_per_fs``: lattice Langevin friction γ (1/fs).
    - ``spin_scheme``: see :class:`SpinScheme`.
    - ``seed``: trajectory seed; the noise of step n is a function of (seed, n) only.
    - ``g_factor``: γ = g/ħ.
    - ``pressure_gpa``, ``tau_p_fs``, ``compressibility_per_gpa``, ``cell_dof``: barostat (npt).
    """

    dt_fs: float
    alpha: float = 0.1
    temperature: TemperatureSchedule = dataclasses.field(default_factory=lambda: TemperatureSchedule.constant(0.0))
    ensemble: Ensemble = Ensemble.NVT
    friction_per_fs: float = 0.01
    spin_scheme: SpinScheme = SpinScheme.SIB
    seed: int = 0
    g_factor: float = G_ELECTRON
    pressure_gpa: float = 0.0
    tau_p_fs: float = 200.0
    compressibility_per_gpa: float = 0.01
    cell_dof: str = "orthorhombic"

    def __post_init__(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
                raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
            object.__setattr__(self, name, float(value))

        positive("dt_fs")
        positive("alpha", allow_zero=True)
        positive("friction_per_fs", allow_zero=True)
        positive("g_factor")
        positive("tau_p_fs")
        positive("compressibility_per_gpa")
        if not isinstance(self.pressure_gpa, int | float) or not np.isfinite(self.pressure_gpa):
            raise ValueError(f"pressure_gpa must be a finite number, got {self.pressure_gpa!r}")
        object.__setattr__(self, "pressure_gpa", float(self.pressure_gpa))
        if not isinstance(self.temperature, TemperatureSchedule):
            object.__setattr__(self, "temperature", TemperatureSchedule.from_spec(self.temperature))
        for name, kind, allowed in (("ensemble", Ensemble, ENSEMBLES), ("spin_scheme", SpinScheme, SPIN_SCHEMES)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
            object.__setattr__(self, name, kind(value))
        if self.cell_dof not in CELL_DOFS:
            raise ValueError(f"cell_dof must be one of {CELL_DOFS}, got {self.cell_dof!r}")
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def evaluations_per_step(self) -> int:
        return 2 if self.spin_scheme == SpinScheme.SIB else 1

    @property
    def pressure_ev_per_a3(self) -> float:
        return self.pressure_gpa * GPA_TO_EV_PER_A3

    @property
    def compressibility_a3_per_ev(self) -> float:
        return self.compressibility_per_gpa / GPA_TO_EV_PER_A3

    def replace(self, **changes: Any) -> DynamicsSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings' keys, in order (specs list ``dynamics`` keys from here, never by hand)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.field_names()}
        d["temperature"] = self.temperature.as_dict()
        d["ensemble"], d["spin_scheme"] = self.ensemble.value, self.spin_scheme.value  # plain str in documents
        return {"@module": type(self).__module__, "@class": type(self).__name__, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DynamicsSettings:
        fields = set(cls.field_names())
        unknown = set(d) - fields - {"@module", "@class", "@version"}
        if unknown:
            raise ValueError(f"dynamics: unknown keys {sorted(unknown)}")
        kwargs = {k: v for k, v in d.items() if k in fields}
        if "temperature" in kwargs:
            kwargs["temperature"] = TemperatureSchedule.from_spec(kwargs["temperature"])
        return cls(**kwargs)
