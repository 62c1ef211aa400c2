"""The ``spins``, ``velocities``, ``dynamics`` and ``output`` sections of a run spec (``structure``:
:mod:`.structure`; ``engine``: :mod:`sld_workflows.engines.registry`): small frozen dataclasses, each
with ``from_dict`` (validates, names the bad key) and ``as_dict`` (the normalised, explicit mapping
stored with the run)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from sld_workflows import schema
from sld_workflows.dynamics import initial
from sld_workflows.dynamics.lattice import CELL_DOFS
from sld_workflows.dynamics.schedules import TemperatureSchedule
from sld_workflows.dynamics.settings import ENSEMBLES, SPIN_SCHEMES, DynamicsSettings
from sld_workflows.schema import spec_error
from sld_workflows.state import SLDState

DEFAULT_OUTPUT_EVERY = 10


# ---------------------------------------------------------------------------------------- spins
#: ``structure``: keep the structure's own spins (its magmom vectors; +z for a preset)
SPIN_INITS = ("random", "ferro", "given", "structure")


@dataclasses.dataclass(frozen=True)
class SpinsSection:
    init: str = "structure"
    direction: tuple[float, float, float] | None = None  # init: ferro
    values: tuple[tuple[float, float, float], ...] | None = None  # init: given

    @classmethod
    def from_dict(cls, raw: Any) -> SpinsSection:
        d = schema.mapping({"init": "structure"} if raw is None else raw, "spins")
        schema.check_keys(d, "spins", ("init", "direction", "values"), required=("init",))
        init = schema.string(d["init"], "spins.init", SPIN_INITS)
        if "direction" in d and init != "ferro":
            raise spec_error("spins.direction", f"only used with init: ferro (init is {init!r})")
        if "values" in d and init != "given":
            raise spec_error("spins.values", f"only used with init: given (init is {init!r})")
        if init == "ferro":
            direction = schema.vector3(d.get("direction", [0.0, 0.0, 1.0]), "spins.direction")
            if np.linalg.norm(direction) == 0:
                raise spec_error("spins.direction", "must not be the zero vector")
            return cls(init, direction=direction)
        if init == "given":
            if d.get("values") is None:
                raise spec_error("spins.values", "missing (required with init: given)")
            values = d["values"]
            if not isinstance(values, list | tuple) or not values:
                raise spec_error("spins.values", f"must be a list of [x, y, z] rows, got {schema.describe(values)}")
            return cls(init, values=tuple(schema.vector3(row, f"spins.values[{i}]") for i, row in enumerate(values)))
        return cls(init)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"init": self.init}
        if self.direction is not None:
            out["direction"] = list(self.direction)
        if self.values is not None:
            out["values"] = [list(row) for row in self.values]
        return out

    def directions(self, state: SLDState, seed: int) -> np.ndarray | None:
        """The initial spin directions of ``state``'s sites, or None to keep the structure's spins."""
        if self.init == "ferro":
            return initial.aligned_spin_directions(state.n_sites, np.asarray(self.direction))
        if self.init == "random":
            return initial.random_spin_directions(state.n_sites, seed)
        if self.init == "given":
            try:
                return initial.given_spin_directions(np.asarray(self.values, dtype=float), state.magnetic)
            except ValueError as exc:
                raise spec_error("spins.values", str(exc)) from exc
        return None

    def apply(self, state: SLDState, seed: int) -> SLDState:
        directions = self.directions(state, seed)
        if directions is None:
            return state
        return state.replace(spins=initial.mask_nonmagnetic(directions, state.magnetic))


# ----------------------------------------------------------------------------------- velocities
@dataclasses.dataclass(frozen=True)
class VelocitiesSection:
    """Maxwell–Boltzmann velocities at ``temperature_k`` (absent section: the structure's, zero)."""

    temperature_k: float

    @classmethod
    def from_dict(cls, raw: Any) -> VelocitiesSection | None:
        if raw is None:
            return None
        d = schema.mapping(raw, "velocities")
        schema.check_keys(d, "velocities", ("temperature_k",), required=("temperature_k",))
        return cls(schema.number(d["temperature_k"], "velocities.temperature_k", minimum=0.0))

    def as_dict(self) -> dict[str, Any]:
        return {"temperature_k": self.temperature_k}

    def apply(self, state: SLDState, seed: int) -> SLDState:
        return state.replace(velocities=initial.maxwell_boltzmann_velocities_a_per_fs(
            state.masses_amu, self.temperature_k, seed))


# ------------------------------------------------------------------------------------- dynamics
#: bounds of the numeric dynamics keys: (minimum, strictly greater?); None = any finite number
_DYNAMICS_BOUNDS = {
    "dt_fs": (0.0, True),
    "alpha": (0.0, False),
    "friction_per_fs": (0.0, False),
    "g_factor": (0.0, True),
    "pressure_gpa": None,
    "tau_p_fs": (0.0, True),
    "compressibility_per_gpa": (0.0, True),
}
_DYNAMICS_CHOICES = {"ensemble": ENSEMBLES, "spin_scheme": SPIN_SCHEMES, "cell_dof": CELL_DOFS}


@dataclasses.dataclass(frozen=True)
class DynamicsSection:
    """``steps`` and every :class:`DynamicsSettings` field, explicit (stored in the order of
    :meth:`keys`: ``steps``, then ``DynamicsSettings.field_names()``). ``temperature`` is kept as
    given: a number or a schedule mapping (frozen); ensemble and spin scheme as plain strings."""

    steps: int
    dt_fs: float
    alpha: float
    temperature: Any
    ensemble: str
    friction_per_fs: float
    spin_scheme: str
    seed: int
    g_factor: float
    pressure_gpa: float
    tau_p_fs: float
    compressibility_per_gpa: float
    cell_dof: str

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return ("steps", *DynamicsSettings.field_names())

    @classmethod
    def from_dict(cls, raw: Any) -> DynamicsSection:
        d = schema.mapping(raw, "dynamics")
        schema.check_keys(d, "dynamics", cls.keys(), required=("dt_fs", "steps"))
        out: dict[str, Any] = {}
        for key, bound in _DYNAMICS_BOUNDS.items():
            if key in d:
                minimum, strict = bound if bound is not None else (None, False)
                out[key] = schema.number(d[key], f"dynamics.{key}", minimum, strict)
        out["steps"] = schema.integer(d["steps"], "dynamics.steps", minimum=0)
        if "seed" in d:
            out["seed"] = schema.integer(d["seed"], "dynamics.seed", minimum=0)
            if out["seed"] >= 2**64:
                raise spec_error("dynamics.seed", f"must be < 2**64, got {out['seed']}")
        for key, choices in _DYNAMICS_CHOICES.items():
            if key in d:
                out[key] = schema.string(d[key], f"dynamics.{key}", tuple(choices))
        if "temperature" in d:
            try:
                TemperatureSchedule.from_spec(d["temperature"])
            except (ValueError, TypeError) as exc:
                raise spec_error("dynamics.temperature", str(exc)) from exc
            out["temperature"] = schema.freeze(d["temperature"], "dynamics")
        # the remaining keys get DynamicsSettings' defaults, so that the stored spec is explicit
        defaults = _settings(out)
        for key in cls.keys():
            if key not in out and key != "temperature":
                out[key] = schema.freeze(getattr(defaults, key), f"dynamics.{key}")
        out.setdefault("temperature", 0.0)
        return cls(**out)

    def as_dict(self) -> dict[str, Any]:
        return {k: schema.thaw(getattr(self, k)) for k in self.keys()}

    @property
    def settings(self) -> DynamicsSettings:
        return _settings({k: schema.thaw(getattr(self, k)) for k in self.keys()})


def _settings(dynamics: Mapping[str, Any]) -> DynamicsSettings:
    kwargs = {k: v for k, v in dynamics.items() if k != "steps"}
    if "temperature" in kwargs:
        kwargs["temperature"] = TemperatureSchedule.from_spec(schema.thaw(kwargs["temperature"]))
    try:
        return DynamicsSettings(**kwargs)
    except (ValueError, TypeError) as exc:
        raise spec_error("dynamics", str(exc)) from exc


# --------------------------------------------------------------------------------------- output
@dataclasses.dataclass(frozen=True)
class OutputSection:
    every: int = DEFAULT_OUTPUT_EVERY

    @classmethod
    def from_dict(cls, raw: Any) -> OutputSection:
        d = schema.mapping({} if raw is None else raw, "output")
        schema.check_keys(d, "output", ("every",))
        return cls(schema.integer(d.get("every", DEFAULT_OUTPUT_EVERY), "output.every", minimum=1))

    def as_dict(self) -> dict[str, Any]:
        return {"every": self.every}
