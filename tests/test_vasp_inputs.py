"""Input set of the constrained static SCF: INCAR tags, species order, restart tags, POTCAR, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.io.vasp.inputs import Incar, Kpoints, Poscar

from sld_workflows.engines.model.presets import make_preset
from sld_workflows.engines.vasp import VaspEngine
from sld_workflows.engines.vasp.inputs import ConstrainedStaticSet
from sld_workflows.errors import SLDError, SpecError


@pytest.fixture
def fe():
    state, _ = make_preset("bcc_fe", supercell=(1, 1, 2))
    rng = np.random.default_rng(3)
    spins = rng.normal(size=state.spins.shape)
    return state.replace(spins=spins / np.linalg.norm(spins, axis=1)[:, None])


def test_incar_for_constrained_static(fe, tmp_path):
    iset = ConstrainedStaticSet(rwigs={"Fe": 1.3}, lambda_=25.0, constraint_size=2.0,
                                incar={"ENCUT": 520, "nelm": 80}, kpoints=(6, 6, 3))
    rec = iset.write(fe, tmp_path)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar["LNONCOLLINEAR"] is True and incar["I_CONSTRAINED_M"] == 1 and incar["LAMBDA"] == 25.0
    assert incar["ISYM"] == -1 and incar["NSW"] == 0 and incar["IBRION"] == -1
    assert incar["ISTART"] == 0 and incar["ICHARG"] == 2
    assert incar["LWAVE"] is True and incar["LCHARG"] is True and "LORBIT" not in incar
    assert incar["ENCUT"] == 520 and incar["NELM"] == 80
    m_constr = np.array(incar["M_CONSTR"]).reshape(-1, 3)
    assert np.array_equal(m_constr, 2.0 * fe.spins)  # full precision survives the INCAR round trip
    assert np.array_equal(rec["m_constr"], m_constr)
    magmom = np.array(incar["MAGMOM"], dtype=float).reshape(-1, 3)
    assert np.allclose(magmom, fe.moments[:, None] * fe.spins, rtol=1e-15, atol=0)
    assert incar["RWIGS"] == [1.3]
    assert Kpoints.from_file(tmp_path / "KPOINTS").kpts[0] == (6, 6, 3)
    pos = Poscar.from_file(tmp_path / "POSCAR", check_for_potcar=False)
    assert np.abs(pos.structure.cart_coords - fe.positions).max() < 1e-12
    assert (tmp_path / "POTCAR.spec").read_text() == "Fe\n"


@pytest.mark.parametrize(("wavecar", "chgcar", "istart", "icharg"),
                         [(True, True, 1, 0), (True, False, 1, 0), (False, True, 0, 1), (False, False, 0, 2)])
def test_restart_tags(fe, tmp_path, wavecar, chgcar, istart, icharg):
    ConstrainedStaticSet(rwigs={"Fe": 1.3}).write(fe, tmp_path, wavecar=wavecar, chgcar=chgcar)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert (incar["ISTART"], incar["ICHARG"]) == (istart, icharg)


def test_species_order_for_rwigs_ldau_and_potcar(tmp_path):
    """BiFeO3: per-species lists follow POSCAR order (Bi Fe O); non-magnetic ions get M_CONSTR 0 0 0."""
    state, _ = make_preset("bifeo3")
    iset = ConstrainedStaticSet(
        rwigs={"Fe": 1.3, "Bi": 1.6, "O": 0.8},
        incar={"LDAU": True, "LDAUTYPE": 2, "LDAUL": {"Bi": -1, "Fe": 2, "O": -1},
               "LDAUU": {"Bi": 0.0, "Fe": 4.0, "O": 0.0}, "LDAUJ": {"Bi": 0.0, "Fe": 0.0, "O": 0.0}},
        potcar="spec", potcar_symbols={"Bi": "Bi_d", "Fe": "Fe_pv"},
    )
    rec = iset.write(state, tmp_path)
    assert rec["site_symbols"] == ["Bi", "Fe", "O"]
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar["RWIGS"] == [1.6, 1.3, 0.8]
    assert incar["LDAUU"] == [0.0, 4.0, 0.0] and incar["LDAUL"] == [-1, 2, -1]
    assert (tmp_path / "POTCAR.spec").read_text().split() == ["Bi_d", "Fe_pv", "O"]
    m = np.array(incar["M_CONSTR"]).reshape(-1, 3)
    assert np.all(np.linalg.norm(m[~state.magnetic], axis=1) == 0)
    assert np.allclose(np.linalg.norm(m[state.magnetic], axis=1), 1.0, rtol=1e-15, atol=0)
    with pytest.raises(SpecError, match=r"LDAUU.*\['O'\]"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, incar={"LDAUU": {"Bi": 0.0, "Fe": 4.0}}).write(state, tmp_path / "x")


def test_midpoint_state_writes_directions(fe, tmp_path):
    mid = fe.replace(spins=0.97 * fe.spins, unit_spins=False)
    ConstrainedStaticSet(rwigs={"Fe": 1.3}).write(mid, tmp_path)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert np.allclose(np.linalg.norm(np.reshape(incar["M_CONSTR"], (-1, 3)), axis=1), 1.0, rtol=1e-15, atol=0)
    assert np.allclose(np.linalg.norm(np.reshape(incar["MAGMOM"], (-1, 3)), axis=1), fe.moments, rtol=1e-15, atol=0)


def test_missing_rwigs_for_magnetic_species(tmp_path):
    state, _ = make_preset("bifeo3")
    with pytest.raises(SpecError, match=r"rwigs.*magnetic species \['Fe'\]"):
        ConstrainedStaticSet(rwigs={"Bi": 1.6, "O": 0.8}).write(state, tmp_path)


def test_non_magnetic_structure(fe, tmp_path):
    with pytest.raises(SLDError, match="no magnetic site"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}).write(fe.replace(moments=np.zeros(fe.n_sites)), tmp_path)


def test_missing_potcar_directory(fe, tmp_path, monkeypatch):
    monkeypatch.setenv("PMG_VASP_PSP_DIR", str(tmp_path / "no_such_dir"))
    with pytest.raises(SLDError, match="POTCAR directory.*no_such_dir.*does not exist"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, potcar="pymatgen").write(fe, tmp_path / "run")
    # "auto" with a missing directory must not silently fall back either
    with pytest.raises(SLDError, match="does not exist"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, potcar="auto").write(fe, tmp_path / "run2")
    # through the engine: the step fails before anything runs, naming the reason
    engine = VaspEngine.from_spec({"rwigs": {"Fe": 1.3}, "potcar": "pymatgen", "command": "sld-fake-vasp",
                                   "run_dir": str(tmp_path / "runs")})
    with pytest.raises(SLDError, match="PMG_VASP_PSP_DIR"):
        engine.evaluate(fe)


def test_protected_tags_and_bad_values():
    with pytest.raises(SpecError, match="M_CONSTR"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, incar={"m_constr": [0, 0, 1]})
    with pytest.raises(SpecError, match="ISTART"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, incar={"ISTART": 0})
    with pytest.raises(SpecError, match="lambda"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, lambda_=0.0)
    with pytest.raises(SpecError, match="rwigs"):
        ConstrainedStaticSet(rwigs={"Fe": -1.0})
    with pytest.raises(SpecError, match="SAXIS"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, incar={"saxis": [1, 0, 0]})
    ConstrainedStaticSet(rwigs={"Fe": 1.3}, incar={"SAXIS": [0, 0, 1]})  # the default is fine
    with pytest.raises(SpecError, match="i_constrained_m"):
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, i_constrained_m=3)
