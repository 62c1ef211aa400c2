"""The run spec: its frozen sections, how it is read, and how it builds the initial state and engine."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monty.json import MSONable

from sld_workflows import schema
from sld_workflows.dynamics.settings import DynamicsSettings, Ensemble
from sld_workflows.engines.registry import ENGINES
from sld_workflows.evaluation import Property, implemented_properties, lacking
from sld_workflows.run.spec.loading import read_spec_file
from sld_workflows.run.spec.sections import DynamicsSection, OutputSection, SpinsSection, VelocitiesSection
from sld_workflows.run.spec.structure import StructureSection, engine_context, structure_from_dict
from sld_workflows.schema import spec_error
from sld_workflows.state import SLDState

TOP_KEYS = ("name", "structure", "spins", "velocities", "engine", "dynamics", "output")
_AS_DICT_KEYS = {"spec", "@module", "@class", "@version"}


@dataclasses.dataclass(frozen=True)
class RunSpec(MSONable):
    """A validated run specification: ``RunSpec.from_file(path)`` or ``RunSpec.from_dict(mapping)``.

    Immutable. The initial state and the engine are built once per instance, on first use (the
    loaders build them at once, so that every error surfaces before anything is written); a derived
    spec (:meth:`with_steps`, :meth:`with_embedded_structure`) is a new instance that builds its own.
    """

    name: str
    structure: StructureSection
    engine: Any  # the section of a kind registered in sld_workflows.engines.registry.ENGINES
    dynamics: DynamicsSection
    spins: SpinsSection = SpinsSection()
    velocities: VelocitiesSection | None = None
    output: OutputSection = OutputSection()

    __hash__ = None  # type: ignore[assignment]  # nested mappings are read-only views, not hashable

    def __post_init__(self) -> None:
        if self.velocities is not None and self.dynamics.ensemble == Ensemble.SPIN_ONLY:
            raise spec_error("velocities", "ensemble spin-only freezes the lattice; drop the velocities section")

    # -- loading
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RunSpec:
        """Read the YAML spec at ``path`` (relative structure files are found beside it) and validate it fully."""
        return cls.from_dict(read_spec_file(path), base_dir=Path(path).resolve().parent)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base_dir: Path | None = None) -> RunSpec:
        """Validate a spec mapping — the YAML's sections, or :meth:`as_dict`'s form — and build it.
        Relative structure files are resolved against ``base_dir`` (default: the working directory)."""
        if isinstance(d, Mapping) and "spec" in d and set(d) <= _AS_DICT_KEYS:  # the as_dict form
            d = d["spec"]
        d = schema.mapping(d, "spec")
        schema.check_keys(d, "", TOP_KEYS, required=("name", "structure", "engine", "dynamics"))
        structure = structure_from_dict(d["structure"], base_dir)
        spec = cls(
            name=schema.string(d["name"], "name"),
            structure=structure,
            spins=SpinsSection.from_dict(d.get("spins")),
            velocities=VelocitiesSection.from_dict(d.get("velocities")),
            engine=ENGINES.section_from_dict(d["engine"], engine_context(structure)),
            dynamics=DynamicsSection.from_dict(d["dynamics"]),
            output=OutputSection.from_dict(d.get("output")),
        )
        return spec.validate()

    # -- the normalised mapping
    @property
    def spec(self) -> dict[str, Any]:
        """The normalised specification (defaults filled in, file paths absolute; a fresh plain dict):
        ``RunSpec.from_dict(spec.spec).spec == spec.spec``."""
        return {
            "name": self.name,
            "structure": self.structure.as_dict(),
            "spins": self.spins.as_dict(),
            "velocities": None if self.velocities is None else self.velocities.as_dict(),
            "engine": self.engine.as_dict(),
            "dynamics": self.dynamics.as_dict(),
            "output": self.output.as_dict(),
        }

    def as_dict(self) -> dict[str, Any]:
        import sld_workflows

        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "@version": sld_workflows.__version__, "spec": self.spec}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self.spec == other.spec

    def __repr__(self) -> str:
        return f"RunSpec(name={self.name!r}, steps={self.steps}, engine={self.engine_kind!r})"

    # -- what the driver asks
    @functools.cached_property
    def settings(self) -> DynamicsSettings:
        return self.dynamics.settings

    @property
    def steps(self) -> int:
        return self.dynamics.steps

    @property
    def output_every(self) -> int:
        return self.output.every

    @property
    def preset(self) -> str | None:
        """The material preset of the structure, if any (selects the order parameters)."""
        return getattr(self.structure, "preset", None)

    @property
    def engine_kind(self) -> str:
        return self.engine.kind

    # -- derived specs (new instances: they build their own state and engine)
    def with_steps(self, steps: int) -> RunSpec:
        """A copy with another number of steps. The number of steps does not enter the build, so a
        state and engine this spec has built are deep-copied into the copy rather than built again
        (the copy shares neither; a preset engine takes a second or so to build)."""
        steps = schema.integer(steps, "dynamics.steps", minimum=0)
        new = dataclasses.replace(self, dynamics=dataclasses.replace(self.dynamics, steps=steps))
        built = self.__dict__.get("_built")  # the cached_property's slot: set only if built
        if built is not None:
            try:
                new.__dict__["_built"] = copy.deepcopy(built)
            except (TypeError, copy.Error):  # an engine that cannot be copied is built afresh
                pass
        return new

    def with_embedded_structure(self) -> RunSpec:
        """A copy whose structure file is replaced by its content (``structure.pymatgen``), so the
        spec no longer depends on a path of this machine (e.g. before storing it in FireWorks)."""
        return dataclasses.replace(self, structure=self.structure.embedded())

    # -- building
    def validate(self) -> RunSpec:
        """Build the initial state and engine now, so every error surfaces before any output."""
        _ = self._built
        return self

    def build_initial_state(self) -> SLDState:
        return self._built[0]

    def build_engine(self):
        return self._built[1]

    @functools.cached_property
    def _built(self) -> tuple[SLDState, Any]:
        seed = self.settings.seed
        state = self.spins.apply(self.structure.build(), seed)
        if self.velocities is not None:
            state = self.velocities.apply(state, seed)
        engine = ENGINES.build(self.engine, state, engine_context(self.structure))
        if self.dynamics.ensemble == Ensemble.NPT and Property.STRESS not in implemented_properties(engine):
            raise spec_error("dynamics.ensemble", f"npt needs an engine that returns stress; "
                             f"{', '.join(lacking(engine, Property.STRESS))} computes none")
        return state, engine
