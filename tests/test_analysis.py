"""Order parameters and temperature estimators on states with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sld_workflows.analysis.order import (
    COMPUTE,
    aiao_order,
    collinearity,
    conventional_c_over_a,
    conventional_repeats,
    g_type_signs,
    magnetisation,
    neel_vector,
    order_parameters,
    pyrochlore_axes,
    pyrochlore_sublattices,
    sublattice_order_eq6,
)
from sld_workflows.dynamics.lattice import kinetic_temperature_k
from sld_workflows.dynamics.spin import state_spin_temperature_k
from sld_workflows.engines.model import ModelEngine
from sld_workflows.engines.model.presets import PRESET_NAMES, OrderParameter, make_preset
from sld_workflows.engines.model.terms import Zeeman
from sld_workflows.evaluation import Evaluation
from sld_workflows.run.output import spin_temperature_of
from sld_workflows.units import EV_PER_A_AMU_TO_A_PER_FS2, K_B_EV_PER_K


def _random_unit(rng, n):
    s = rng.normal(size=(n, 3))
    return s / np.linalg.norm(s, axis=1)[:, None]


def test_magnetisation_and_collinearity():
    rng = np.random.default_rng(0)
    up = np.tile([0.0, 0.0, 1.0], (100, 1))
    assert magnetisation(up)[1] == pytest.approx(1.0)
    updown = up * np.where(np.arange(100) % 2, 1.0, -1.0)[:, None]
    assert magnetisation(updown)[1] == pytest.approx(0.0, abs=1e-15)
    assert collinearity(updown) == pytest.approx(1.0)
    n = 20000
    s = _random_unit(rng, n)
    # N random unit vectors: each component of m has variance 1/(3N), so 3N|m|² is χ² with 3 degrees
    # of freedom; its 0.1 % and 99.9 % quantiles are 0.0243 and 16.27
    assert np.sqrt(0.0243 / (3 * n)) < magnetisation(s)[1] < np.sqrt(16.27 / (3 * n))
    # √N × the largest eigenvalue of Q of random vectors: 0.1 % and 99.9 % quantiles 0.16 and 1.82
    # (measured over 2000 draws of 20000 vectors); a collinear bias or a broken normalisation leaves it
    assert 0.1 / np.sqrt(n) < collinearity(s) < 2.5 / np.sqrt(n)
    # non-unit (midpoint-like) spins are normalised
    assert magnetisation(up * 0.9)[1] == pytest.approx(1.0)


def test_g_type_signs_and_neel_vector():
    state, _ = make_preset("bifeo3_2x2x2")
    eps = g_type_signs(state)
    assert np.sum(eps == 1) == np.sum(eps == -1) == 8
    assert np.all(eps[~state.magnetic] == 0)
    spins = np.where(state.magnetic[:, None], eps[:, None] * np.array([0.6, 0.8, 0.0]), 0.0)
    vec, mag = neel_vector(spins, eps)
    assert mag == pytest.approx(1.0) and np.allclose(vec, [0.6, 0.8, 0.0])
    assert neel_vector(np.where(state.magnetic[:, None], [0, 0, 1.0], 0.0), eps)[1] == pytest.approx(0.0, abs=1e-15)


def test_pyrochlore_axes_match_reference_and_aiao():
    """Up tetrahedron at (0,0,0), (¼,¼,0), (¼,0,¼), (0,¼,¼) of Fd-3m:2 has axes
    (1,1,1), (−1,−1,1), (−1,1,−1), (1,−1,−1)/√3 (sld_numerics §3.3)."""
    state, _ = make_preset("cd2os2o7")
    axes = pyrochlore_axes(state)
    frac = state.positions @ np.linalg.inv(state.cell)
    expected = {
        (0, 0, 0): (1, 1, 1), (0.25, 0.25, 0): (-1, -1, 1), (0.25, 0, 0.25): (-1, 1, -1), (0, 0.25, 0.25): (1, -1, -1),
    }
    for f, n in expected.items():
        k = np.flatnonzero(np.all(np.abs((frac - f + 0.5) % 1.0 - 0.5) < 1e-6, axis=1) & state.magnetic)
        assert len(k) == 1
        assert np.allclose(axes[k[0]], np.array(n) / np.sqrt(3.0))
    assert aiao_order(axes, axes) == pytest.approx(1.0)
    assert aiao_order(-axes, axes) == pytest.approx(-1.0)
    sub = pyrochlore_sublattices(axes)
    assert [int(np.sum(sub == a)) for a in range(4)] == [4, 4, 4, 4]
    assert sublattice_order_eq6(axes, sub) == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    s = np.where(state.magnetic[:, None], _random_unit(rng, state.n_sites), 0.0)
    # random spins: m_s is the mean of 16 cosines uniform on [−1, 1] (σ = 1/√48 = 0.144): within 5σ of 0
    assert abs(aiao_order(s, axes)) < 5 / np.sqrt(48)
    ops = order_parameters("cd2os2o7", state.replace(spins=np.where(state.magnetic[:, None], -axes, [0, 0, 1.0])))
    assert ops["m_s"] == pytest.approx(-1.0) and ops["m_s_eq6"] == pytest.approx(1.0)


def test_c_over_a_of_conventional_cells():
    a = 8.333
    assert conventional_c_over_a(np.diag([a, a, 0.99 * a])) == (pytest.approx(0.99), 2)
    ratio, axis = conventional_c_over_a(np.diag([1.01 * a, a, a]))
    assert axis == 0 and ratio == pytest.approx(1.01)
    ratio, axis = conventional_c_over_a(np.diag([2 * a, 2 * a, 0.98 * a]), repeats=(2, 2, 1))
    assert axis == 2 and ratio == pytest.approx(0.98)
    state, _ = make_preset("mgcr2o4", supercell=(2, 1, 1))
    assert conventional_repeats(state, 56) == (2, 1, 1)
    assert order_parameters("mgcr2o4", state)["c_over_a"] == pytest.approx(1.0, abs=1e-12)


def test_lattice_temperature_of_maxwell_velocities():
    """Velocities drawn at 250 K: estimator within 5σ, σ/T = sqrt(2/(3N))."""
    state, _ = make_preset("bcc_fe", supercell=(10, 10, 10))
    rng = np.random.default_rng(3)
    t = 250.0
    sigma_v = np.sqrt(K_B_EV_PER_K * t * EV_PER_A_AMU_TO_A_PER_FS2 / state.masses_amu)
    st = state.replace(velocities=rng.normal(size=(state.n_sites, 3)) * sigma_v[:, None])
    rel = np.sqrt(2.0 / (3 * state.n_sites))
    assert abs(kinetic_temperature_k(st.velocities, st.masses_amu) - t) < 5 * rel * t
    assert order_parameters("bcc_fe", st)["T_lattice_K"] == kinetic_temperature_k(st.velocities, st.masses_amu)


def test_spin_temperature_of_boltzmann_spins_in_a_field():
    """Independent moments in a field, sampled exactly from exp(x cosθ): Nowak's estimator with the
    full field (perpendicular + parallel from the engine) gives T within 5σ (σ from 20 repeats)."""
    state, _ = make_preset("bcc_fe", supercell=(10, 10, 10))
    mu, b, t = 2.2, 0.02, 150.0
    x = mu * b / (K_B_EV_PER_K * t)
    engine = ModelEngine([Zeeman((0.0, 0.0, b))], n_sites=state.n_sites)
    rng = np.random.default_rng(4)
    temps = []
    for _ in range(20):
        u = rng.uniform(size=state.n_sites)
        cos = 1.0 + np.log1p(-u * (1.0 - np.exp(-2.0 * x))) / x
        phi = rng.uniform(0, 2 * np.pi, size=state.n_sites)
        sin = np.sqrt(1.0 - cos**2)
        st = state.replace(spins=np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], axis=1))
        temps.append(state_spin_temperature_k(st, engine.evaluate(st)))
    temps = np.array(temps)
    assert abs(temps.mean() - t) < 5 * temps.std(ddof=1) / np.sqrt(len(temps))


#: the keys each built-in preset reports, in order (docs/model_engine.md)
KEYS = {
    "bcc_fe": ["m_x", "m_y", "m_z"],
    "cri3_monolayer": ["m_z"],
    "cd2os2o7": ["m_s_eq6", "m_s"],
    "mgcr2o4": ["m_s_eq6", "c_over_a", "c_axis", "collinearity"],
    "bifeo3": ["neel", "L_x", "L_y", "L_z"],
    "bifeo3_2x2x2": ["neel", "L_x", "L_y", "L_z"],
}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_order_parameters_keys(name):
    state, engine = make_preset(name)
    evaluation = engine.evaluate(state)
    ops = order_parameters(name, state, evaluation)
    assert list(ops) == ["m", "T_lattice_K", "T_spin_K"] + KEYS[name]
    assert all(isinstance(v, float) for v in ops.values())
    assert ops["m"] == pytest.approx(1.0, abs=1e-15)  # preset spins are all +z
    assert ops["T_lattice_K"] == 0.0  # preset velocities are zero
    assert list(order_parameters(name, state)) == ["m", "T_lattice_K"] + KEYS[name]


def test_every_declarable_order_parameter_is_computed():
    assert set(COMPUTE) == set(OrderParameter)


def test_spin_temperature_has_one_definition_and_one_undefined_value():
    """The order parameters and the run output report the same estimator; where it is undefined
    (no parallel field from the engine, or Σ μ s·B ≤ 0) it is NaN, stored as None (JSON null)."""
    state, engine = make_preset("bcc_fe", supercell=(2, 2, 2))
    rng = np.random.default_rng(5)
    st = state.replace(spins=_random_unit(rng, state.n_sites))
    ev = engine.evaluate(st)
    t = state_spin_temperature_k(st, ev)
    assert np.isfinite(t) and t > 0
    assert order_parameters("bcc_fe", st, ev)["T_spin_K"] == t
    assert spin_temperature_of(st, ev) == t
    perp_only = Evaluation(energy_ev=ev.energy_ev, forces_ev_per_a=ev.forces_ev_per_a,
                           fields_ev_per_mub=ev.fields_ev_per_mub, stress_ev_per_a3=ev.stress_ev_per_a3)
    assert np.isnan(state_spin_temperature_k(st, perp_only))
    assert np.isnan(order_parameters("bcc_fe", st, perp_only)["T_spin_K"])
    assert spin_temperature_of(st, perp_only) is None
    # spins against a Zeeman field: Σ μ s·B < 0, the estimator has no positive temperature
    zee = ModelEngine([Zeeman((0.0, 0.0, 0.01))], n_sites=state.n_sites)
    down = state.replace(spins=np.tile([0.0, 0.0, -1.0], (state.n_sites, 1)))
    assert np.isnan(state_spin_temperature_k(down, zee.evaluate(down)))
    assert spin_temperature_of(down, zee.evaluate(down)) is None
