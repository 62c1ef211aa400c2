"""A small training-data campaign on the model engine, written in the export format.

The paper's BiFeO3 protocol (section IV), scaled down: a pool of ``n_structures`` atomic structures sampled
at equal intervals from one spin-lattice trajectory whose bath is ramped over ``pool_temperatures_k``; then

- arm ``sld``: from every pool structure (its positions and velocities) an SLD segment of ``sld_steps``
  steps at the structure's pool temperature; every step's state is one frame (the start state is not
  saved, as the paper saves "the 20 trajectory snapshots");
- arm ``reference``: every pool structure with ``reference_per_structure`` uniformly random spin
  configurations, each one static engine evaluation (one "reference point");
- arm ``test``: independent SLD trajectories (own structure, own seeds) at ``test_temperatures_k``.

How the SLD segments start (``start``) is not stated in the paper and changes the data (see
docs/fig3_benchmark.md):

- ``random``: the segment starts from uniformly random spins (the same kind of spins as the reference arm);
- ``thermal``: the spins are first thermalised on the frozen structure (``thermalise_steps`` spin-only
  stochastic LLG steps at the segment's temperature), then the coupled segment runs. The thermalisation
  calls are counted in the manifest (``thermalise_engine_calls``) but are not saved as frames.

The test trajectories always start thermalised and run ``test_equilibrate_steps`` coupled steps before
the first saved frame, so that they look like the production SLD a potential is meant for.

Every frame records its wall time (``cost_s``: the engine evaluation plus the dynamics step that made the
state) so that the cost ratio of the two arms can be measured from the data; on the model engine it is
about 1, unlike DFT, where warm-started SLD steps need fewer SCF iterations (the paper: ≈ 2 SLD snapshots
per reference point).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.analysis.order import neel_vector
from sld_workflows.dynamics.initial import maxwell_boltzmann_velocities_a_per_fs
from sld_workflows.dynamics.schedules import TemperatureSchedule
from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.dynamics.step import advance
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.evaluation import Evaluation
from sld_workflows.geometry import g_type_signs
from sld_workflows.mlbench import BenchmarkError
from sld_workflows.state import SLDState

START_MODES = ("random", "thermal")
ARMS = ("sld", "reference", "test")
MANIFEST_NAME = "manifest.json"
UNITS = {"energy": "eV", "length": "Å", "force": "eV/Å", "stress": "eV/Å^3", "moment": "μB",
         "magnetic_force": "eV/μB (−∂E/∂M, transverse to M)"}


@dataclasses.dataclass(frozen=True)
class CampaignSettings:
    """One model-engine campaign (all counts per arm; times in fs, temperatures in K)."""

    preset: str = "bifeo3_2x2x2"
    n_structures: int = 20
    sld_steps: int = 20
    reference_per_structure: int = 10
    start: str = "random"
    thermalise_steps: int = 300
    pool_temperatures_k: tuple[float, float] = (300.0, 900.0)
    pool_equilibrate_steps: int = 400
    pool_stride_steps: int = 40
    test_temperatures_k: tuple[float, ...] = (300.0, 600.0)
    test_steps: int = 200
    test_every: int = 10
    test_equilibrate_steps: int = 200
    dt_fs: float = 0.5
    alpha: float = 0.2
    friction_per_fs: float = 0.02
    seed: int = 1

    def __post_init__(self) -> None:
        if self.start not in START_MODES:
            raise BenchmarkError(f"start: must be one of {START_MODES}, got {self.start!r}")
        for name in ("n_structures", "sld_steps", "reference_per_structure", "pool_stride_steps",
                     "test_steps", "test_every"):
            if int(getattr(self, name)) < 1:
                raise BenchmarkError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        object.__setattr__(self, "pool_temperatures_k", tuple(float(t) for t in self.pool_temperatures_k))
        object.__setattr__(self, "test_temperatures_k", tuple(float(t) for t in self.test_temperatures_k))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _settings(c: CampaignSettings, temperature_k: float, seed: int, ensemble: str = "nvt") -> DynamicsSettings:
    return DynamicsSettings(
        dt_fs=c.dt_fs, alpha=c.alpha, temperature=TemperatureSchedule.constant(temperature_k), ensemble=ensemble,
        friction_per_fs=c.friction_per_fs, spin_scheme="sib-fixed-field", seed=seed,
    )


def uniform_random_spins(state: SLDState, rng: np.random.Generator) -> SLDState:
    """``state`` with uniformly random directions on its magnetic sites (isotropic Gaussian vectors)."""
    spins = np.where(state.magnetic[:, None], rng.standard_normal((state.n_sites, 3)), 0.0)
    return state.replace(spins=spins)


class _Runner:
    """Engine + a call counter and wall-time clock (the cost records of the frames)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.calls = 0

    def evaluate(self, state: SLDState) -> Evaluation:
        self.calls += 1
        return self.engine.evaluate(state)

    def run(self, state, evaluation, settings, steps, on_step=None):
        for _ in range(steps):
            t0 = time.perf_counter()
            state, evaluation = advance(state, evaluation, settings, self.evaluate)
            if on_step is not None:
                on_step(state, evaluation, time.perf_counter() - t0)
        return state, evaluation

    def thermalise_spins(self, state: SLDState, c: CampaignSettings, temperature_k: float, seed: int) -> SLDState:
        """Spin-only stochastic LLG on the frozen structure (velocities kept for the coupled run)."""
        settings = _settings(c, temperature_k, seed, ensemble="spin-only")
        state, _ = self.run(state, self.evaluate(state), settings, c.thermalise_steps)
        return state.replace(step=0, time_fs=0.0)


