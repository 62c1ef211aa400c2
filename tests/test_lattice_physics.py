"""Lattice integrators against analytic results (reference/sld_numerics.md §2 T6)."""

import numpy as np
import pytest

from sld_workflows.dynamics import lattice
from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.dynamics.step import advance
from sld_workflows.engines.analytic import HarmonicEngine
from sld_workflows.state import SLDState
from sld_workflows.units import EV_PER_A_AMU_TO_A_PER_FS2, K_B_EV_PER_K


def einstein_crystal(n=400, seed=0):
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n ** (1 / 3)))
    grid = (np.array(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).reshape(3, -1).T[:n] * 2.5).astype(float)
    state = SLDState(species=("Fe",) * n, positions=grid + rng.normal(scale=0.02, size=grid.shape),
                     cell=np.eye(3) * 2.5 * side, velocities=np.zeros((n, 3)), spins=np.zeros((n, 3)),
                     moments=np.zeros(n))
    return state, HarmonicEngine(tuple(map(tuple, grid)), 10.0)


def test_langevin_equipartition_on_a_harmonic_crystal():
    """BAOAB: ⟨KE⟩ = (3/2)N k_BT·(1 − (ω₀Δt/2)²) for full-step velocities, and the configurational
    ⟨k|r−r₀|²⟩ = 3N k_BT exactly (Leimkuhler & Matthews). Both within 3 standard errors, the
    error taken across atoms (independent oscillators). ω₀Δt = 0.083 makes the bias 0.17%."""
    state, engine = einstein_crystal()
    temp, dt, friction = 300.0, 2.0, 0.02
    omega0 = np.sqrt(10.0 / 55.845 * EV_PER_A_AMU_TO_A_PER_FS2)
    settings = DynamicsSettings(dt_fs=dt, alpha=0.0, temperature=temp, ensemble="nvt", friction_per_fs=friction, seed=4)
    ev = engine.evaluate(state)
    ke, pe = [], []
    ref = np.asarray(engine.reference_positions)
    for n in range(12_000):
        state, ev = advance(state, ev, settings, engine.evaluate)
        if n >= 500 and n % 5 == 0:
            ke.append(0.5 * 55.845 * np.sum(state.velocities**2, axis=1) / EV_PER_A_AMU_TO_A_PER_FS2)
            pe.append(10.0 * np.sum((state.positions - ref) ** 2, axis=1))
    kt = K_B_EV_PER_K * temp
    for name, series, expected in (
        ("KE", np.array(ke), 1.5 * kt * (1 - (omega0 * dt / 2) ** 2)),
        ("k r^2", np.array(pe), 3.0 * kt),
    ):
        per_atom = series.mean(axis=0)
        mean, se = per_atom.mean(), per_atom.std(ddof=1) / np.sqrt(per_atom.size)
        assert abs(mean - expected) < 3 * se, f"{name}: {mean:.5g} ± {se:.2g} vs {expected:.5g}"
    # the naive (unbiased) 3/2 k_BT lies within 3 SE too: the BAOAB bias (0.17%) is below the
    # resolution of this run, so the test above does not tell the two apart (it checks the sampling)
    per_atom = np.array(ke).mean(axis=0)
    assert abs(per_atom.mean() - 1.5 * kt) < 3 * per_atom.std(ddof=1) / np.sqrt(per_atom.size)


def test_velocity_verlet_energy_error_is_second_order():
    """NVE on the harmonic crystal: max|ΔE_total| over 500 fs falls 4× per halving of Δt."""
    state, engine = einstein_crystal(n=64)
    state = state.replace(velocities=np.random.default_rng(1).normal(scale=2e-3, size=(64, 3)))
    drifts = []
    for dt in (4.0, 2.0, 1.0):
        settings = DynamicsSettings(dt_fs=dt, ensemble="nve")
        s, ev = state, engine.evaluate(state)
        e0 = ev.energy_ev + lattice.kinetic_energy_ev(s.velocities, s.masses_amu)
        worst = 0.0
        for _ in range(int(500 / dt)):
            s, ev = advance(s, ev, settings, engine.evaluate)
            worst = max(worst, abs(ev.energy_ev + lattice.kinetic_energy_ev(s.velocities, s.masses_amu) - e0))
        drifts.append(worst)
    orders = np.log2(np.array(drifts[:-1]) / np.array(drifts[1:]))
    assert np.all((orders > 1.8) & (orders < 2.2)), orders


def test_cell_rescaling_direction_and_trace():
    """Internal pressure above target expands the cell; the anisotropic strain's trace obeys the
    isotropic volume equation (same drift, same variance)."""
    p = np.diag([0.02, 0.01, 0.0])  # eV/Å³
    xi = np.zeros(6)
    iso = lattice.cell_rescaling_strain(p, 0.0, 1000.0, 0.0, 0.5, 100.0, 1.0, "isotropic", xi)
    ortho = lattice.cell_rescaling_strain(p, 0.0, 1000.0, 0.0, 0.5, 100.0, 1.0, "orthorhombic", xi)
    assert np.all(np.diag(iso) > 0) and np.trace(iso) == pytest.approx(np.trace(ortho))
    assert ortho[0, 0] > ortho[1, 1] > ortho[2, 2] == 0.0
    rng = np.random.default_rng(0)
    draws = np.array([np.trace(lattice.cell_rescaling_strain(np.zeros((3, 3)), 0.0, 1000.0, 300.0, 0.5, 100.0, 1.0,
                                                             "full", rng.standard_normal(6))) for _ in range(20000)])
    kt = K_B_EV_PER_K * 300.0
    expected_var = 2 * kt * 0.5 * 1.0 / (1000.0 * 100.0)
    assert draws.var() == pytest.approx(expected_var, rel=4 * np.sqrt(2 / 20000))
    positions, cell, velocities = lattice.apply_strain(np.eye(3), np.eye(3) * 5, np.ones((3, 3)), np.eye(3) * 0.01)
    np.testing.assert_allclose(cell, np.eye(3) * 5 * np.exp(0.01))
    np.testing.assert_allclose(velocities, np.exp(-0.01))
