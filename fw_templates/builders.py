"""Python builders of ready SLD workflows (a thin layer over :mod:`sld_workflows.workflows.manage`).

    from fw_templates.builders import annealing_campaign, static_constrained_batch
    with open_session(project="sld_project", create=True) as session:      # or launchpad_file=...
        ids = annealing_campaign(session, "fw_templates/annealing.yaml", seeds=range(8))

Every trajectory is its own workflow (one workflow per trajectory keeps FireWorks' per-Firework cost
flat and its locks uncontended); all inputs are validated before anything is written.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from typing import Any

from sld_workflows.run.spec import RunSpec
from sld_workflows.store.connection import Session
from sld_workflows.workflows.manage import load_input, submit


def _spec_dict(spec: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A mapping to vary per trajectory: a copy of ``spec``, or the normalised spec of a file (its
    structure path made absolute, so that the varied copies still find it)."""
    if isinstance(spec, Mapping):
        return copy.deepcopy(dict(spec))
    return RunSpec.from_file(spec).spec


def single_trajectory(session: Session, spec: str | os.PathLike | Mapping[str, Any], layout: str | None = None) -> str:
    """One trajectory from a run spec; returns its id."""
    return submit(session, load_input(spec), layout=layout)


def annealing_campaign(
    session: Session, spec: str | os.PathLike | Mapping[str, Any], seeds: Iterable[int],
    start_k: float | None = None, end_k: float | None = None, duration_fs: float | None = None,
) -> list[str]:
    """Independent anneals of the same system, one per seed (and optionally a new ramp)."""
    base = _spec_dict(spec)
    inputs = []
    for seed in seeds:
        d = copy.deepcopy(base)
        d["dynamics"]["seed"] = int(seed)
        d["name"] = f"{base.get('name', 'anneal')}-s{seed}"
        if start_k is not None or end_k is not None or duration_fs is not None:
            ramp = dict((d["dynamics"].get("temperature") or {}).get("ramp") or {})
            ramp.update({k: v for k, v in (("start_k", start_k), ("end_k", end_k), ("duration_fs", duration_fs))
                         if v is not None})
            d["dynamics"]["temperature"] = {"ramp": ramp}
        inputs.append(load_input(d))  # validate all before writing any
    return [submit(session, inp) for inp in inputs]


def static_constrained_batch(
    session: Session, spec: str | os.PathLike | Mapping[str, Any], seeds: Iterable[int], layout: str = "split",
) -> list[str]:
    """Static constrained calculations (steps 0) with random spins, one per seed (training data)."""
    base = _spec_dict(spec)
    inputs = []
    for seed in seeds:
        d = copy.deepcopy(base)
        d["dynamics"]["steps"] = 0
        d["dynamics"]["seed"] = int(seed)
        d["spins"] = {"init": "random"}  # random directions drawn from the seed
        d["name"] = f"{base.get('name', 'static')}-s{seed}"
        inputs.append(load_input(d))
    return [submit(session, inp, layout=layout) for inp in inputs]