def frame(state: SLDState, evaluation: Evaluation, info: dict[str, Any]):
    """One frame as ``ase.Atoms`` with the export's MACE-style keys."""
    from ase import Atoms

    atoms = Atoms(symbols=list(state.species), positions=state.positions, cell=state.cell, pbc=state.pbc)
    atoms.info["REF_energy"] = float(evaluation.energy_ev)
    if evaluation.stress_ev_per_a3 is not None:
        atoms.info["REF_stress"] = np.asarray(evaluation.stress_ev_per_a3, dtype=float).reshape(9)
    atoms.new_array("REF_forces", np.asarray(evaluation.forces_ev_per_a, dtype=float))
    atoms.new_array("REF_magmom", state.spins * state.moments[:, None])
    atoms.new_array("REF_magforces", np.asarray(evaluation.fields_ev_per_mub, dtype=float))
    atoms.info.update(info)
    return atoms


def _neel(state: SLDState, signs: np.ndarray) -> float:
    return neel_vector(state.spins, signs)[1]


def structure_pool(c: CampaignSettings, runner: _Runner, state0: SLDState) -> list[tuple[SLDState, float]]:
    """``n_structures`` (state, bath temperature) snapshots at equal intervals of one trajectory whose bath
    is ramped linearly over ``pool_temperatures_k`` (the paper: an NpT MD over 300–900 K)."""
    t_lo, t_hi = c.pool_temperatures_k
    rng = np.random.default_rng([c.seed, 0])
    state = uniform_random_spins(state0, rng)
    state = state.replace(velocities=maxwell_boltzmann_velocities_a_per_fs(state.masses_amu, t_lo, c.seed))
    state, ev = runner.run(state, runner.evaluate(state), _settings(c, t_lo, c.seed), c.pool_equilibrate_steps)
    pool = []
    temps = np.linspace(t_lo, t_hi, c.n_structures) if c.n_structures > 1 else np.array([t_lo])
    for k, temp in enumerate(temps):
        state, ev = runner.run(state, ev, _settings(c, float(temp), c.seed + 1 + k), c.pool_stride_steps)
        pool.append((state.replace(step=0, time_fs=0.0), float(temp)))
    return pool


