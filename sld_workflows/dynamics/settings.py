"""Explicit, serialisable settings of one trajectory's dynamics."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from monty.json import MSONable

from sld_workflows.dynamics.lattice import CELL_DOFS
from sld_workflows.dynamics.rng import check_seed
from sld_workflows.dynamics.schedules import TemperatureSchedule
from sld_workflows.units import G_ELECTRON, GPA_TO_EV_PER_A3

ENSEMBLES = ("nve", "nvt", "npt", "spin-only")
#: "sib": full SIB, field re-evaluated at the midpoint (2 engine calls per step).
#: "sib-fixed-field": one engine call per step; the field of sₙ is kept over the step while the
#: damping and noise terms are still evaluated at the midpoint s̄ (the DFT-friendly choice).
SPIN_SCHEMES = ("sib", "sib-fixed-field")


@dataclasses.dataclass(frozen=True)
class DynamicsSettings(MSONable):
    """How a trajectory is integrated. Every field is explicit and recorded with the trajectory.

    - ``dt_fs``: time step (fs), > 0.
    - ``alpha``: Gilbert damping (≥ 0); spins feel noise when alpha > 0 and T > 0.
    - ``temperature``: bath temperature schedule (K) for spins and (nvt/npt) lattice.
    - ``ensemble``: ``nve`` (velocity Verlet), ``nvt`` (BAOAB Langevin), ``npt`` (BAOAB + stochastic
      cell rescaling), ``spin-only`` (lattice frozen).
    - ``friction_per_fs``: lattice Langevin friction γ (1/fs).
    - ``spin_scheme``: see :data:`SPIN_SCHEMES`.
    - ``seed``: trajectory seed; the noise of step n is a function of (seed, n) only.
    - ``g_factor``: γ = g/ħ.
    - ``pressure_gpa``, ``tau_p_fs``, ``compressibility_per_gpa``, ``cell_dof``: barostat (npt).
    """

    dt_fs: float
    alpha: float = 0.1
    temperature: TemperatureSchedule = dataclasses.field(default_factory=lambda: TemperatureSchedule.constant(0.0))
    ensemble: str = "nvt"
    friction_per_fs: float = 0.01
    spin_scheme: str = "sib"
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
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {self.ensemble!r}")
        if self.spin_scheme not in SPIN_SCHEMES:
            raise ValueError(f"spin_scheme must be one of {SPIN_SCHEMES}, got {self.spin_scheme!r}")
        if self.cell_dof not in CELL_DOFS:
            raise ValueError(f"cell_dof must be one of {CELL_DOFS}, got {self.cell_dof!r}")
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def evaluations_per_step(self) -> int:
        return 2 if self.spin_scheme == "sib" else 1

    @property
    def pressure_ev_per_a3(self) -> float:
        return self.pressure_gpa * GPA_TO_EV_PER_A3

    @property
    def compressibility_a3_per_ev(self) -> float:
        return self.compressibility_per_gpa / GPA_TO_EV_PER_A3

    def replace(self, **changes: Any) -> DynamicsSettings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["temperature"] = self.temperature.as_dict()
        return {"@module": type(self).__module__, "@class": type(self).__name__, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DynamicsSettings:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields - {"@module", "@class", "@version"}
        if unknown:
            raise ValueError(f"dynamics: unknown keys {sorted(unknown)}")
        kwargs = {k: v for k, v in d.items() if k in fields}
        if "temperature" in kwargs:
            kwargs["temperature"] = TemperatureSchedule.from_spec(kwargs["temperature"])
        return cls(**kwargs)
