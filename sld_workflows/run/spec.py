"""Run specification: one YAML file (or mapping) describing a spin-lattice dynamics run.

``load_spec(path_or_mapping)`` validates the whole specification, builds the initial state and the
engine once (so every error is found before anything is written), and returns a :class:`RunSpec`.
Errors are :class:`~sld_workflows.errors.SpecError` with a dotted key (``dynamics.dt_fs``) and a
one-line reason. The schema is documented in ``docs/run_spec.md``.

``RunSpec.as_dict()`` holds the *normalised* specification (defaults filled in, file paths made
absolute), so ``RunSpec.from_dict(spec.as_dict()).as_dict() == spec.as_dict()`` and FireWorks can
store it. Initial-state randomness uses the ``INITIAL`` stream of :mod:`sld_workflows.dynamics.rng`
keyed by the dynamics seed: counter block 0 draws random spins, block 1 draws velocities.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monty.json import MSONable

from sld_workflows.dynamics.rng import Stream, generator
from sld_workflows.dynamics.schedules import TemperatureSchedule
from sld_workflows.dynamics.settings import ENSEMBLES, SPIN_SCHEMES, DynamicsSettings, Ensemble
from sld_workflows.errors import SpecError
from sld_workflows.jsonable import jsonable
from sld_workflows.state import SLDState
from sld_workflows.units import EV_PER_A_AMU_TO_A_PER_FS2, K_B_EV_PER_K

ENGINE_KINDS = ("model", "vasp", "analytic")
#: ways to give the structure: a model preset, a file pymatgen reads, or a ``Structure.as_dict()``
STRUCTURE_SOURCES = ("preset", "file", "pymatgen")
SPIN_INITS = ("random", "ferro", "given", "structure")
DEFAULT_OUTPUT_EVERY = 10
#: Counter blocks of the INITIAL stream (the ``step`` argument of :func:`rng.generator`).
INITIAL_BLOCK_SPINS = 0
INITIAL_BLOCK_VELOCITIES = 1

_TOP_KEYS = ("name", "structure", "spins", "velocities", "engine", "dynamics", "output")
_DYNAMICS_NUMBERS = {
    # key: (minimum, strictly greater?)  None = any finite number
    "dt_fs": (0.0, True),
    "alpha": (0.0, False),
    "friction_per_fs": (0.0, False),
    "g_factor": (0.0, True),
    "pressure_gpa": None,
    "tau_p_fs": (0.0, True),
    "compressibility_per_gpa": (0.0, True),
}
_DYNAMICS_KEYS = ("steps", *DynamicsSettings.field_names())


# ---------------------------------------------------------------------------------------- helpers
def _err(key: str, reason: str) -> SpecError:
    """A SpecError whose message is a single line."""
    return SpecError(key, " ".join(str(reason).split()))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _err(key, f"must be a mapping, got {_describe(value)}")
    for k in value:
        if not isinstance(k, str):
            raise _err(key, f"keys must be strings, got {_describe(k)}")
    return dict(value)


def _check_keys(
    d: Mapping[str, Any], prefix: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> None:
    for k in d:
        if k not in allowed:
            close = difflib.get_close_matches(k, allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _err(_join(prefix, k), f"unknown key ({hint}allowed: {', '.join(allowed)})")
    for k in required:
        if k not in d or d[k] is None:
            raise _err(_join(prefix, k), "missing (required)")


def _number(value: Any, key: str, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _err(key, f"must be a number, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise _err(key, f"must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise _err(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def _integer(value: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _err(key, f"must be an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise _err(key, f"must be >= {minimum}, got {value}")
    return value


def _string(value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise _err(key, f"must be a non-empty string, got {_describe(value)}")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise _err(key, f"unknown value {value!r} ({hint}choose one of: {', '.join(choices)})")
    return value


def _vector3(value: Any, key: str) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _err(key, f"must be a list of 3 numbers, got {_describe(value)}")
    return [_number(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _supercell(value: Any, key: str) -> list[int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _err(key, f"must be an integer or a list of 3 integers, got {_describe(value)}")
    return [_integer(v, f"{key}[{i}]", minimum=1) for i, v in enumerate(value)]


def _presets_module(key: str):
    """The model presets module, imported lazily (it is optional at import time of this module)."""
    try:
        from sld_workflows.engines.model import presets
    except ImportError as exc:
        raise _err(key, "the model presets are not available "
                   f"(sld_workflows.engines.model.presets: {exc})") from exc
    return presets


def _preset_name(value: Any, key: str) -> str:
    name = _string(value, key)
    names = tuple(_presets_module(key).PRESET_NAMES)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise _err(key, f"unknown preset {name!r} ({hint}known: {', '.join(names)})")
    return name


def _preset_error_key(key: str) -> str:
    """Where a ``make_preset`` error key (``overrides.dmi.scale``, ``supercell``) lives in a run spec."""
    if key.startswith(("overrides", "external_field_ev_per_mub")):
        return f"engine.{key}"
    if key.startswith(("supercell", "preset")):
        return f"structure.{key}"
    return key or "structure.preset"


# ------------------------------------------------------------------------------- normalisation
def _moments(d: Mapping[str, Any]) -> dict[str, float] | None:
    if d.get("moments") is None:
        return None
    m = _mapping(d["moments"], "structure.moments")
    return {sp: _number(v, f"structure.moments.{sp}", minimum=0.0) for sp, v in m.items()}


def _normalise_structure(raw: Any, base_dir: Path | None) -> dict[str, Any]:
    d = _mapping(raw, "structure")
    given = [k for k in STRUCTURE_SOURCES if k in d]
    if len(given) > 1:
        raise _err("structure", f"give exactly one of {', '.join(STRUCTURE_SOURCES)}, got {', '.join(given)}")
    if "preset" in d:
        _check_keys(d, "structure", ("preset", "supercell"))
        return {"preset": _preset_name(d["preset"], "structure.preset"),
                "supercell": _supercell(d.get("supercell", 1), "structure.supercell")}
    if "file" in d:
        _check_keys(d, "structure", ("file", "moments", "supercell"))
        path = Path(_string(d["file"], "structure.file")).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        path = path.resolve()
        if not path.is_file():
            raise _err("structure.file", f"file not found: {path}")
        return {"file": str(path), "moments": _moments(d),
                "supercell": _supercell(d.get("supercell", 1), "structure.supercell")}
    if "pymatgen" in d:
        _check_keys(d, "structure", ("pymatgen", "moments", "supercell"))
        return {"pymatgen": copy.deepcopy(_mapping(d["pymatgen"], "structure.pymatgen")), "moments": _moments(d),
                "supercell": _supercell(d.get("supercell", 1), "structure.supercell")}
    raise _err("structure", f"missing: give one of {', '.join(STRUCTURE_SOURCES)}")


def _normalise_spins(raw: Any) -> dict[str, Any]:
    d = _mapping({"init": "structure"} if raw is None else raw, "spins")
    _check_keys(d, "spins", ("init", "direction", "values"), required=("init",))
    init = _string(d["init"], "spins.init", SPIN_INITS)
    out: dict[str, Any] = {"init": init}
    if "direction" in d and init != "ferro":
        raise _err("spins.direction", f"only used with init: ferro (init is {init!r})")
    if "values" in d and init != "given":
        raise _err("spins.values", f"only used with init: given (init is {init!r})")
    if init == "ferro":
        direction = _vector3(d.get("direction", [0.0, 0.0, 1.0]), "spins.direction")
        if np.linalg.norm(direction) == 0:
            raise _err("spins.direction", "must not be the zero vector")
        out["direction"] = direction
    elif init == "given":
        if d.get("values") is None:
            raise _err("spins.values", "missing (required with init: given)")
        values = d["values"]
        if not isinstance(values, list | tuple) or not values:
            raise _err("spins.values", f"must be a list of [x, y, z] rows, got {_describe(values)}")
        out["values"] = [_vector3(row, f"spins.values[{i}]") for i, row in enumerate(values)]
    return out


def _normalise_velocities(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    d = _mapping(raw, "velocities")
    _check_keys(d, "velocities", ("temperature_k",), required=("temperature_k",))
    return {"temperature_k": _number(d["temperature_k"], "velocities.temperature_k", minimum=0.0)}


def _normalise_engine(raw: Any, structure: dict[str, Any]) -> dict[str, Any]:
    d = _mapping(raw, "engine")
    _check_keys(d, "engine", tuple(d), required=("kind",))  # required only; keys per kind below
    kind = _string(d["kind"], "engine.kind", ENGINE_KINDS)
    if kind == "model":
        if "preset" not in structure:
            raise _err("engine.kind", "the model engine needs structure.preset (a structure file needs "
                       "engine kind vasp or analytic)")
        _check_keys(d, "engine", ("kind", "preset", "overrides", "external_field_ev_per_mub"))
        preset = structure["preset"]
        if d.get("preset") is not None:
            preset = _preset_name(d["preset"], "engine.preset")
            if preset != structure["preset"]:
                raise _err("engine.preset",
                           f"{preset!r} differs from structure.preset {structure['preset']!r}")
        overrides = _mapping(d["overrides"], "engine.overrides") if d.get("overrides") is not None else {}
        field = d.get("external_field_ev_per_mub")
        return {"kind": "model", "preset": preset, "overrides": copy.deepcopy(overrides),
                "external_field_ev_per_mub": None if field is None else _vector3(
                    field, "engine.external_field_ev_per_mub")}
    if kind == "analytic":
        _check_keys(d, "engine", ("kind", "heisenberg", "zeeman", "harmonic"))
        out: dict[str, Any] = {"kind": "analytic"}
        if d.get("heisenberg") is not None:
            h = _mapping(d["heisenberg"], "engine.heisenberg")
            _check_keys(h, "engine.heisenberg", ("j_ev", "cutoff_a"), required=("j_ev", "cutoff_a"))
            out["heisenberg"] = {"j_ev": _number(h["j_ev"], "engine.heisenberg.j_ev"),
                                 "cutoff_a": _number(h["cutoff_a"], "engine.heisenberg.cutoff_a", 0.0, True)}
        if d.get("zeeman") is not None:
            z = _mapping(d["zeeman"], "engine.zeeman")
            _check_keys(z, "engine.zeeman", ("field_ev_per_mub",), required=("field_ev_per_mub",))
            out["zeeman"] = {
                "field_ev_per_mub": _vector3(z["field_ev_per_mub"], "engine.zeeman.field_ev_per_mub")}
        if d.get("harmonic") is not None:
            k = _mapping(d["harmonic"], "engine.harmonic")
            _check_keys(k, "engine.harmonic", ("spring_ev_per_a2",), required=("spring_ev_per_a2",))
            out["harmonic"] = {"spring_ev_per_a2": _number(
                k["spring_ev_per_a2"], "engine.harmonic.spring_ev_per_a2", 0.0, True)}
        if len(out) == 1:
            raise _err("engine", "kind analytic needs at least one of heisenberg, zeeman, harmonic")
        return out
    # vasp: the VASP engine validates its own section (from_spec) when the spec is built
    return copy.deepcopy(d)


def _normalise_dynamics(raw: Any) -> dict[str, Any]:
    d = _mapping(raw, "dynamics")
    _check_keys(d, "dynamics", _DYNAMICS_KEYS, required=("dt_fs", "steps"))
    out: dict[str, Any] = {}
    for key, bound in _DYNAMICS_NUMBERS.items():
        if key in d:
            minimum, strict = bound if bound is not None else (None, False)
            out[key] = _number(d[key], f"dynamics.{key}", minimum, strict)
    out["steps"] = _integer(d["steps"], "dynamics.steps", minimum=0)
    if "seed" in d:
        out["seed"] = _integer(d["seed"], "dynamics.seed", minimum=0)
        if out["seed"] >= 2**64:
            raise _err("dynamics.seed", f"must be < 2**64, got {out['seed']}")
    if "ensemble" in d:
        out["ensemble"] = _string(d["ensemble"], "dynamics.ensemble", ENSEMBLES)
    if "spin_scheme" in d:
        out["spin_scheme"] = _string(d["spin_scheme"], "dynamics.spin_scheme", SPIN_SCHEMES)
    if "cell_dof" in d:
        from sld_workflows.dynamics.lattice import CELL_DOFS

        out["cell_dof"] = _string(d["cell_dof"], "dynamics.cell_dof", CELL_DOFS)
    if "temperature" in d:
        try:
            TemperatureSchedule.from_spec(d["temperature"])
        except (ValueError, TypeError) as exc:
            raise _err("dynamics.temperature", str(exc)) from exc
        out["temperature"] = copy.deepcopy(d["temperature"])
    # fill the remaining defaults from DynamicsSettings so the stored spec is explicit
    settings = _settings_from(out)
    for key in _DYNAMICS_KEYS:
        if key not in out and key != "temperature":
            out[key] = getattr(settings, key)
    out.setdefault("temperature", 0.0)
    return {k: out[k] for k in _DYNAMICS_KEYS}


def _settings_from(dynamics: dict[str, Any]) -> DynamicsSettings:
    kwargs = {k: v for k, v in dynamics.items() if k != "steps"}
    if "temperature" in kwargs:
        kwargs["temperature"] = TemperatureSchedule.from_spec(kwargs["temperature"])
    try:
        return DynamicsSettings(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _err("dynamics", str(exc)) from exc


def _normalise_output(raw: Any) -> dict[str, Any]:
    d = _mapping({} if raw is None else raw, "output")
    _check_keys(d, "output", ("every",))
    return {"every": _integer(d.get("every", DEFAULT_OUTPUT_EVERY), "output.every", minimum=1)}


def normalise(raw: Mapping[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Check keys and types of every section and return the explicit (defaults filled) spec dict."""
    d = _mapping(raw, "spec")
    _check_keys(d, "", _TOP_KEYS, required=("name", "structure", "engine", "dynamics"))
    structure = _normalise_structure(d["structure"], base_dir)
    spec = {
        "name": _string(d["name"], "name"),
        "structure": structure,
        "spins": _normalise_spins(d.get("spins")),
        "velocities": _normalise_velocities(d.get("velocities")),
        "engine": _normalise_engine(d["engine"], structure),
        "dynamics": _normalise_dynamics(d["dynamics"]),
        "output": _normalise_output(d.get("output")),
    }
    if spec["velocities"] is not None and spec["dynamics"]["ensemble"] == Ensemble.SPIN_ONLY:
        raise _err("velocities", "ensemble spin-only freezes the lattice; drop the velocities section")
    engine = spec["engine"]
    if spec["dynamics"]["ensemble"] == Ensemble.NPT and engine["kind"] == "analytic" and "harmonic" in engine:
        raise _err("dynamics.ensemble",
                   "npt needs an engine that returns stress; the analytic harmonic term has none")
    return _json_pure(spec)


