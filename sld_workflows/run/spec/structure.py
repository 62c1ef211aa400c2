"""The ``structure`` section of a run spec: three sources (a model preset, a file pymatgen reads, a
``Structure.as_dict()``), one small frozen dataclass each, dispatched by which key is given."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sld_workflows import schema
from sld_workflows.engines.registry import EngineContext
from sld_workflows.engines.sections import preset_name, preset_state
from sld_workflows.schema import spec_error
from sld_workflows.state import SLDState


def _moments(d: Mapping[str, Any]) -> Mapping[str, float] | None:
    if d.get("moments") is None:
        return None
    m = schema.mapping(d["moments"], "structure.moments")
    return schema.freeze({sp: schema.number(v, f"structure.moments.{sp}", minimum=0.0) for sp, v in m.items()},
                         "structure")


def _read_structure(path: str):
    from pymatgen.core import Structure

    try:
        return Structure.from_file(path)
    except Exception as exc:  # pymatgen raises many types for unreadable files
        raise spec_error("structure.file", f"cannot read {path}: {exc}") from exc


def _state_from_structure(structure, moments: Mapping[str, float] | None, supercell: tuple[int, int, int]) -> SLDState:
    if supercell != (1, 1, 1):
        structure.make_supercell(list(supercell))
    if moments is None and "magmom" not in structure.site_properties:
        raise spec_error("structure.moments", "missing: give moments per species, e.g. {Fe: 2.2} "
                         "(the file has no magmom site property)")
    try:
        state = SLDState.from_structure(structure, moments=None if moments is None else dict(moments))
    except ValueError as exc:
        raise spec_error("structure.moments", str(exc).removeprefix("moments: ")) from exc
    if not np.any(state.magnetic):
        species = sorted(set(state.species))
        raise spec_error("structure.moments", f"no magnetic sites: every moment is 0 (species in the "
                         f"structure: {', '.join(species)})")
    return state


@dataclasses.dataclass(frozen=True)
class PresetStructure:
    """A model preset's structure × ``supercell``."""

    source: ClassVar[str] = "preset"
    preset: str
    supercell: tuple[int, int, int] = (1, 1, 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base_dir: Path | None) -> PresetStructure:
        schema.check_keys(d, "structure", ("preset", "supercell"))
        return cls(preset_name(d["preset"], "structure.preset"),
                   schema.supercell(d.get("supercell", 1), "structure.supercell"))

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "supercell": list(self.supercell)}

    def build(self) -> SLDState:
        state = preset_state(self.preset, self.supercell)
        if not np.any(state.magnetic):
            raise spec_error("structure.preset", f"preset {self.preset!r} has no magnetic sites")
        return state

    def embedded(self) -> PresetStructure:
        """Itself: a preset depends on no file."""
        return self


@dataclasses.dataclass(frozen=True)
class FileStructure:
    """A structure file pymatgen reads (absolute path), with moments per species."""

    source: ClassVar[str] = "file"
    file: str
    moments: Mapping[str, float] | None = None
    supercell: tuple[int, int, int] = (1, 1, 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base_dir: Path | None) -> FileStructure:
        schema.check_keys(d, "structure", ("file", "moments", "supercell"))
        path = Path(schema.string(d["file"], "structure.file")).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        path = path.resolve()
        if not path.is_file():
            raise spec_error("structure.file", f"file not found: {path}")
        return cls(str(path), _moments(d), schema.supercell(d.get("supercell", 1), "structure.supercell"))

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "moments": schema.thaw(self.moments), "supercell": list(self.supercell)}

    def build(self) -> SLDState:
        return _state_from_structure(_read_structure(self.file), self.moments, self.supercell)

    def embedded(self) -> PymatgenStructure:
        """The same structure with the file's content in place of its path."""
        return PymatgenStructure.from_dict({"pymatgen": _read_structure(self.file).as_dict(),
                                            "moments": schema.thaw(self.moments), "supercell": self.supercell}, None)


@dataclasses.dataclass(frozen=True)
class PymatgenStructure:
    """A ``Structure.as_dict()`` (frozen), with moments per species."""

    source: ClassVar[str] = "pymatgen"
    pymatgen: Mapping[str, Any]
    moments: Mapping[str, float] | None = None
    supercell: tuple[int, int, int] = (1, 1, 1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base_dir: Path | None) -> PymatgenStructure:
        schema.check_keys(d, "structure", ("pymatgen", "moments", "supercell"))
        return cls(schema.freeze(schema.mapping(d["pymatgen"], "structure.pymatgen"), "structure"), _moments(d),
                   schema.supercell(d.get("supercell", 1), "structure.supercell"))

    def as_dict(self) -> dict[str, Any]:
        return {"pymatgen": schema.thaw(self.pymatgen), "moments": schema.thaw(self.moments),
                "supercell": list(self.supercell)}

    def build(self) -> SLDState:
        from pymatgen.core import Structure

        try:
            structure = Structure.from_dict(schema.thaw(self.pymatgen))
        except Exception as exc:  # malformed dicts fail with KeyError, TypeError, ValueError, ...
            raise spec_error("structure.pymatgen",
                             f"not a pymatgen Structure dict: {type(exc).__name__}: {exc}") from exc
        return _state_from_structure(structure, self.moments, self.supercell)

    def embedded(self) -> PymatgenStructure:
        """Itself: the structure is already in the spec."""
        return self


#: ways to give the structure: a model preset, a file pymatgen reads, or a ``Structure.as_dict()``
STRUCTURE_SOURCES: dict[str, type] = {s.source: s for s in (PresetStructure, FileStructure, PymatgenStructure)}
StructureSection = PresetStructure | FileStructure | PymatgenStructure


def structure_from_dict(raw: Any, base_dir: Path | None = None) -> StructureSection:
    d = schema.mapping(raw, "structure")
    given = [k for k in STRUCTURE_SOURCES if k in d]
    if len(given) > 1:
        raise spec_error("structure", f"give exactly one of {', '.join(STRUCTURE_SOURCES)}, got {', '.join(given)}")
    if not given:
        raise spec_error("structure", f"missing: give one of {', '.join(STRUCTURE_SOURCES)}")
    return STRUCTURE_SOURCES[given[0]].from_dict(d, base_dir)


def engine_context(structure: StructureSection) -> EngineContext:
    return EngineContext(preset=getattr(structure, "preset", None), supercell=structure.supercell)
