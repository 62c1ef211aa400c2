"""The ``engine`` sections of the run spec for the built-in engine kinds, and their builders
(registered in :mod:`sld_workflows.engines.registry`).

- ``model``: the embedded model engine of the structure's preset (``overrides``, ``external_field_ev_per_mub``);
- ``vasp``: the VASP engine; its keys are validated by :meth:`VaspEngine.from_spec` when it is built;
- ``abinit``: the ABINIT engine (``AbinitSettings``; ``run_dir`` is the root of its run directories);
- ``analytic``: a sum of the analytic terms (Heisenberg exchange, Zeeman field, harmonic springs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from sld_workflows import schema
from sld_workflows.engines.registry import EngineContext
from sld_workflows.errors import SpecError
from sld_workflows.schema import spec_error
from sld_workflows.state import SLDState


# ------------------------------------------------------------------------------------- presets
def presets_module(key: str):
    """The model presets module, imported lazily (it is optional at import time of this module)."""
    try:
        from sld_workflows.engines.model import presets
    except ImportError as exc:
        raise spec_error(key, "the model presets are not available "
                         f"(sld_workflows.engines.model.presets: {exc})") from exc
    return presets


def preset_name(value: Any, key: str) -> str:
    name = schema.string(value, key)
    names = tuple(presets_module(key).PRESET_NAMES)
    if name not in names:
        raise spec_error(key, f"unknown preset {name!r} ({schema.did_you_mean(name, names)}known: {', '.join(names)})")
    return name


def preset_error_key(key: str) -> str:
    """Where a ``make_preset`` error key (``overrides.dmi.scale``, ``supercell``) lives in a run spec."""
    if key.startswith(("overrides", "external_field_ev_per_mub")):
        return f"engine.{key}"
    if key.startswith(("supercell", "preset")):
        return f"structure.{key}"
    return key or "structure.preset"


def _named_errors(name: str, overrides: dict | None, call: Callable[[], Any]) -> Any:
    """``call()`` with the presets' errors named by their run-spec key."""
    try:
        return call()
    except SpecError as exc:
        raise spec_error(preset_error_key(exc.key), exc.reason) from exc
    except (ValueError, KeyError, TypeError) as exc:
        key = "engine.overrides" if overrides else "structure.preset"
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise spec_error(key, f"preset {name!r}: {message}") from exc


def preset_state(name: str, supercell: tuple[int, int, int]) -> SLDState:
    """The preset's state (structure × supercell, its moments, spins +z), without its Hamiltonian."""
    presets = presets_module("structure.preset")
    return _named_errors(name, None, lambda: presets.get_preset(name).build_state(supercell))


# --------------------------------------------------------------------------------------- model
@dataclasses.dataclass(frozen=True)
class ModelSection:
    kind: ClassVar[str] = "model"
    preset: str
    overrides: Mapping[str, Any]
    external_field_ev_per_mub: tuple[float, float, float] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], context: EngineContext) -> ModelSection:
        if context.preset is None:
            raise spec_error("engine.kind", "the model engine needs structure.preset (a structure file needs "
                             "engine kind vasp or analytic)")
        schema.check_keys(d, "engine", ("kind", "preset", "overrides", "external_field_ev_per_mub"))
        preset = context.preset
        if d.get("preset") is not None:
            preset = preset_name(d["preset"], "engine.preset")
            if preset != context.preset:
                raise spec_error("engine.preset", f"{preset!r} differs from structure.preset {context.preset!r}")
        overrides = schema.mapping(d["overrides"], "engine.overrides") if d.get("overrides") is not None else {}
        field = d.get("external_field_ev_per_mub")
        return cls(preset, schema.freeze(overrides, "engine"),
                   None if field is None else schema.vector3(field, "engine.external_field_ev_per_mub"))

    def as_dict(self) -> dict[str, Any]:
        field = self.external_field_ev_per_mub
        return {"kind": self.kind, "preset": self.preset, "overrides": schema.thaw(self.overrides),
                "external_field_ev_per_mub": None if field is None else list(field)}


def build_model(section: ModelSection, state: SLDState, context: EngineContext):
    # ModelSection.from_dict guarantees the structure is this preset's, so the Hamiltonian is built on
    # the state at hand (building the preset's structure again doubled the load time of a spec)
    overrides = schema.thaw(section.overrides) or None
    field = None if section.external_field_ev_per_mub is None else list(section.external_field_ev_per_mub)
    presets = presets_module("structure.preset")
    return _named_errors(section.preset, overrides, lambda: presets.preset_engine(
        section.preset, state, overrides=overrides, external_field_ev_per_mub=field))


# ---------------------------------------------------------------------------------------- vasp
@dataclasses.dataclass(frozen=True)
class VaspSection:
    """The whole ``engine`` mapping, kept as given (frozen); :meth:`VaspEngine.from_spec` checks it."""

    kind: ClassVar[str] = "vasp"
    options: Mapping[str, Any]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], context: EngineContext) -> VaspSection:
        return cls(schema.freeze(dict(d), "engine"))

    def as_dict(self) -> dict[str, Any]:
        return schema.thaw(self.options)


