"""Atomate-style builders: functions that return FireWorks ``Workflow`` objects, never submit.

    from fireworks import LaunchPad
    from sld_workflows.workflows.builders import SLDWorkflowSettings, get_wf_sld_trajectory

    lp = LaunchPad.from_file("my_launchpad.yaml")
    lp.add_wf(get_wf_sld_trajectory("fw_templates/specs/single_trajectory.yaml"))
    lp.bulk_add_wfs(get_wfs_annealing("fw_templates/specs/annealing.yaml", seeds=range(8)))

Each workflow starts with registration Firework(s) (:mod:`sld_workflows.workflows.native`): the
trajectory is validated and stored when a worker runs it, through that worker's LaunchPad, so the
builders need no connection. Every run spec is validated here too, before any workflow is returned.
Settings that are not physics (layout, name, FireWorks categories and priority) are one serialisable
dataclass, :class:`~sld_workflows.workflows.native.SLDWorkflowSettings`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from fireworks import Workflow

from sld_workflows.errors import SLDError
from sld_workflows.workflows.native import SLDWorkflowSettings, embeddable_spec, native_workflow

#: run-spec sections used for a bare pymatgen ``Structure`` (NVT 300 K, 100 steps); override any of
#: them with ``spec_overrides`` (merged key by key), which must also give the ``engine`` section
#: (``vasp`` or ``analytic``: the model engine needs a preset, see docs/run_spec.md)
STRUCTURE_DEFAULTS: dict[str, Any] = {
    "spins": {"init": "ferro", "direction": [0, 0, 1]},
    "velocities": {"temperature_k": 300},
    "dynamics": {"dt_fs": 0.1, "steps": 100, "ensemble": "nvt", "temperature": 300, "alpha": 0.1,
                 "friction_per_fs": 0.02, "spin_scheme": "sib", "seed": 1},
    "output": {"every": 10},
}

SpecSource = str | os.PathLike | Mapping[str, Any]


def _merge(base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_spec_of(spec_or_structure: Any, spec_overrides: Mapping[str, Any] | None = None,
                moments: Mapping[str, float] | None = None) -> dict[str, Any]:
    """An embeddable run-spec mapping from a run spec (YAML path or mapping) or a pymatgen ``Structure``
    (with :data:`STRUCTURE_DEFAULTS`; ``moments`` per species unless the structure has ``magmom``)."""
    if hasattr(spec_or_structure, "lattice") and hasattr(spec_or_structure, "as_dict"):
        structure: dict[str, Any] = {"pymatgen": spec_or_structure.as_dict()}
        if moments is not None:
            structure["moments"] = dict(moments)
        base = {"name": spec_or_structure.composition.reduced_formula, "structure": structure,
                **copy.deepcopy(STRUCTURE_DEFAULTS)}
    elif isinstance(spec_or_structure, (str, os.PathLike, Mapping)):
        base = embeddable_spec(spec_or_structure, validate=False)
    else:
        raise SLDError(f"expected a run spec (YAML path or mapping) or a pymatgen Structure, "
                       f"got {type(spec_or_structure).__name__}")
    return embeddable_spec(_merge(base, spec_overrides))  # validated once, here


def get_wf_sld_trajectory(spec_or_structure: Any, settings: SLDWorkflowSettings | None = None,
                          spec_overrides: Mapping[str, Any] | None = None,
                          moments: Mapping[str, float] | None = None) -> Workflow:
    """One SLD trajectory (any run spec: NVT, NpT, anneal, VASP...) as a workflow for ``lp.add_wf``."""
    return native_workflow([run_spec_of(spec_or_structure, spec_overrides, moments)], settings, validate=False)


def _seeded(base: dict[str, Any], seed: int, suffix: str) -> dict[str, Any]:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SLDError(f"seeds must be integers, got {seed!r}")
    d = copy.deepcopy(base)
    d["dynamics"]["seed"] = seed
    d["name"] = f"{base.get('name', suffix)}-s{seed}"
    return d


def get_wfs_annealing(spec: SpecSource, seeds: Iterable[int], settings: SLDWorkflowSettings | None = None,
                      start_k: float | None = None, end_k: float | None = None,
                      duration_fs: float | None = None) -> list[Workflow]:
    """Independent anneals of one system, one workflow per seed (``lp.bulk_add_wfs``), optionally
    with a new ramp. One workflow per trajectory keeps FireWorks' per-Firework cost flat."""
    base = embeddable_spec(spec, validate=False)
    ramp_update = {k: v for k, v in (("start_k", start_k), ("end_k", end_k), ("duration_fs", duration_fs))
                   if v is not None}
    specs = []
    for seed in seeds:
        d = _seeded(base, seed, "anneal")
        if ramp_update:
            ramp = dict((d["dynamics"].get("temperature") or {}).get("ramp") or {}) \
                if isinstance(d["dynamics"].get("temperature"), Mapping) else {}
            d["dynamics"]["temperature"] = {"ramp": {**ramp, **ramp_update}}
        specs.append(embeddable_spec(d))  # all validated before any workflow is built
    return [native_workflow([d], settings, validate=False) for d in specs]


def get_wf_static_constrained(spec_or_structure: Any, seeds: Iterable[int],
                              settings: SLDWorkflowSettings | None = None,
                              spec_overrides: Mapping[str, Any] | None = None,
                              moments: Mapping[str, float] | None = None) -> Workflow:
    """A batch of static constrained-moment calculations (``steps: 0``, random spins drawn from each
    seed: training references), one registration Firework per seed in one workflow. The split
    layout is the default (engine in its own Firework and launch directory)."""
    base = run_spec_of(spec_or_structure, spec_overrides, moments) if not isinstance(
        spec_or_structure, (str, os.PathLike, Mapping)) or spec_overrides else embeddable_spec(spec_or_structure,
                                                                                               validate=False)
    settings = settings or SLDWorkflowSettings(layout="split")
    specs = []
    for seed in seeds:
        d = _seeded(base, seed, "static")
        d["dynamics"]["steps"] = 0
        d["spins"] = {"init": "random"}
        specs.append(embeddable_spec(d))
    if not specs:
        raise SLDError("seeds: give at least one seed")
    if settings.name:  # one name per trajectory
        settings = dataclasses.replace(settings, name=None)
    return native_workflow(specs, settings, name=f"sld:{base.get('name', 'static')}-batch", validate=False)


__all__ = [
    "STRUCTURE_DEFAULTS",
    "SLDWorkflowSettings",
    "get_wf_sld_trajectory",
    "get_wf_static_constrained",
    "get_wfs_annealing",
    "run_spec_of",
]
