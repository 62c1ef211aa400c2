"""What a material preset is (:class:`Preset`), the order parameters it may ask for
(:class:`OrderParameter`) and the registry that maps names to presets (:class:`PresetRegistry`)."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pymatgen.core import Structure

from sld_workflows.engines.model.terms import Term
from sld_workflows.errors import SpecError
from sld_workflows.state import SLDState


class OrderParameter(enum.StrEnum):
    """Order parameters a preset can declare; :mod:`sld_workflows.analysis.order` computes each one
    (the keys it adds to ``order_parameters`` are listed beside each member)."""

    MAGNETISATION_VECTOR = "magnetisation_vector"  #: m_x, m_y, m_z
    MAGNETISATION_Z = "magnetisation_z"  #: m_z
    SUBLATTICE_EQ6 = "sublattice_eq6"  #: m_s_eq6 — the paper's Eq. (6) over the 4 pyrochlore sublattices
    AIAO = "aiao"  #: m_s — signed projection on the local <111> axes (+1 all-in, −1 all-out)
    C_OVER_A = "c_over_a"  #: c_over_a, c_axis — needs Preset.conventional_cell_atoms
    COLLINEARITY = "collinearity"  #: collinearity — largest eigenvalue of the nematic tensor
    NEEL = "neel"  #: neel, L_x, L_y, L_z — G-type Néel vector from the two-colouring


def check_supercell(supercell: Any) -> tuple[int, int, int]:
    """Three positive integers, or ``SpecError("supercell", ...)``."""
    try:
        sc = tuple(int(x) for x in supercell)
    except (TypeError, ValueError) as exc:
        raise SpecError("supercell", f"must be three positive integers, got {supercell!r}") from exc
    if len(sc) != 3 or any(x < 1 for x in sc) or any(float(x) != float(y) for x, y in zip(sc, supercell, strict=False)):
        raise SpecError("supercell", f"must be three positive integers, got {supercell!r}")
    return sc


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything the code knows about one material of the model engine.

    - ``name``: the registry key (``structure.preset`` of a run spec);
    - ``structure``: builds the reference cell (a new object per call);
    - ``moments_mub``: moment (μB) per magnetic species; other species carry none;
    - ``terms``: builds the Hamiltonian terms for a state of the reference × any supercell;
    - ``order_parameters``: what :func:`sld_workflows.analysis.order.order_parameters` reports, in order;
    - ``base_supercell``: a fixed supercell applied before the caller's (``bifeo3_2x2x2``);
    - ``conventional_cell_atoms``: atoms of the cubic conventional cell, for c/a (None: not cubic);
    - ``description``: one line for listings.
    """

    name: str
    structure: Callable[[], Structure]
    moments_mub: Mapping[str, float]
    terms: Callable[[SLDState], list[Term]]
    order_parameters: tuple[OrderParameter, ...] = ()
    base_supercell: tuple[int, int, int] = (1, 1, 1)
    conventional_cell_atoms: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"preset name must be a non-empty string, got {self.name!r}")
        if not self.moments_mub or any(float(m) <= 0 for m in self.moments_mub.values()):
            raise ValueError(f"preset {self.name!r}: moments_mub needs at least one positive moment")
        object.__setattr__(self, "order_parameters", tuple(OrderParameter(p) for p in self.order_parameters))
        if OrderParameter.C_OVER_A in self.order_parameters and not self.conventional_cell_atoms:
            raise ValueError(f"preset {self.name!r}: c_over_a needs conventional_cell_atoms")
        object.__setattr__(self, "base_supercell", check_supercell(self.base_supercell))

    def build_structure(self, supercell: Sequence[int] = (1, 1, 1)) -> Structure:
        """The reference structure × ``base_supercell`` × ``supercell``."""
        sc = check_supercell(supercell)
        structure = self.structure()
        sc = tuple(b * s for b, s in zip(self.base_supercell, sc, strict=True))
        if sc != (1, 1, 1):
            structure.make_supercell(list(sc))
        return structure

    def build_state(self, supercell: Sequence[int] = (1, 1, 1)) -> SLDState:
        """Structure × supercell with the preset moments, zero velocities and spins +z."""
        return SLDState.from_structure(self.build_structure(supercell), moments=dict(self.moments_mub))


class PresetRegistry:
    """Name → :class:`Preset`. The package registers every preset module it holds in
    :data:`sld_workflows.engines.model.presets.REGISTRY`; tests and plug-ins may add their own."""

    def __init__(self) -> None:
        self._presets: dict[str, Preset] = {}

    def register(self, preset: Preset) -> Preset:
        if not isinstance(preset, Preset):
            raise TypeError(f"register needs a Preset, got {type(preset).__name__}")
        if preset.name in self._presets:
            raise ValueError(f"preset {preset.name!r} is already registered")
        self._presets[preset.name] = preset
        return preset

    def unregister(self, name: str) -> None:
        self._presets.pop(name)

    @contextlib.contextmanager
    def registered(self, preset: Preset) -> Iterator[Preset]:
        """Register ``preset`` for the duration of a ``with`` block."""
        self.register(preset)
        try:
            yield preset
        finally:
            self.unregister(preset.name)

    def get(self, name: str) -> Preset:
        try:
            return self._presets[name]
        except (KeyError, TypeError):
            raise SpecError("preset", f"unknown preset {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._presets)

    def __contains__(self, name: object) -> bool:
        return name in self._presets

    def __iter__(self) -> Iterator[Preset]:
        return iter(tuple(self._presets.values()))
