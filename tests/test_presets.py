"""Preset structures, moments and the energetics that select each Table I ground state."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from sld_workflows.analysis.order import order_parameters
from sld_workflows.engines.model.presets import (
    PRESET_NAMES,
    REGISTRY,
    OrderParameter,
    Preset,
    get_preset,
    make_preset,
)
from sld_workflows.engines.model.terms import Exchange, MorsePair
from sld_workflows.errors import SpecError
from sld_workflows.geometry import g_type_signs, nn_graph, pyrochlore_axes, pyrochlore_sublattices

# composition per cell and nearest magnetic distance (Å), sld_numerics §3.3
EXPECTED = {
    "bcc_fe": ({"Fe": 2}, 2.482),
    "cri3_monolayer": ({"Cr": 2, "I": 6}, 3.965),
    "cd2os2o7": ({"Os": 16, "Cd": 16, "O": 56}, 3.596),
    "mgcr2o4": ({"Mg": 8, "Cr": 16, "O": 32}, 2.946),
    "bifeo3": ({"Bi": 2, "Fe": 2, "O": 6}, 3.968),
    "bifeo3_2x2x2": ({"Bi": 16, "Fe": 16, "O": 48}, 3.968),
}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_structure_moments_and_initial_state(name):
    state, engine = make_preset(name)
    counts, nn = EXPECTED[name]
    assert {s: state.species.count(s) for s in set(state.species)} == counts
    mags = np.flatnonzero(state.magnetic)
    moments = get_preset(name).moments_mub
    assert {state.species[i] for i in mags} == set(moments)
    assert np.all(state.moments[mags] == moments[state.species[mags[0]]])
    assert np.all(state.moments[~state.magnetic] == 0.0)
    assert np.all(state.spins[mags] == [0.0, 0.0, 1.0])
    assert np.all(state.velocities == 0.0)
    i, j, d = nn_graph(state.positions, state.cell, mags)
    assert np.linalg.norm(d, axis=1).min() == pytest.approx(nn, abs=2e-3)
    assert engine.n_sites == state.n_sites


def test_supercells_and_bifeo3_names():
    fe, _ = make_preset("bcc_fe", supercell=(10, 10, 10))
    assert fe.n_sites == 2000
    a, _ = make_preset("bifeo3", supercell=(2, 2, 2))
    b, _ = make_preset("bifeo3_2x2x2")
    assert a.n_sites == b.n_sites == 80
    assert np.array_equal(a.cell, b.cell) and np.array_equal(a.positions, b.positions)
    with pytest.raises(SpecError) as info:
        make_preset("bcc_fe", supercell=(2, 0, 1))
    assert info.value.key == "supercell"
    with pytest.raises(SpecError) as info:
        make_preset("bcc_fe", external_field_ev_per_mub=[0, 1])
    assert info.value.key == "external_field_ev_per_mub"


@pytest.mark.parametrize("name", ["cri3_monolayer", "cd2os2o7", "mgcr2o4", "bifeo3"])
def test_reference_structure_is_force_and_stress_free_without_magnetism(name):
    """The Morse network has every bond at its reference length: zero force and stress."""
    state, engine = make_preset(name, overrides={"exchange": {"enabled": False}, "dmi": {"enabled": False},
                                                 "anisotropy": {"enabled": False}})
    ev = engine.evaluate(state)
    assert np.max(np.abs(ev.forces_ev_per_a)) < 1e-12
    assert np.max(np.abs(ev.stress_ev_per_a3)) < 1e-14


def test_bcc_fe_ferromagnet_is_lowest():
    state, engine = make_preset("bcc_fe", supercell=(2, 2, 2))
    e_fm = engine.evaluate(state).energy_ev
    # B2 antiferromagnet: corner and body-centre sublattices opposite
    frac = state.positions @ np.linalg.inv(state.cell) * 2
    body = (np.rint(frac[:, 0] * 2) % 2).astype(bool)
    afm = state.replace(spins=np.where(body[:, None], [0, 0, -1.0], [0, 0, 1.0]))
    e_afm = engine.evaluate(afm).energy_ev
    # 4N nearest-neighbour bonds go from s·s − 1 = 0 to −2 (offset 1), second neighbours are unchanged:
    # E_AFM − E_FM = 4N · 2 J₁ with J₁ = J(2.482 Å) of the preset
    term = next(t for t in engine.terms if t.kind == "exchange")
    j1 = term.j_of_r(np.array([2.8665 * np.sqrt(3) / 2]))[0][0]
    assert e_afm - e_fm == pytest.approx(2.0 * 4 * state.n_sites * j1, rel=1e-10)
    assert j1 > 0


def test_cri3_easy_axis_energy_is_the_xxz_gap():
    """FM along z vs in-plane: ΔE = −Σ_bonds λJ₁ = −(3N/2)·Λ, Λ = 0.2025 meV (exact for the preset)."""
    state, engine = make_preset("cri3_monolayer", supercell=(2, 2, 1))
    e_z = engine.evaluate(state).energy_ev
    e_x = engine.evaluate(state.replace(spins=np.where(state.magnetic[:, None], [1.0, 0, 0], 0.0))).energy_ev
    n_cr = int(state.magnetic.sum())
    assert e_z - e_x == pytest.approx(-1.5 * n_cr * 0.2025e-3, rel=1e-10)


def test_cd2os2o7_aiao_beats_local_xy_states_and_dmi_sign():
    """The AIAO state has the lowest energy among AIAO, its DMI-reversed counterpart and 'XY'
    states with every spin perpendicular to its local axis (sld_numerics §3.4: fix the DMI sign
    by E(AIAO) < E(Γ5/XY))."""
    state, engine = make_preset("cd2os2o7")
    axes = pyrochlore_axes(state)
    e_aiao = engine.evaluate(state.replace(spins=axes)).energy_ev
    e_aoai = engine.evaluate(state.replace(spins=-axes)).energy_ev
    assert e_aiao == pytest.approx(e_aoai, abs=1e-12)  # time reversal
    dmi = next(t for t in engine.terms if t.kind == "dmi")
    i, j = dmi.i, dmi.j
    e_dmi = float(np.sum(np.einsum("ij,ij->i", dmi.d_ev, np.cross(axes[i], axes[j]))))
    assert e_dmi < 0
    rng = np.random.default_rng(0)
    mags = state.magnetic
    for _ in range(20):
        e = rng.normal(size=3)
        xy = e - np.einsum("ij,j->i", axes, e)[:, None] * axes
        xy = np.where(mags[:, None], xy / np.maximum(np.linalg.norm(xy, axis=1), 1e-300)[:, None], 0.0)
        assert engine.evaluate(state.replace(spins=np.where(mags[:, None], xy, [0, 0, 1.0]))).energy_ev > e_aiao


def test_mgcr2o4_collinear_q0_magnetostriction_is_tetragonal_and_traceless():
    """q = 0 collinear state (sublattices 0,1 up, 2,3 down) at the cubic reference: the exchange
    stress flattens the cell along z (σ_zz > 0 > σ_xx = σ_yy) and, with the offset −1/3 for every
    2-up-2-down tetrahedron, has zero trace (no volume magnetostriction)."""
    state, engine = make_preset("mgcr2o4")
    sub = pyrochlore_sublattices(pyrochlore_axes(state))
    sign = np.where(np.isin(sub, [0, 1]), 1.0, -1.0)
    q0 = state.replace(spins=np.where(state.magnetic[:, None], sign[:, None] * np.array([0, 0, 1.0]), 0.0))
    sigma = engine.evaluate(q0).stress_ev_per_a3
    assert sigma[2, 2] > 0 > sigma[0, 0]
    assert sigma[0, 0] == pytest.approx(sigma[1, 1], rel=1e-12)
    assert abs(np.trace(sigma)) < 1e-12 * np.abs(sigma).max()
    assert np.max(np.abs(sigma - np.diag(np.diag(sigma)))) < 1e-12 * np.abs(sigma).max()


@pytest.mark.parametrize("name", ["bifeo3", "bifeo3_2x2x2"])
def test_bifeo3_g_type_is_lowest_and_all_nn_antiparallel(name):
    state, engine = make_preset(name)
    eps = g_type_signs(state)
    mags = np.flatnonzero(state.magnetic)
    i, j, nn_vectors = nn_graph(state.positions, state.cell, mags)
    assert np.all(eps[i] * eps[j] == -1)  # every NN Fe–Fe bond antiparallel
    assert len(i) == 3 * len(mags)
    in_plane = np.array([1.0, 0.0, 0.0])  # L ⊥ c_hex (easy plane)
    g = state.replace(spins=np.where(state.magnetic[:, None], eps[:, None] * in_plane, 0.0))
    e_g = engine.evaluate(g).energy_ev
    e_fm = engine.evaluate(state.replace(spins=np.where(state.magnetic[:, None], in_plane, 0.0))).energy_ev
    e_g_axis = engine.evaluate(state.replace(spins=np.where(state.magnetic[:, None], eps[:, None] * [0, 0, 1.0], 0.0)))
    # collinear states: DMI vanishes; second neighbours (5.59, 5.64 Å) are on the same sublattice and
    # parallel in both G and FM, the next shell (6.9 Å) is beyond the taper. So E_FM − E_G is exactly
    # the nearest-neighbour exchange, −2 Σ_NN J(r), and turning L onto c_hex costs −K per Fe.
    exch = next(t for t in engine.terms if t.kind == "exchange")
    j_nn = exch.j_of_r(np.linalg.norm(nn_vectors, axis=1))[0]
    assert np.all(j_nn < 0)  # antiferromagnetic
    assert e_fm - e_g == pytest.approx(-2.0 * float(np.sum(j_nn)), rel=1e-9)
    k_ep = next(t for t in engine.terms if t.kind == "single_ion").k_ev[mags]
    assert e_g_axis.energy_ev - e_g == pytest.approx(-float(np.sum(k_ep)), rel=1e-9)
    assert np.all(k_ep < 0)  # easy plane: L ⊥ c is lower


def test_external_field_adds_exact_zeeman_energy():
    b = np.array([0.01, -0.02, 0.03])
    state, plain = make_preset("bifeo3")
    _, zee = make_preset("bifeo3", external_field_ev_per_mub=b)
    rng = np.random.default_rng(1)
    s = np.where(state.magnetic[:, None], rng.normal(size=(state.n_sites, 3)), 0.0)
    st = state.replace(spins=s)
    diff = zee.evaluate(st).energy_ev - plain.evaluate(st).energy_ev
    assert diff == pytest.approx(-float(np.sum(st.moments * (st.spins @ b))), rel=1e-12)


def test_bifeo3_weak_ferromagnetic_canting_is_analytic():
    """Two-sublattice G-type state in the easy plane with DMI D₀ĉ on every NN bond:
    E_bond = |J₁| s_A·s_B + D₀ ĉ·(s_A × s_B) is minimised by a deviation δ = atan(D₀/|J₁|) from
    antiparallel. At that state every perpendicular field vanishes, the energy is lower than the
    collinear state by N_bonds(√(J₁² + D₀²) − |J₁|), and M = (s_A + s_B)/2 has |M| = sin(δ/2),
    antiparallel to D × L (E = +Σ D·(s_i × s_j) convention)."""
    state, engine = make_preset("bifeo3")
    eps = g_type_signs(state)
    mags = np.flatnonzero(state.magnetic)
    i, j, d = nn_graph(state.positions, state.cell, mags)
    exch = next(t for t in engine.terms if t.kind == "exchange")
    dmi = next(t for t in engine.terms if t.kind == "dmi")
    j1s = exch.j_of_r(np.linalg.norm(d, axis=1))[0]
    assert np.ptp(j1s) < 1e-12  # all NN bonds equally long in the R3c cell
    j1 = abs(j1s[0])
    d0 = float(np.abs(dmi.d_ev[:, 2]).max())
    delta = np.arctan(d0 / j1)
    s_a = np.array([1.0, 0.0, 0.0])
    s_b = np.array([-np.cos(delta), -np.sin(delta), 0.0])
    canted = state.replace(spins=np.where((eps > 0)[:, None], s_a, np.where((eps < 0)[:, None], s_b, 0.0)))
    collinear = state.replace(spins=np.where(state.magnetic[:, None], eps[:, None] * s_a, 0.0))
    ev = engine.evaluate(canted)
    scale = j1 / state.moments[mags[0]]
    assert np.max(np.abs(ev.fields_ev_per_mub[mags])) < 1e-12 * scale
    n_bonds = len(i)
    de = ev.energy_ev - engine.evaluate(collinear).energy_ev
    assert de == pytest.approx(-n_bonds * (np.hypot(j1, d0) - j1), rel=1e-9)
    m = canted.spins[mags].mean(axis=0)
    big_l = (eps[mags, None] * canted.spins[mags]).mean(axis=0)
    assert np.linalg.norm(m) == pytest.approx(np.sin(delta / 2), rel=1e-12)
    d_cross_l = np.cross([0.0, 0.0, 1.0], big_l)
    assert np.dot(m, d_cross_l) / (np.linalg.norm(m) * np.linalg.norm(d_cross_l)) == pytest.approx(-1.0)


# ------------------------------------------------------------------ adding a material
def _simple_cubic_structure():
    return Structure(Lattice.cubic(2.5), ["Ni"], [[0.0, 0.0, 0.0]])


def _simple_cubic_terms(state):
    return [
        MorsePair("Ni", "Ni", d0_ev=0.4, alpha_per_a=1.4, r0_a=2.5, rcut_a=4.0),
        Exchange("Ni", "Ni", "constant", {"j0_ev": 0.01}, rcut_a=2.8, r_on_a=2.7, offset=1.0),
    ]


#: a material defined only here: simple-cubic "Ni" with nearest-neighbour ferromagnetic exchange
THROWAWAY = Preset(
    name="test_simple_cubic_ferromagnet",
    structure=_simple_cubic_structure,
    moments_mub={"Ni": 0.6},
    terms=_simple_cubic_terms,
    order_parameters=(OrderParameter.MAGNETISATION_VECTOR, OrderParameter.NEEL),
)


def test_a_preset_defined_outside_the_package_runs_through_make_preset_and_the_order_parameters():
    """Adding a material is one Preset object: registered, it is listed, built by make_preset (with
    supercell, overrides and field), and analysed by order_parameters, with no other module touched."""
    from sld_workflows.engines.model import presets

    assert THROWAWAY.name not in presets.PRESET_NAMES
    with REGISTRY.registered(THROWAWAY):
        assert presets.PRESET_NAMES[-1] == THROWAWAY.name  # the live list, as the run spec reads it
        state, engine = make_preset(THROWAWAY.name, supercell=(4, 4, 4), external_field_ev_per_mub=[0, 0, 0.01])
        assert state.n_sites == 64 and np.all(state.moments == 0.6)
        assert [t.kind for t in engine.terms] == ["morse", "exchange", "zeeman"]
        # FM +z reference: 3 bonds per site at J(r) = J₀ with the FM offset, so only Zeeman and Morse remain
        ev = engine.evaluate(state)
        _, lattice_only = make_preset(THROWAWAY.name, supercell=(4, 4, 4),
                                      overrides={"exchange": {"enabled": False}})
        assert ev.energy_ev == pytest.approx(lattice_only.evaluate(state).energy_ev - 64 * 0.6 * 0.01, rel=1e-12)
        # a checkerboard is the G-type state of simple cubic: every bond pays 2 J₀
        eps = g_type_signs(state)
        afm = state.replace(spins=eps[:, None] * np.array([0.0, 0.0, 1.0]))
        _, no_field = make_preset(THROWAWAY.name, supercell=(4, 4, 4))
        e_diff = no_field.evaluate(afm).energy_ev - no_field.evaluate(state).energy_ev
        assert e_diff == pytest.approx(3 * 64 * 2 * 0.01, rel=1e-12)
        ops = order_parameters(THROWAWAY.name, afm, no_field.evaluate(afm))
        assert list(ops) == ["m", "T_lattice_K", "T_spin_K", "m_x", "m_y", "m_z", "neel", "L_x", "L_y", "L_z"]
        assert ops["m"] == pytest.approx(0.0, abs=1e-15) and ops["neel"] == pytest.approx(1.0)
        assert order_parameters(THROWAWAY, state)["m_z"] == pytest.approx(1.0)
        with pytest.raises(ValueError, match="already registered"):
            REGISTRY.register(THROWAWAY)
    assert THROWAWAY.name not in presets.PRESET_NAMES
    with pytest.raises(SpecError) as info:
        make_preset(THROWAWAY.name)
    assert info.value.key == "preset"


def test_preset_declarations_are_checked():
    with pytest.raises(ValueError, match="conventional_cell_atoms"):
        Preset(name="x", structure=_simple_cubic_structure, moments_mub={"Ni": 1.0}, terms=_simple_cubic_terms,
               order_parameters=(OrderParameter.C_OVER_A,))
    with pytest.raises(ValueError, match="positive moment"):
        Preset(name="x", structure=_simple_cubic_structure, moments_mub={}, terms=_simple_cubic_terms)
    with pytest.raises(ValueError):
        Preset(name="x", structure=_simple_cubic_structure, moments_mub={"Ni": 1.0}, terms=_simple_cubic_terms,
               order_parameters=("not_an_order_parameter",))


def test_every_preset_module_is_registered():
    """Each material module of the package is registered, and every name maps to its own preset."""
    import pkgutil

    from sld_workflows.engines.model import presets

    modules = {m.name for m in pkgutil.iter_modules(presets.__path__) if not m.name.startswith("_")}
    assert modules == {"bcc_fe", "bifeo3", "cd2os2o7", "cri3_monolayer", "mgcr2o4"}
    assert set(PRESET_NAMES) == modules | {"bifeo3_2x2x2"}
    for name in PRESET_NAMES:
        assert get_preset(name).name == name