def build_vasp(section: VaspSection, state: SLDState, context: EngineContext):
    try:
        from sld_workflows.engines.vasp import VaspEngine
    except ImportError as exc:
        raise spec_error("engine.kind",
                         f"the VASP engine is not available (sld_workflows.engines.vasp: {exc})") from exc
    options = {k: v for k, v in section.as_dict().items() if k != "kind"}
    try:
        return VaspEngine.from_spec(options)
    except SpecError as exc:
        key = exc.key if exc.key.startswith("engine") else schema.join("engine", exc.key)
        raise spec_error(key, exc.reason) from exc
    except (ValueError, KeyError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise spec_error("engine", str(message)) from exc


# -------------------------------------------------------------------------------------- abinit
@dataclasses.dataclass(frozen=True)
class AbinitSection:
    """The ``engine`` mapping of kind ``abinit``: validated into
    :class:`~sld_workflows.engines.abinit.AbinitSettings` (one-line errors naming the key) at load;
    the pseudopotentials, spheres and the executable are checked against the state when built."""

    kind: ClassVar[str] = "abinit"
    options: Mapping[str, Any]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], context: EngineContext) -> AbinitSection:
        from sld_workflows.engines.abinit.settings import AbinitSettings

        AbinitSettings.from_dict({k: v for k, v in d.items() if k != "run_dir"})
        return cls(schema.freeze(dict(d), "engine"))

    def as_dict(self) -> dict[str, Any]:
        return schema.thaw(self.options)


def build_abinit(section: AbinitSection, state: SLDState, context: EngineContext):
    from sld_workflows.engines.abinit import AbinitEngine

    return AbinitEngine.from_spec({k: v for k, v in section.as_dict().items() if k != "kind"}, state)


# ------------------------------------------------------------------------------------ analytic
@dataclasses.dataclass(frozen=True)
class HeisenbergTerm:
    j_ev: float
    cutoff_a: float

    @classmethod
    def from_dict(cls, raw: Any, key: str) -> HeisenbergTerm:
        h = schema.mapping(raw, key)
        schema.check_keys(h, key, ("j_ev", "cutoff_a"), required=("j_ev", "cutoff_a"))
        return cls(schema.number(h["j_ev"], f"{key}.j_ev"), schema.number(h["cutoff_a"], f"{key}.cutoff_a", 0.0, True))

    def as_dict(self) -> dict[str, Any]:
        return {"j_ev": self.j_ev, "cutoff_a": self.cutoff_a}

    def build(self, state: SLDState, key: str):
        from sld_workflows.engines.analytic import HeisenbergEngine

        engine = HeisenbergEngine.from_cutoff(state, self.j_ev, self.cutoff_a)
        if not engine.bonds:
            raise spec_error(f"{key}.cutoff_a", f"no pair of magnetic sites is closer than {self.cutoff_a:g} Å")
        return engine


@dataclasses.dataclass(frozen=True)
class ZeemanTerm:
    field_ev_per_mub: tuple[float, float, float]

    @classmethod
    def from_dict(cls, raw: Any, key: str) -> ZeemanTerm:
        z = schema.mapping(raw, key)
        schema.check_keys(z, key, ("field_ev_per_mub",), required=("field_ev_per_mub",))
        return cls(schema.vector3(z["field_ev_per_mub"], f"{key}.field_ev_per_mub"))

    def as_dict(self) -> dict[str, Any]:
        return {"field_ev_per_mub": list(self.field_ev_per_mub)}

    def build(self, state: SLDState, key: str):
        from sld_workflows.engines.analytic import ZeemanEngine

        return ZeemanEngine(tuple(self.field_ev_per_mub))


@dataclasses.dataclass(frozen=True)
class HarmonicTerm:
    spring_ev_per_a2: float

    @classmethod
    def from_dict(cls, raw: Any, key: str) -> HarmonicTerm:
        k = schema.mapping(raw, key)
        schema.check_keys(k, key, ("spring_ev_per_a2",), required=("spring_ev_per_a2",))
        return cls(schema.number(k["spring_ev_per_a2"], f"{key}.spring_ev_per_a2", 0.0, True))

    def as_dict(self) -> dict[str, Any]:
        return {"spring_ev_per_a2": self.spring_ev_per_a2}

    def build(self, state: SLDState, key: str):
        from sld_workflows.engines.analytic import HarmonicEngine

        return HarmonicEngine(tuple(map(tuple, state.positions.tolist())), self.spring_ev_per_a2)


#: analytic terms by their key in the ``engine`` section, in the order they are summed
ANALYTIC_TERMS: dict[str, type] = {"heisenberg": HeisenbergTerm, "zeeman": ZeemanTerm, "harmonic": HarmonicTerm}


@dataclasses.dataclass(frozen=True)
class AnalyticSection:
    kind: ClassVar[str] = "analytic"
    heisenberg: HeisenbergTerm | None = None
    zeeman: ZeemanTerm | None = None
    harmonic: HarmonicTerm | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], context: EngineContext) -> AnalyticSection:
        schema.check_keys(d, "engine", ("kind", *ANALYTIC_TERMS))
        terms = {name: term.from_dict(d[name], f"engine.{name}")
                 for name, term in ANALYTIC_TERMS.items() if d.get(name) is not None}
        if not terms:
            raise spec_error("engine", f"kind analytic needs at least one of {', '.join(ANALYTIC_TERMS)}")
        return cls(**terms)

    def terms(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ANALYTIC_TERMS if getattr(self, name) is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{name: term.as_dict() for name, term in self.terms().items()}}


def build_analytic(section: AnalyticSection, state: SLDState, context: EngineContext):
    from sld_workflows.engines.composite import CompositeEngine

    engines = [term.build(state, f"engine.{name}") for name, term in section.terms().items()]
    return engines[0] if len(engines) == 1 else CompositeEngine(tuple(engines))