def _json_pure(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as plain JSON types (tuples -> lists, numpy scalars -> Python numbers), so that it
    survives JSON (FireWorks, MongoDB) unchanged and the as_dict/from_dict round trip is exact."""
    for section, value in spec.items():
        try:
            spec[section] = jsonable(value, non_finite="error", objects="error")
        except (TypeError, ValueError) as exc:
            raise _err(section, f"contains a value that is not JSON-serialisable ({exc})") from exc
    return spec


# ---------------------------------------------------------------------------------------- RunSpec
class RunSpec(MSONable):
    """A validated run specification. Build it with :func:`load_spec`."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._spec = normalise(spec)
        self._settings = _settings_from({k: v for k, v in self._spec["dynamics"].items()})
        self._built: tuple[SLDState, Any] | None = None

    # -- properties
    @property
    def spec(self) -> dict[str, Any]:
        """The normalised specification (a deep copy)."""
        return copy.deepcopy(self._spec)

    @property
    def name(self) -> str:
        return self._spec["name"]

    @property
    def dynamics(self) -> DynamicsSettings:
        return self._settings

    @property
    def steps(self) -> int:
        return self._spec["dynamics"]["steps"]

    @property
    def output_every(self) -> int:
        return self._spec["output"]["every"]

    @property
    def preset(self) -> str | None:
        """The material preset of the structure, if any (selects the order parameters)."""
        return self._spec["structure"].get("preset")

    @property
    def engine_kind(self) -> str:
        return self._spec["engine"]["kind"]

    def with_embedded_structure(self) -> RunSpec:
        """A copy whose structure file is replaced by its content (``structure.pymatgen``), so the
        spec no longer depends on a path of this machine (e.g. before storing it in FireWorks)."""
        if "file" not in self._spec["structure"]:
            return self
        from pymatgen.core import Structure

        spec = self.spec
        s = spec["structure"]
        try:
            structure = Structure.from_file(s["file"])
        except Exception as exc:  # pymatgen raises many types for unreadable files
            raise _err("structure.file", f"cannot read {s['file']}: {exc}") from exc
        spec["structure"] = {"pymatgen": structure.as_dict(), "moments": s["moments"], "supercell": s["supercell"]}
        new = RunSpec(spec)
        new._built = self._built
        return new

    def with_steps(self, steps: int) -> RunSpec:
        """A copy with another number of steps (the built state and engine are reused)."""
        new = copy.copy(self)
        spec = self.spec
        spec["dynamics"]["steps"] = _integer(steps, "dynamics.steps", minimum=0)
        new._spec = spec
        return new

    # -- building
    def validate(self) -> RunSpec:
        """Build the initial state and engine now, so every error surfaces before any output."""
        self._build()
        return self

    def build_initial_state(self) -> SLDState:
        return self._build()[0]

    def build_engine(self):
        return self._build()[1]

    def _build(self) -> tuple[SLDState, Any]:
        if self._built is None:
            state, preset_engine = self._base_state()
            state = self._initial_spins(state)
            state = self._initial_velocities(state)
            engine = self._engine(state, preset_engine)
            self._built = (state, engine)
        return self._built

    def _base_state(self) -> tuple[SLDState, Any]:
        s = self._spec["structure"]
        e = self._spec["engine"]
        if "preset" in s:
            presets = _presets_module("structure.preset")
            model = e["kind"] == "model"
            try:
                state, engine = presets.make_preset(
                    s["preset"], supercell=tuple(s["supercell"]),
                    overrides=(e["overrides"] or None) if model else None,
                    external_field_ev_per_mub=e["external_field_ev_per_mub"] if model else None,
                )
            except SpecError as exc:
                raise _err(_preset_error_key(exc.key), exc.reason) from exc
            except (ValueError, KeyError, TypeError) as exc:
                key = "engine.overrides" if model and e["overrides"] else "structure.preset"
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                raise _err(key, f"preset {s['preset']!r}: {message}") from exc
            if not np.any(state.magnetic):
                raise _err("structure.preset", f"preset {s['preset']!r} has no magnetic sites")
            return state, engine if model else None
        from pymatgen.core import Structure

        if "file" in s:
            try:
                structure = Structure.from_file(s["file"])
            except Exception as exc:  # pymatgen raises many types for unreadable files
                raise _err("structure.file", f"cannot read {s['file']}: {exc}") from exc
        else:
            try:
                structure = Structure.from_dict(s["pymatgen"])
            except Exception as exc:  # malformed dicts fail with KeyError, TypeError, ValueError, ...
                raise _err("structure.pymatgen", f"not a pymatgen Structure dict: {type(exc).__name__}: {exc}") from exc
        if s["supercell"] != [1, 1, 1]:
            structure.make_supercell(s["supercell"])
        if s["moments"] is None and "magmom" not in structure.site_properties:
            raise _err("structure.moments", "missing: give moments per species, e.g. {Fe: 2.2} "
                       "(the file has no magmom site property)")
        try:
            state = SLDState.from_structure(structure, moments=s["moments"])
        except ValueError as exc:
            raise _err("structure.moments", str(exc).removeprefix("moments: ")) from exc
        if not np.any(state.magnetic):
            species = sorted(set(state.species))
            raise _err("structure.moments", f"no magnetic sites: every moment is 0 (species in the "
                       f"structure: {', '.join(species)})")
        return state, None

    def _initial_spins(self, state: SLDState) -> SLDState:
        sp = self._spec["spins"]
        init = sp["init"]
        magnetic = state.magnetic
        if init == "structure":
            return state
        if init == "ferro":
            spins = np.tile(np.asarray(sp["direction"], dtype=float), (state.n_sites, 1))
        elif init == "random":
            rng = generator(self._settings.seed, INITIAL_BLOCK_SPINS, Stream.INITIAL)
            spins = rng.standard_normal((state.n_sites, 3))
        else:  # given
            values = np.asarray(sp["values"], dtype=float)
            n_mag = int(np.count_nonzero(magnetic))
            if values.shape[0] == state.n_sites:
                spins = values
            elif values.shape[0] == n_mag:
                spins = np.zeros((state.n_sites, 3))
                spins[magnetic] = values
            else:
                also = f" or {n_mag} rows (one per magnetic site)" if n_mag != state.n_sites else ""
                raise _err("spins.values", f"expected {state.n_sites} rows of [x, y, z] (one per site){also}, "
                           f"got {values.shape[0]} rows")
            zero = magnetic & (np.linalg.norm(spins, axis=1) == 0)
            if np.any(zero):
                sites = np.flatnonzero(zero)[:10].tolist()
                raise _err("spins.values", f"zero vector on magnetic site(s) {sites}")
        return state.replace(spins=np.where(magnetic[:, None], spins, 0.0))

    def _initial_velocities(self, state: SLDState) -> SLDState:
        v = self._spec["velocities"]
        if v is None:
            return state
        return state.replace(velocities=maxwell_boltzmann_velocities(
            state.masses_amu, v["temperature_k"], self._settings.seed))

    def _engine(self, state: SLDState, preset_engine: Any):
        e = self._spec["engine"]
        if e["kind"] == "model":
            return preset_engine
        if e["kind"] == "vasp":
            try:
                from sld_workflows.engines.vasp import VaspEngine
            except ImportError as exc:
                raise _err("engine.kind",
                           f"the VASP engine is not available (sld_workflows.engines.vasp: {exc})") from exc
            section = {k: copy.deepcopy(v) for k, v in e.items() if k != "kind"}
            try:
                return VaspEngine.from_spec(section)
            except SpecError as exc:
                key = exc.key if exc.key.startswith("engine") else _join("engine", exc.key)
                raise _err(key, exc.reason) from exc
            except (ValueError, KeyError, TypeError) as exc:
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                raise _err("engine", str(message)) from exc
        return _analytic_engine(e, state)

    # -- serialisation
    def as_dict(self) -> dict[str, Any]:
        import sld_workflows

        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "@version": sld_workflows.__version__, "spec": self.spec}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        if "spec" not in d:
            raise _err("spec", "RunSpec dict has no 'spec' entry")
        return cls(d["spec"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self._spec == other._spec

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RunSpec(name={self.name!r}, steps={self.steps}, engine={self.engine_kind!r})"


def maxwell_boltzmann_velocities(masses_amu: np.ndarray, temperature_k: float, seed: int) -> np.ndarray:
    """Velocities (Å/fs) drawn from Maxwell-Boltzmann at ``temperature_k`` (INITIAL stream, block 1),
    with the centre-of-mass drift removed (the expected kinetic temperature is then T·(N−1)/N)."""
    xi = generator(seed, INITIAL_BLOCK_VELOCITIES, Stream.INITIAL).standard_normal((len(masses_amu), 3))
    sigma = np.sqrt(K_B_EV_PER_K * temperature_k * EV_PER_A_AMU_TO_A_PER_FS2 / masses_amu)
    v = sigma[:, None] * xi
    v -= (masses_amu @ v) / masses_amu.sum()
    return v


def _analytic_engine(e: dict[str, Any], state: SLDState):
    from sld_workflows.engines.analytic import HarmonicEngine, HeisenbergEngine, ZeemanEngine
    from sld_workflows.run.engines import SumEngine

    terms: list[Any] = []
    if "heisenberg" in e:
        h = e["heisenberg"]
        engine = HeisenbergEngine.from_cutoff(state, h["j_ev"], h["cutoff_a"])
        if not engine.bonds:
            raise _err("engine.heisenberg.cutoff_a",
                       f"no pair of magnetic sites is closer than {h['cutoff_a']:g} Å")
        terms.append(engine)
    if "zeeman" in e:
        terms.append(ZeemanEngine(tuple(e["zeeman"]["field_ev_per_mub"])))
    if "harmonic" in e:
        reference = tuple(map(tuple, state.positions.tolist()))
        terms.append(HarmonicEngine(reference, e["harmonic"]["spring_ev_per_a2"]))
    return terms[0] if len(terms) == 1 else SumEngine(tuple(terms))


def load_spec(path_or_mapping: str | Path | Mapping[str, Any]) -> RunSpec:
    """Read (YAML file) or take (mapping) a run spec, validate it fully and build state and engine."""
    if isinstance(path_or_mapping, RunSpec):
        return path_or_mapping.validate()
    if isinstance(path_or_mapping, Mapping):
        raw, base_dir = dict(path_or_mapping), None
    else:
        import yaml

        path = Path(path_or_mapping)
        if not path.is_file():
            raise _err("", f"spec file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise _err("", f"{path}: not valid YAML{where}: {problem}") from exc
        if raw is None:
            raise _err("", f"{path}: the spec file is empty")
        if not isinstance(raw, Mapping):
            raise _err("", f"{path}: the spec must be a mapping of sections, got {type(raw).__name__}")
        base_dir = path.resolve().parent
    spec = RunSpec.__new__(RunSpec)
    spec._spec = normalise(raw, base_dir)
    spec._settings = _settings_from(dict(spec._spec["dynamics"]))
    spec._built = None
    return spec.validate()
