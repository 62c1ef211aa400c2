"""``sld-fake-vasp``: VASP layouts (byte-compatible with the real samples), files readable by
pymatgen/Custodian, the physics it writes, and each Custodian handler / our handlers on files it
writes (and on the real samples where relevant)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import scf_counts

import sld_workflows
from sld_workflows.engines.fake_vasp import writers as w
from sld_workflows.engines.fake_vasp.cli import MW_RATIO
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.engines.vasp.inputs import ConstrainedStaticSet
from sld_workflows.engines.vasp.parsers import (
    fortran_float,
    parse_constrained_oszicar,
    parse_vasprun,
    penalty_identity,
    penalty_identity_tolerance,
)

pytestmark = pytest.mark.filterwarnings("ignore:No POTCAR file with matching TITEL", "ignore::UserWarning")
CHECKOUT = Path(sld_workflows.__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "vasp"


# ------------------------------------------------------------------------ layouts
def _real_lines(name):
    return (DATA / name).read_text().splitlines()


def test_line_layouts_are_byte_identical_to_real_vasp():
    ferh = _real_lines("OSZICAR.FeRh_icm1_soc_vasp6.6.0")
    irmn = _real_lines("OSZICAR.IrMn3_icm4_vasp6.6.0")
    f_line = next(ln for ln in ferh if " F= " in ln)
    assert w.f_line(1, -124.80456, -124.79754, -0.0210617, np.array([0.0, 0.0, 33.0779])).rstrip("\n") == f_line
    f_line4 = next(ln for ln in irmn if " F= " in ln)
    assert w.f_line(1, -36.715064, -36.715794, 0.218952e-2, np.array([0.0003, 0.0005, -0.0007])).rstrip("\n") == f_line4
    # end-of-step block of IrMn3 (3 rows of 4 ions)
    i = irmn.index(f_line4)
    rows = [(1, np.array([-0.37197e-04, -0.11692e-03, -0.19125e-03])),
            (2, np.array([0.23545e-03, 0.14753e-04, -0.26481e-03])),
            (3, np.array([0.15883e-04, 0.35944e-04, -0.10031e-04]))]
    assert w.end_of_step_block(0.20681e-06, 1.0, rows).splitlines() == irmn[i + 1 : i + 7]
    # per-SCF block and DAV line of FeRh (first SCF step)
    mw = np.array([[0, 0, 1.595]] * 8 + [[0, 0, 0.511]] * 8)
    m = np.array([[0, 0, 2.568]] * 8 + [[0, 0, 1.044]] * 8)
    assert w.scf_constraint_block(0.0, 2.0, 0.0, 0.0, mw, m).splitlines() == ferh[1:22]
    assert w.dav_line(1, 0.888483102013e03, 0.88848e03, -0.44745e04, 1200, 0.110e03).rstrip("\n") == ferh[22].rstrip()
    assert " E_p =  0.19900E-35  lambda =  0.200E+01" in ferh
    assert w.fortran_e(0.19900e-35, 12, 5) == " 0.19900E-35"
    assert w.fortran_e(0.12345e-100, 12, 5) == " 0.12345-100"
    assert w.fortran_e(-36.715064, 14, 8) == "-.36715064E+02"
    assert w.fortran_i(1000, 3) == "***"


def test_printed_values_are_what_the_reader_reads():
    """The stand-in computes what it prints (E_p from the printed P) with ``fortran_e_value``, not
    with the parser's reader; the two must agree on every number, so a reader bug shows here
    instead of cancelling out. Random magnitudes over 10^±120 (3-digit exponents lose the E)."""
    rng = np.random.default_rng(11)
    xs = rng.choice([-1, 1], 4000) * 10.0 ** rng.uniform(-120, 120, 4000)
    xs = np.concatenate([xs, [0.0, 0.999995, -0.9999951, 0.1, 1.0, 99999.5]])
    for digits in (5, 12):
        for x in xs:
            text = w.fortran_e(x, digits + 7, digits)
            assert fortran_float(text) == w.fortran_e_value(x, digits), (x, text)
            if x != 0:  # and the value is x to the printed digits
                assert abs(w.fortran_e_value(x, digits) - x) <= 0.5 * 10.0 ** (1 - digits) * abs(x) * (1 + 1e-12)


# ------------------------------------------------------------------------ running the stand-in
@pytest.fixture
def system(tmp_path, monkeypatch):
    state, engine = make_preset("bcc_fe", supercell=(2, 2, 2))
    rng = np.random.default_rng(7)
    spins = state.spins + 0.3 * rng.normal(size=state.spins.shape)
    state = state.replace(spins=spins / np.linalg.norm(spins, axis=1)[:, None],
                          positions=state.positions + 0.03 * rng.normal(size=state.positions.shape))
    (tmp_path / "engine.json").write_text(engine.to_json())
    monkeypatch.setenv("SLD_FAKE_VASP_ENGINE", str(tmp_path / "engine.json"))
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT))
    monkeypatch.delenv("SLD_FAKE_VASP_FAULTS", raising=False)
    monkeypatch.delenv("SLD_FAKE_VASP_FIELD_DIGITS", raising=False)
    return state, engine


def prepare(state, directory: Path, **kw) -> Path:
    ConstrainedStaticSet(rwigs={"Fe": 1.3}, **kw).write(state, directory)
    return directory


def fake(directory: Path, timeout=60) -> subprocess.CompletedProcess:
    with open(directory / "vasp.out", "w") as out, open(directory / "std_err.txt", "w") as err:
        return subprocess.run(["sld-fake-vasp"], cwd=directory, stdout=out, stderr=err, timeout=timeout)


def test_outputs_parse_and_carry_the_model(system, tmp_path):
    state, engine = system
    d = prepare(state, tmp_path / "run")
    assert fake(d).returncode == 0
    ref = engine.evaluate(state)
    step = parse_constrained_oszicar(d / "OSZICAR", constrained=np.ones(16, bool)).final
    # printed P = μ B⊥ / (2 |MW_printed|) to the 5 printed digits
    mw = np.linalg.norm(step.mw, axis=1)
    assert np.allclose(mw, MW_RATIO * 2.2, atol=1e-3)
    expected_p = state.moments[:, None] * ref.fields_ev_per_mub / (2 * mw[:, None])
    assert np.all(np.abs(step.fields - expected_p) <= 5e-5 * np.abs(expected_p) + 1e-15)
    # E_p = Σ|P|²/λ to printed precision; E0 = E_DFT + E_p
    e_p, s = penalty_identity(step)
    assert abs(e_p - s) <= penalty_identity_tolerance(step)
    # E0 is printed E14.8: half a unit in the 8th significant digit
    assert step.e0_ev == pytest.approx(ref.energy_ev + e_p, abs=0.5e-8 * 10 ** np.ceil(np.log10(abs(step.e0_ev))))
    dav, scsteps = scf_counts(d)
    assert step.n_scf == dav == scsteps > 1
    assert "emulated" in (d / "OSZICAR").read_text().splitlines()[0]
    # pymatgen reads vasprun.xml and OUTCAR
    vr = parse_vasprun(d / "vasprun.xml")
    assert vr.converged_electronic and vr.n_scf == scsteps
    assert np.abs(vr.forces_ev_per_a - ref.forces_ev_per_a).max() <= 0.5e-8 + 1e-15
    assert np.allclose(-vr.stress_kbar / 1602.1766208, ref.stress_ev_per_a3, atol=0.5e-8 / 1602, rtol=0)
    from pymatgen.io.vasp.outputs import Outcar

    outcar = Outcar(str(d / "OUTCAR"))
    tot = np.array([list(m["tot"]) for m in outcar.magnetization])
    assert np.allclose(tot, state.moments[:, None] * state.spins, atol=5e-4)
    assert outcar.run_stats.get("Elapsed time (sec)") is not None
    # restart: WAVECAR generation chain and fewer (emulated) SCF steps
    d2 = tmp_path / "run2"
    d2.mkdir()
    for name in ("WAVECAR", "CHGCAR"):
        (d2 / name).write_bytes((d / name).read_bytes())
    ConstrainedStaticSet(rwigs={"Fe": 1.3}).write(state.replace(step=1), d2, wavecar=True, chgcar=True)
    assert fake(d2).returncode == 0
    restarted = parse_constrained_oszicar(d2 / "OSZICAR", constrained=np.ones(16, bool)).final.n_scf
    assert restarted == scf_counts(d2)[0] == parse_vasprun(d2 / "vasprun.xml").n_scf
    assert restarted < step.n_scf and "WAVECAR read" in (d2 / "vasp.out").read_text()
    assert (d2 / "WAVECAR").read_text().splitlines()[1] == "generation 2"


# ------------------------------------------------------------------------ handlers on stand-in files
def test_vasp_error_handler_on_stand_in_stdout(system, tmp_path, monkeypatch):
    from custodian.vasp.handlers import VaspErrorHandler

    state, _ = system
    d = prepare(state, tmp_path / "run")
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps({"fault": "error", "message": "brmix"}))
    assert fake(d).returncode == 1
    h = VaspErrorHandler()
    assert h.check(str(d)) and h.errors == {"brmix"}
    result = h.correct(str(d))
    assert result["actions"]  # IMIX=1 (no finished OUTCAR) - WAVECAR untouched
    assert not any(a.get("file") in ("WAVECAR", "CHGCAR") for a in result["actions"])


def test_unconverged_handler_on_stand_in_vasprun(system, tmp_path, monkeypatch):
    from custodian.vasp.handlers import UnconvergedErrorHandler

    state, _ = system
    d = prepare(state, tmp_path / "run", incar={"NELM": 30})
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "unconverged"}]))
    assert fake(d).returncode == 0
    assert parse_vasprun(d / "vasprun.xml").n_scf == 30
    h = UnconvergedErrorHandler()
    assert h.check(str(d))
    assert h.correct(str(d))["actions"][0]["action"]["_set"]["ALGO"] == "All"
    # rerun (attempt 2, fault spent): converged, the check is clear
    assert fake(d).returncode == 0
    from custodian.utils import tracked_lru_cache

    tracked_lru_cache.tracked_cache_clear()  # Custodian clears its vasprun cache after each check
    assert not UnconvergedErrorHandler().check(str(d))


def test_frozen_handler_on_hung_stand_in(system, tmp_path, monkeypatch):
    from sld_workflows.engines.vasp.handlers import StaticFrozenJobHandler

    state, _ = system
    d = prepare(state, tmp_path / "run")
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "hang"}]))
    with open(d / "vasp.out", "w") as out:
        p = subprocess.Popen(["sld-fake-vasp"], cwd=d, stdout=out, stderr=subprocess.DEVNULL)
        try:
            h = StaticFrozenJobHandler(timeout=2)
            deadline = time.time() + 30
            while not (d / "OSZICAR").is_file() and time.time() < deadline:
                time.sleep(0.1)
            assert p.poll() is None  # still "running"
            assert not h.check(str(d))
            time.sleep(2.5)
            assert h.check(str(d)) and p.poll() is None
        finally:
            p.terminate()
            p.wait(10)
    first = h.correct(str(d))
    assert first["actions"][0]["action"]["_file_move"]["dest"] == "vasp.out.frozen-1"
    assert (d / "vasp.out.frozen-1").is_file()
    (d / "vasp.out").write_text("")
    assert h.correct(str(d))["actions"] is None  # one retry only


def test_std_err_handler_on_stand_in_files(system, tmp_path, monkeypatch):
    from custodian.vasp.handlers import StdErrHandler

    state, _ = system
    d = prepare(state, tmp_path / "run", incar={"KPAR": 4})
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "stderr"}]))
    assert fake(d).returncode == 1
    h = StdErrHandler()
    assert h.check(str(d)) and h.errors == {"out_of_memory"}
    assert h.correct(str(d))["actions"] == [{"dict": "INCAR", "action": {"_set": {"KPAR": 2}}}]
    assert fake(d).returncode == 0  # fault spent
    assert not StdErrHandler().check(str(d))  # a clean stand-in run leaves std_err.txt clean


def test_constraint_block_validator(system, tmp_path, monkeypatch):
    from sld_workflows.engines.vasp.handlers import ConstraintBlockValidator

    state, _ = system
    d = prepare(state, tmp_path / "run")
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "crash"}]))
    assert fake(d).returncode == 139
    v = ConstraintBlockValidator()
    assert v.check(str(d)) and "cut off" in v.reason
    assert fake(d).returncode == 0  # second attempt: the fault was for one attempt
    assert not ConstraintBlockValidator().check(str(d))
    # real sample: complete block, IrMn3 with its unconstrained Ir (M_CONSTR = 0 0 0) accepted
    real = tmp_path / "real"
    real.mkdir()
    (real / "OSZICAR").write_bytes((DATA / "OSZICAR.IrMn3_icm4_vasp6.6.0").read_bytes())
    (real / "INCAR").write_text("I_CONSTRAINED_M = 4\nM_CONSTR = 1 0.5 -0.5 -0.5 -1 -0.5 -0.5 0.5 1 0 0 0\n")
    assert not ConstraintBlockValidator().check(str(real))
    (real / "INCAR").write_text("I_CONSTRAINED_M = 4\nM_CONSTR = 12*1\n")  # says all 4 constrained
    assert ConstraintBlockValidator().check(str(real))


def test_constraint_deviation_handler(system, tmp_path):
    from sld_workflows.engines.vasp.handlers import ConstraintDeviationHandler

    state, _ = system
    d = prepare(state, tmp_path / "run", lambda_=0.05)
    assert fake(d).returncode == 0
    h = ConstraintDeviationHandler(max_angle_deg=1.0)
    assert h.check(str(d)) and "deviates" in h.problem
    result = h.correct(str(d))
    assert result["actions"][0]["action"]["_set"] == {"LAMBDA": 0.5, "ISTART": 1, "ICHARG": 0}
    assert fake(d).returncode == 0
    assert h.check(str(d))  # 0.5 still too small for these fields
    h.correct(str(d))
    assert fake(d).returncode == 0
    assert not h.check(str(d))  # LAMBDA = 5: deviation < 1 deg
    # real FeRh sample (mode 1, moments on target): no action; IrMn3 (mode 4) is not judged
    for name, incar in (("OSZICAR.FeRh_icm1_soc_vasp6.6.0", "I_CONSTRAINED_M = 1\nM_CONSTR = 48*1\nLAMBDA = 2\n"),
                        ("OSZICAR.IrMn3_icm4_vasp6.6.0", "I_CONSTRAINED_M = 4\nM_CONSTR = 9*1 0 0 0\n")):
        real = tmp_path / name
        real.mkdir()
        (real / "OSZICAR").write_bytes((DATA / name).read_bytes())
        (real / "INCAR").write_text(incar)
        assert not ConstraintDeviationHandler().check(str(real))


def test_penalty_identity_violation_is_unrecoverable(system, tmp_path):
    from sld_workflows.engines.vasp.handlers import ConstraintDeviationHandler

    state, _ = system
    d = prepare(state, tmp_path / "run")
    assert fake(d).returncode == 0
    text = (d / "OSZICAR").read_text()
    i = text.rindex(" E_p =")
    j = text.index("lambda", i)
    (d / "OSZICAR").write_text(text[:i] + " E_p =  0.99999E+01  " + text[j:])  # tampered E_p
    h = ConstraintDeviationHandler()
    assert h.check(str(d)) and "identity" in h.problem
    assert h.correct(str(d))["actions"] is None


def test_missing_engine_is_a_clear_error(tmp_path, system, monkeypatch):
    state, _ = system
    d = prepare(state, tmp_path / "run")
    monkeypatch.delenv("SLD_FAKE_VASP_ENGINE")
    r = fake(d)
    assert r.returncode == 2
    assert "SLD_FAKE_VASP_ENGINE" in (d / "std_err.txt").read_text()
    assert not (d / "OSZICAR").exists()


def test_engine_file_in_run_directory(tmp_path, system, monkeypatch):
    state, engine = system
    d = prepare(state, tmp_path / "run")
    monkeypatch.delenv("SLD_FAKE_VASP_ENGINE")
    (d / "FAKE_VASP_ENGINE.json").write_text(engine.to_json())
    assert fake(d).returncode == 0
    assert os.path.getsize(d / "vasprun.xml") > 0
