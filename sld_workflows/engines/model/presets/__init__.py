"""Material presets of the model engine: one module per material, one registry.

``make_preset(name, supercell, overrides, external_field_ev_per_mub) -> (SLDState, ModelEngine)``.
The state is the preset structure (× supercell) with the preset moments (μB), zero velocities and
all spins +z; callers re-initialise the spins. ``overrides`` switch off or rescale term groups
(:mod:`._overrides`).

Each material is a module of this package that defines ``PRESETS``, a tuple of
:class:`~._base.Preset` (structure builder, moments, terms with their sourced constants, order
parameters). The package imports every such module (names without a leading underscore) and
registers its presets in :data:`REGISTRY`, so adding a material is adding one module; code outside
the package may register more (``REGISTRY.register(preset)`` or ``with REGISTRY.registered(preset):``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Structure

from sld_workflows.engines.model.engine import ModelEngine
from sld_workflows.engines.model.presets._base import OrderParameter, Preset, PresetRegistry, check_supercell
from sld_workflows.engines.model.presets._overrides import OVERRIDE_KEYS, apply_overrides, check_overrides
from sld_workflows.engines.model.terms import Zeeman
from sld_workflows.errors import SpecError
from sld_workflows.state import SLDState

__all__ = [
    "OVERRIDE_KEYS", "PRESET_NAMES", "REGISTRY", "OrderParameter", "Preset", "PresetRegistry",
    "check_supercell", "get_preset", "make_preset", "preset_engine", "preset_names", "preset_structure",
]

#: every preset known to :func:`make_preset`, by name
REGISTRY = PresetRegistry()

def _register_material_modules(registry: PresetRegistry) -> None:
    """Import every material module of this package (alphabetically) and register its PRESETS."""
    for name in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        module = importlib.import_module(f"{__name__}.{name}")
        presets = getattr(module, "PRESETS", None)
        if presets is None:
            raise ImportError(f"preset module {module.__name__} defines no PRESETS tuple")
        for preset in presets:
            registry.register(preset)


_register_material_modules(REGISTRY)


def preset_names() -> tuple[str, ...]:
    """Names of the registered presets (built-in ones by module name, then those added at run time)."""
    return REGISTRY.names()


def __getattr__(name: str):
    # PRESET_NAMES follows the registry (presets registered at run time included)
    if name == "PRESET_NAMES":
        return REGISTRY.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_preset(name: str) -> Preset:
    """The registered preset ``name``, or ``SpecError("preset", ...)``."""
    return REGISTRY.get(name)


def preset_structure(name: str, supercell: Sequence[int] = (1, 1, 1)) -> Structure:
    """The preset's reference structure × its base supercell × ``supercell``."""
    return get_preset(name).build_structure(supercell)


def _check_field(field_ev_per_mub: Sequence[float]) -> tuple[float, float, float]:
    try:
        field = tuple(float(x) for x in field_ev_per_mub)
    except (TypeError, ValueError) as exc:
        raise SpecError("external_field_ev_per_mub", f"must be 3 numbers, got {field_ev_per_mub!r}") from exc
    if len(field) != 3 or not np.all(np.isfinite(field)):
        raise SpecError("external_field_ev_per_mub", f"must be 3 finite numbers, got {field_ev_per_mub!r}")
    return field


def make_preset(
    name: str,
    supercell: Sequence[int] = (1, 1, 1),
    overrides: dict | None = None,
    external_field_ev_per_mub: Sequence[float] | None = None,
) -> tuple[SLDState, ModelEngine]:
    """(state, engine) of the registered preset ``name``.

    The state: structure × ``supercell``, the preset moments, zero velocities, spins +z.
    ``external_field_ev_per_mub`` adds a uniform Zeeman field (eV/μB).
    """
    state = get_preset(name).build_state(supercell)
    return state, preset_engine(name, state, overrides, external_field_ev_per_mub)


def preset_engine(
    name: str,
    state: SLDState,
    overrides: dict | None = None,
    external_field_ev_per_mub: Sequence[float] | None = None,
) -> ModelEngine:
    """The model engine of preset ``name`` for ``state``, a state of that preset's structure (its
    terms read only positions, cell and species), so a caller that already built the state does not
    build the structure a second time."""
    preset = get_preset(name)
    ov = check_overrides(overrides)
    terms = preset.terms(state)
    if external_field_ev_per_mub is not None:
        terms.append(Zeeman(_check_field(external_field_ev_per_mub)))
    terms = apply_overrides(terms, ov)
    label = name if not ov else f"{name} {ov}"
    return ModelEngine(terms, n_sites=state.n_sites, label=label)
