"""The engine registry: one place from an engine ``kind`` (the run spec's ``engine.kind``) to the
section dataclass that validates its part of the spec and the builder that turns it into an engine.

Adding an engine is one registration::

    ENGINES.register("abinit", AbinitSection, build_abinit)   # or register_engine(...)

where ``AbinitSection.from_dict(d, context)`` validates the ``engine`` mapping (``d["kind"]`` included)
and raises :class:`~sld_workflows.errors.SpecError` naming the dotted key, ``section.as_dict()`` gives
the normalised mapping stored with the run, and ``build_abinit(section, state, context)`` returns the
engine for the initial state. :class:`EngineContext` is all an engine section may know of the rest
of the spec (which model preset the structure is, and its supercell).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sld_workflows import schema
from sld_workflows.state import SLDState


@dataclasses.dataclass(frozen=True)
class EngineContext:
    """What the structure section tells the engine section: ``preset`` (the model preset the
    structure is, or None for a file or pymatgen structure) and its ``supercell``."""

    preset: str | None = None
    supercell: tuple[int, int, int] = (1, 1, 1)


@dataclasses.dataclass(frozen=True)
class EngineKind:
    """One registered engine kind."""

    kind: str
    section: type
    build: Callable[[Any, SLDState, EngineContext], Any]


class EngineRegistry:
    """Engine kinds in registration order (the order error messages list them in)."""

    def __init__(self) -> None:
        self._kinds: dict[str, EngineKind] = {}

    def register(self, kind: str, section: type, build: Callable[[Any, SLDState, EngineContext], Any]) -> None:
        if kind in self._kinds:
            raise ValueError(f"engine kind {kind!r} is already registered")
        self._kinds[kind] = EngineKind(kind, section, build)

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def __getitem__(self, kind: str) -> EngineKind:
        return self._kinds[kind]

    def section_from_dict(self, raw: Any, context: EngineContext) -> Any:
        """The validated section of the run spec's ``engine`` mapping (dispatched on ``kind``)."""
        d = schema.mapping(raw, "engine")
        schema.check_keys(d, "engine", tuple(d), required=("kind",))  # required only; keys per kind
        kind = schema.string(d["kind"], "engine.kind", self.kinds())
        return self._kinds[kind].section.from_dict(d, context)

    def build(self, section: Any, state: SLDState, context: EngineContext) -> Any:
        """The engine of a validated section, for the initial ``state``."""
        return self._kinds[section.kind].build(section, state, context)


#: the engine kinds the run spec knows
ENGINES = EngineRegistry()


def register_engine(kind: str, section: type, build: Callable[[Any, SLDState, EngineContext], Any]) -> None:
    """Register an engine kind with :data:`ENGINES` (see the module docstring)."""
    ENGINES.register(kind, section, build)


def _register_builtin() -> None:
    from sld_workflows.engines import sections

    register_engine("model", sections.ModelSection, sections.build_model)
    register_engine("vasp", sections.VaspSection, sections.build_vasp)
    register_engine("analytic", sections.AnalyticSection, sections.build_analytic)
    register_engine("abinit", sections.AbinitSection, sections.build_abinit)


_register_builtin()
