"""The one coupled spin-lattice step, shared by every driver.

A step n → n+1 starts from a state and *its* evaluation (energy, forces, fields at that state) and
needs one more engine call at the new state (plus one at the SIB midpoint for the full scheme):

1. :func:`midpoint_state` — SIB predictor; the state to evaluate for the midpoint field
   (``None`` for ``sib-fixed-field`` or a non-magnetic system);
2. :func:`propagate` — spins by the SIB corrector (positions held at rₙ), then the lattice:
   [barostat (npt)] · B(Δt/2) · A(Δt/2) · O(Δt) · A(Δt/2) (BAOAB; NVE drops O). The result is the
   *provisional* state n+1: new positions and spins, half-step velocities;
3. the engine evaluates the provisional state;
4. :func:`complete` — the final half kick B(Δt/2) with the new forces.

Drivers: :func:`advance` chains these with an ``evaluate`` callback (the in-process driver); the
FireWorks tasks call the same phase functions with one engine Firework per evaluation. All noise of
step n comes from (seed, n), so any phase can be recomputed after a crash and gives the same bits.

Splitting note: spins move with the lattice frozen at rₙ and the lattice with spins frozen at sₙ₊₁
(Lie splitting, first order in the spin-lattice coupling; each sub-integrator is second order).
The barostat uses the stress of step n and acts before the kick; forces of step n are therefore
applied at the slightly rescaled positions, an O(Δt/τ_p) inconsistency of the dynamics only:
every stored frame pairs a state with the evaluation of exactly that state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sld_workflows.dynamics import lattice, spin
from sld_workflows.dynamics.rng import Stream, normals
from sld_workflows.dynamics.settings import DynamicsSettings, Ensemble, SpinScheme
from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState

EvaluateFn = Callable[[SLDState], Evaluation]


def _temperature_k(state: SLDState, settings: DynamicsSettings) -> float:
    return settings.temperature(state.time_fs)


def spin_noise(state: SLDState, settings: DynamicsSettings) -> np.ndarray:
    """ΔW of step ``state.step`` (eV/μB·fs), a pure function of (seed, step)."""
    xi = normals(settings.seed, state.step, Stream.SPIN_NOISE, (state.n_sites, 3))
    return spin.noise_increment_ev_fs_per_mub(
        xi, state.moments, settings.alpha, _temperature_k(state, settings), settings.dt_fs, settings.g_factor
    )


def _check_start(state: SLDState, evaluation: Evaluation) -> None:
    if not state.unit_spins:
        raise ValueError("a step must start from a state with unit spins, not a SIB midpoint state")
    evaluation.check_matches(state)


def midpoint_state(state: SLDState, evaluation: Evaluation, settings: DynamicsSettings) -> SLDState | None:
    """The SIB midpoint s̄ (positions rₙ) to evaluate for the full scheme, else ``None``."""
    _check_start(state, evaluation)
    if settings.spin_scheme != SpinScheme.SIB or not np.any(state.magnetic):
        return None
    s_bar = spin.sib_predict(
        state.spins, evaluation.fields_ev_per_mub, spin_noise(state, settings),
        settings.alpha, settings.dt_fs, settings.g_factor,
    )
    return state.replace(spins=s_bar, unit_spins=False)


def propagate(
    state: SLDState,
    evaluation: Evaluation,
    settings: DynamicsSettings,
    midpoint_evaluation: Evaluation | None = None,
) -> SLDState:
    """Provisional state n+1: spins and positions advanced, velocities at the half step."""
    _check_start(state, evaluation)
    dt = settings.dt_fs
    spins = state.spins
    if np.any(state.magnetic):
        dw = spin_noise(state, settings)
        s_bar = spin.sib_predict(state.spins, evaluation.fields_ev_per_mub, dw, settings.alpha, dt, settings.g_factor)
        if settings.spin_scheme == SpinScheme.SIB:
            if midpoint_evaluation is None:
                raise ValueError("spin_scheme 'sib' needs the evaluation of the midpoint state")
            midpoint_evaluation.check_matches(state)
            field_mid = midpoint_evaluation.fields_ev_per_mub
        else:
            field_mid = evaluation.fields_ev_per_mub
        spins = spin.sib_correct(state.spins, s_bar, field_mid, dw, settings.alpha, dt, settings.g_factor)

    positions, cell, velocities = state.positions, state.cell, state.velocities
    if settings.ensemble != Ensemble.SPIN_ONLY:
        masses = state.masses_amu
        temperature = _temperature_k(state, settings)
        if settings.ensemble == Ensemble.NPT:
            if evaluation.stress_ev_per_a3 is None:
                raise ValueError("ensemble 'npt' needs an engine that returns stress")
            volume = state.volume_a3
            kinetic = lattice.kinetic_pressure_tensor_ev_per_a3(velocities, masses, volume)
            pressure = kinetic - evaluation.stress_ev_per_a3
            xi6 = normals(settings.seed, state.step, Stream.BAROSTAT_NOISE, (6,))
            strain = lattice.cell_rescaling_strain(
                pressure, settings.pressure_ev_per_a3, volume, temperature,
                settings.compressibility_a3_per_ev, settings.tau_p_fs, dt, settings.cell_dof, xi6,
            )
            positions, cell, velocities = lattice.apply_strain(positions, cell, velocities, strain)
        velocities = lattice.kick(velocities, evaluation.forces_ev_per_a, masses, 0.5 * dt)
        if settings.ensemble == Ensemble.NVE:
            positions = lattice.drift(positions, velocities, dt)
        else:
            positions = lattice.drift(positions, velocities, 0.5 * dt)
            xi = normals(settings.seed, state.step, Stream.LATTICE_NOISE, (state.n_sites, 3))
            velocities = lattice.ornstein_uhlenbeck(velocities, masses, temperature, settings.friction_per_fs, dt, xi)
            positions = lattice.drift(positions, velocities, 0.5 * dt)

    return state.replace(
        positions=positions, cell=cell, velocities=velocities, spins=spins,
        time_fs=state.time_fs + dt, step=state.step + 1,
    )


def complete(provisional: SLDState, evaluation: Evaluation, settings: DynamicsSettings) -> SLDState:
    """State n+1: the final half kick with the forces evaluated at the provisional state."""
    evaluation.check_matches(provisional)
    if settings.ensemble == Ensemble.SPIN_ONLY:
        return provisional
    velocities = lattice.kick(
        provisional.velocities, evaluation.forces_ev_per_a, provisional.masses_amu, 0.5 * settings.dt_fs
    )
    return provisional.replace(velocities=velocities)


def advance(
    state: SLDState, evaluation: Evaluation, settings: DynamicsSettings, evaluate: EvaluateFn
) -> tuple[SLDState, Evaluation]:
    """One full step with an in-process engine: returns (state n+1, its evaluation)."""
    mid = midpoint_state(state, evaluation, settings)
    mid_eval = evaluate(mid) if mid is not None else None
    provisional = propagate(state, evaluation, settings, mid_eval)
    new_eval = evaluate(provisional)
    return complete(provisional, new_eval, settings), new_eval
