"""The pool of initial structures of a campaign.

Two sources:

- ``npt``: one NpT spin-lattice run of the campaign's own (model) engine, equilibrated at ``start_k``,
  then ramped linearly to ``end_k`` while a snapshot is taken every ``interval_steps`` steps — the
  paper's protocol (an NpT MLFF run across 300–900 K, sampled at equal intervals). Each entry keeps the
  run's positions, cell, velocities and spins and the bath temperature at which it was taken (its SLD
  trajectory then runs at that temperature).
- ``files``: structure files ASE reads (extxyz, POSCAR, cif, ...), in the site order of the spec's
  ``structure`` section (whose moments and initial spins they take); velocities from the file if it
  has them, else zero; bath temperature ``pool.temperature_k``.

Which entries are test structures: ``n_test`` entries spread evenly over the pool (the middle one for
``n_test = 1``), so test trajectories sample the same temperature range and share no structure with
the training arms.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sld_workflows.schema import spec_error
from sld_workflows.state import SLDState


@dataclasses.dataclass(frozen=True)
class PoolEntry:
    index: int
    state: SLDState
    temperature_k: float
    test: bool


def test_indices(n_total: int, n_test: int) -> list[int]:
    if n_test == 0:
        return []
    return [int(i) for i in np.rint(np.linspace(0, n_total - 1, n_test + 2)[1:-1])]


def build_pool(spec) -> list[PoolEntry]:
    """The pool entries of a :class:`~sld_workflows.campaigns.spec.CampaignSpec` (nothing is written)."""
    pool = spec.raw["pool"]
    n_total = pool["n_structures"] + pool["n_test"]
    tests = set(test_indices(n_total, pool["n_test"]))
    if pool["source"] == "files":
        states = _from_files(spec, pool["files"])
        temps = [pool["temperature_k"]] * n_total
    else:
        states, temps = _from_npt(spec, pool["npt"], n_total)
    return [PoolEntry(i, s.replace(step=0, time_fs=0.0), float(t), i in tests)
            for i, (s, t) in enumerate(zip(states, temps, strict=True))]


def _from_files(spec, files: list[str]) -> list[SLDState]:
    import ase.io

    base = spec.base_run_spec(temperature_k=300.0, steps=1, seed=0).build_initial_state()
    out = []
    for i, path in enumerate(files):
        key = f"pool.files[{i}]"
        try:
            atoms = ase.io.read(path, index=0)
        except Exception as exc:  # ASE raises many types for unreadable files
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise spec_error(key, f"cannot read {path}: {reason}") from None
        species = tuple(atoms.get_chemical_symbols())
        if species != base.species:
            raise spec_error(key, f"{path}: {len(species)} sites; the site order/species must be those of the "
                                  f"structure section ({len(base.species)} sites)")
        velocities = atoms.get_velocities() if atoms.has("momenta") else None
        if velocities is not None:
            from ase.units import fs

            velocities = velocities * fs  # ASE velocity unit -> Å/fs
        out.append(base.replace(positions=np.array(atoms.positions, dtype=float),
                                cell=np.array(atoms.cell[:], dtype=float),
                                velocities=np.zeros_like(base.velocities) if velocities is None else velocities))
    return out


def _from_npt(spec, cfg: dict, n_total: int) -> tuple[list[SLDState], list[float]]:
    from sld_workflows.dynamics.step import advance
    from sld_workflows.run.spec import RunSpec

    eq, every, dt = cfg["equilibration_steps"], cfg["interval_steps"], cfg["dt_fs"]
    steps = eq + n_total * every
    t_eq, t_end = eq * dt, steps * dt
    points = [[0.0, cfg["start_k"]], [t_eq, cfg["start_k"]], [t_end, cfg["end_k"]]]
    if t_eq == 0.0:
        points = points[1:]
    dynamics = {**spec.raw["dynamics"], "ensemble": "npt", "dt_fs": dt, "steps": steps, "seed": cfg["seed"],
                "temperature": {"points": points}, "pressure_gpa": cfg["pressure_gpa"],
                "friction_per_fs": cfg["friction_per_fs"], "alpha": cfg["alpha"]}
    run = RunSpec.from_dict({"name": f"{spec.name}-pool", "structure": spec.raw["structure"],
                             "spins": spec.raw["spins"], "engine": spec.raw["engine"], "dynamics": dynamics,
                             "velocities": {"temperature_k": cfg["start_k"]}})
    state, engine, settings = run.build_initial_state(), run.build_engine(), run.settings
    evaluation = engine.evaluate(state)
    states, temps = [], []
    for n in range(1, steps + 1):
        state, evaluation = advance(state, evaluation, settings, engine.evaluate)
        if n > eq and (n - eq) % every == 0:
            states.append(state)
            temps.append(settings.temperature(state.time_fs))
    return states, temps