def generate_campaign(out_dir: str | Path, settings: CampaignSettings | None = None, name: str | None = None) -> Path:
    """Run the campaign and write ``sld.extxyz``, ``reference.extxyz``, ``test.extxyz`` and
    ``manifest.json`` to ``out_dir``; returns ``out_dir``."""
    from ase.io import write

    c = settings or CampaignSettings()
    name = name or f"{c.preset}_{c.start}_n{c.n_structures}_seed{c.seed}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state0, engine = make_preset(c.preset)
    signs = g_type_signs(state0)
    runner = _Runner(engine)
    t_start = time.perf_counter()
    pool = structure_pool(c, runner, state0)
    frames: dict[str, list] = {arm: [] for arm in ARMS}
    neel: dict[str, list[float]] = {arm: [] for arm in ARMS}
    thermalise_calls = 0

    for k, (structure, temp) in enumerate(pool):
        seed_k = 1000 * c.seed + k
        rng = np.random.default_rng([seed_k, 1])
        # reference arm: uniformly random spins on the pool structure, one static evaluation each
        for r in range(c.reference_per_structure):
            s = uniform_random_spins(structure, rng)
            t0 = time.perf_counter()
            ev = runner.evaluate(s)
            frames["reference"].append(frame(s, ev, {
                "campaign": name, "arm": "reference", "trajectory": f"ref-{k}", "structure": k, "step": r,
                "temperature_k": temp, "cost_s": time.perf_counter() - t0}))
            neel["reference"].append(_neel(s, signs))
        # sld arm: one segment per structure
        s = uniform_random_spins(structure, rng)
        if c.start == "thermal":
            before = runner.calls
            s = runner.thermalise_spins(s, c, temp, seed_k + 7)
            thermalise_calls += runner.calls - before

        def save(state, ev, dt_s, k=k, temp=temp):
            frames["sld"].append(frame(state, ev, {
                "campaign": name, "arm": "sld", "trajectory": f"sld-{k}", "structure": k, "step": state.step,
                "temperature_k": temp, "cost_s": dt_s}))
            neel["sld"].append(_neel(state, signs))

        runner.run(s, runner.evaluate(s), _settings(c, temp, seed_k), c.sld_steps, save)

    for t_index, temp in enumerate(c.test_temperatures_k):
        seed_t = 777_000 + 100 * c.seed + t_index
        rng = np.random.default_rng([seed_t, 2])
        s = uniform_random_spins(state0, rng)
        s = s.replace(velocities=maxwell_boltzmann_velocities_a_per_fs(s.masses_amu, temp, seed_t))
        s = runner.thermalise_spins(s, c, temp, seed_t + 1)
        settings = _settings(c, temp, seed_t)
        s, ev = runner.run(s, runner.evaluate(s), settings, c.test_equilibrate_steps)

        def save_test(state, ev, dt_s, temp=temp, t_index=t_index):
            if state.step % c.test_every == 0:
                frames["test"].append(frame(state, ev, {
                    "campaign": name, "arm": "test", "trajectory": f"test-{t_index}", "structure": -1 - t_index,
                    "step": state.step, "temperature_k": temp, "cost_s": dt_s}))
                neel["test"].append(_neel(state, signs))

        runner.run(s, ev, settings, c.test_steps, save_test)

    arms = {}
    for arm in ARMS:
        path = out / f"{arm}.extxyz"
        write(path, frames[arm], format="extxyz")
        costs = [a.info["cost_s"] for a in frames[arm]]
        arms[arm] = {"file": path.name, "frames": len(frames[arm]), "cost_s_total": float(np.sum(costs)),
                     "cost_s_per_frame": float(np.mean(costs)) if costs else None,
                     "neel_mean": float(np.mean(neel[arm])), "neel_std": float(np.std(neel[arm]))}
    manifest = {
        "campaign": name, "format": "extxyz", "keys": "MACE-style REF_*", "units": UNITS,
        "engine": {"kind": "model", "preset": c.preset}, "generator": c.as_dict(), "arms": arms,
        "thermalise_engine_calls": thermalise_calls, "engine_calls": runner.calls,
        "wall_time_s": time.perf_counter() - t_start,
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return out
