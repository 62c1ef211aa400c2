"""VaspEngine + Custodian + ``sld-fake-vasp`` end to end: trajectories agree with the model engine
driven directly; injected faults are handled (or end the step cleanly and restartably)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import scf_counts

import sld_workflows
from sld_workflows.dynamics.schedules import TemperatureSchedule
from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.dynamics.step import advance
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.engines.vasp import VaspEngine, VaspRunError
from sld_workflows.units import EV_PER_A_AMU_TO_A_PER_FS2, gyromagnetic_ratio_rad_per_fs_per_ev_per_mub
from sld_workflows.vectors import unit_rows

pytestmark = pytest.mark.filterwarnings("ignore:No POTCAR file with matching TITEL")
CHECKOUT = Path(sld_workflows.__file__).resolve().parents[1]


def initial_system():
    """bcc Fe 2x2x2 (16 atoms), spins tilted and atoms displaced (seeded) so fields and forces are
    non-trivial (the ferromagnetic ground state has zero fields)."""
    state, engine = make_preset("bcc_fe", supercell=(2, 2, 2))
    rng = np.random.default_rng(2026)
    spins = state.spins + 0.35 * rng.normal(size=state.spins.shape)
    state = state.replace(spins=spins / np.linalg.norm(spins, axis=1)[:, None],
                          positions=state.positions + 0.04 * rng.normal(size=state.positions.shape))
    return state, engine


def settings(scheme: str) -> DynamicsSettings:
    return DynamicsSettings(dt_fs=1.0, alpha=0.1, temperature=TemperatureSchedule.constant(100.0),
                            ensemble="nvt", friction_per_fs=0.01, spin_scheme=scheme, seed=4242)


@pytest.fixture
def fake_vasp_env(tmp_path, monkeypatch):
    """The model engine as the stand-in's engine, the checkout on PYTHONPATH, 12-digit fields."""
    _, engine = initial_system()
    path = tmp_path / "model_engine.json"
    path.write_text(engine.to_json())
    monkeypatch.setenv("SLD_FAKE_VASP_ENGINE", str(path))
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT))
    monkeypatch.setenv("SLD_FAKE_VASP_FIELD_DIGITS", "12")
    monkeypatch.delenv("SLD_FAKE_VASP_FAULTS", raising=False)
    return tmp_path


def vasp_engine(root: Path, **extra) -> VaspEngine:
    spec = {"type": "vasp", "rwigs": {"Fe": 1.3}, "lambda": 10.0, "kpoints": [2, 2, 2], "command": ["sld-fake-vasp"],
            "run_dir": str(root), "polling_time_step_s": 0.05, "monitor_freq": 4, "frozen_timeout_s": 8.0,
            "incar": {"ENCUT": 450}}
    spec.update(extra)
    return VaspEngine.from_spec(spec)


def run(state, evaluate, s, steps):
    ev = evaluate(state)
    traj = [(state, ev)]
    for _ in range(steps):
        state, ev = advance(state, ev, s, evaluate)
        traj.append((state, ev))
    return traj


def max_dev(a, b):
    dpos = max(float(np.abs(x.positions - y.positions).max()) for (x, _), (y, _) in zip(a, b, strict=True))
    dspin = max(float(np.abs(x.spins - y.spins).max()) for (x, _), (y, _) in zip(a, b, strict=True))
    return dpos, dspin


def normalised_midpoint(engine):
    """VASP imposes only the direction of a SIB midpoint spin s̄: evaluate the model there."""

    def evaluate(state):
        if not state.unit_spins:
            return engine.evaluate(state.replace(spins=unit_rows(state.spins), unit_spins=True))
        return engine.evaluate(state)

    return evaluate


#: SLD_FAKE_VASP_FIELD_DIGITS = 12: each printed field component carries a relative rounding error
#: of at most half a unit in the 12th digit of a mantissa 0.d..d, i.e. 0.5e-12/0.1 = 5e-12.
FIELD_REL_ROUNDING = 5e-12
#: vasprun.xml forces are printed F16.8: absolute rounding 5e-9 eV/Å per component.
FORCE_ROUNDING_EV_PER_A = 0.5e-8


def perturbation_growth(state, evaluate, s, steps, size=1e-8, seed=0):
    """How much a small random perturbation of spins and positions grows over ``steps`` steps of the
    model (max over the window of the deviation, relative to the initial one; the same noise)."""
    rng = np.random.default_rng(seed)
    pert = state.replace(spins=unit_rows(state.spins + size * rng.normal(size=state.spins.shape)),
                         positions=state.positions + size * rng.normal(size=state.positions.shape))
    d0 = max(np.abs(pert.spins - state.spins).max(), np.abs(pert.positions - state.positions).max())
    return max(max(max_dev([a], [b])) for a, b in zip(run(state, evaluate, s, steps), run(pert, evaluate, s, steps),
                                                      strict=True)) / d0


def agreement_budget(ref, s, evaluate, state):
    """Bound on max(|Δs|, |Δr|/Å) between the stand-in and the model trajectories, from what the
    stand-in prints. Per step the printed fields perturb each spin rotation by at most
    γ'√(1+α²)·√3·5e-12·max|B|·Δt (once per engine call), and the printed forces each velocity by
    √3·5e-9/m·Δt, which drifts into ½N²·δa·Δt² of position over N steps. Errors injected during the
    window grow by at most the window's perturbation growth A (measured with the model alone: ~2.5
    for sib-fixed-field, ~1.4 for sib here); rounding errors have random directions like the probe."""
    n = len(ref) - 1
    b_max = max(np.linalg.norm(e.fields_ev_per_mub, axis=1).max() for _, e in ref)
    gamma_p = gyromagnetic_ratio_rad_per_fs_per_ev_per_mub(s.g_factor) / (1 + s.alpha**2)
    spin_kick = gamma_p * np.sqrt(1 + s.alpha**2) * np.sqrt(3) * FIELD_REL_ROUNDING * b_max * s.dt_fs
    accel = np.sqrt(3) * FORCE_ROUNDING_EV_PER_A / state.masses_amu.min() * EV_PER_A_AMU_TO_A_PER_FS2
    growth = max(perturbation_growth(state, evaluate, s, n, seed=k) for k in range(3))
    return growth * (n * s.evaluations_per_step * spin_kick + 0.5 * n**2 * accel * s.dt_fs**2)


@pytest.mark.slow  # ~25 s: 21 stand-in runs under Custodian
def test_20_steps_sib_fixed_field_agree_with_model(fake_vasp_env):
    state, engine = initial_system()
    s = settings("sib-fixed-field")
    ref = run(state, engine.evaluate, s, 20)
    vasp = vasp_engine(fake_vasp_env / "runs")
    got = run(state, vasp.evaluate, s, 20)
    dpos, dspin = max_dev(ref, got)
    budget = agreement_budget(ref, s, engine.evaluate, state)
    print(f"20-step sib-fixed-field: max |dr| = {dpos:.2e} Å, max |ds| = {dspin:.2e}, budget {budget:.2e}")
    assert dpos <= budget and dspin <= budget  # measured 4.6e-11 Å and 6.2e-11, budget ~1e-9
    # the trajectory really moved (so the comparison is not trivially satisfied)
    assert np.abs(ref[-1][0].spins - ref[0][0].spins).max() > 1e-2
    assert np.abs(ref[-1][0].positions - ref[0][0].positions).max() > 1e-3
    # energies E0 - E_p, forces, stress agree to the printed precision of vasprun.xml (F16.8:
    # half-unit 5e-9; E_p is subtracted exactly as printed) plus the change along the two
    # trajectories: |ΔE| ≤ Σ_i √3(|F_i||δr| + μ_i|B_i||δs|), |ΔF| ≤ (force constants < 10 eV/Å²)·|δr|
    for (_, e_ref), (_, e_got) in zip(ref, got, strict=True):
        drift = np.sqrt(3) * np.sum(np.linalg.norm(e_ref.forces_ev_per_a, axis=1) * dpos + state.moments
                                    * np.linalg.norm(e_ref.fields_ev_per_mub, axis=1) * dspin)
        assert abs(e_ref.energy_ev - e_got.energy_ev) <= 0.5e-8 + drift
        assert np.abs(e_ref.forces_ev_per_a - e_got.forces_ev_per_a).max() <= 0.5e-8 + 10.0 * np.sqrt(3) * dpos
        assert np.abs(e_ref.stress_ev_per_a3 - e_got.stress_ev_per_a3).max() <= 2e-8 / 1602.1766208
    # restart chain: every call after the first was seeded from the previous one (the WAVECAR
    # generation counts up), and our parsers report the SCF steps the run printed
    infos = [e.info for _, e in got]
    assert not infos[0]["restart_chain"]["intact"]
    assert all(i["restart_chain"]["intact"] for i in infos[1:])
    for k, info in enumerate(infos):
        run_dir = Path(info["run_dir"])
        assert (info["scf_iterations_oszicar"], info["scf_iterations"]) == scf_counts(run_dir)
        assert (run_dir / "WAVECAR").read_text().splitlines()[1] == f"generation {k + 1}"
    assert all(i["scf_iterations"] < infos[0]["scf_iterations"] for i in infos[1:])  # restarts converge sooner
    assert infos[5]["restart_chain"]["seeded_from"].endswith("step_000004")
    assert infos[3]["e_p_ev"] > 0 and infos[3]["moment_convention"] == "state"


@pytest.mark.slow
def test_20_steps_full_sib_agree_with_model(fake_vasp_env):
    state, engine = initial_system()
    s = settings("sib")
    ref = run(state, normalised_midpoint(engine), s, 20)
    vasp = vasp_engine(fake_vasp_env / "runs")
    got = run(state, vasp.evaluate, s, 20)
    dpos, dspin = max_dev(ref, got)
    budget = agreement_budget(ref, s, normalised_midpoint(engine), state)
    print(f"20-step sib: max |dr| = {dpos:.2e} Å, max |ds| = {dspin:.2e}, budget {budget:.2e}")
    assert dpos <= budget and dspin <= budget  # measured 6.4e-11 Å and 7.0e-11, budget ~1e-9
    assert (fake_vasp_env / "runs" / "step_000007_mid" / "OSZICAR").is_file()


def test_real_vasp_precision_bound(fake_vasp_env, monkeypatch):
    """With VASP's own E12.5 field format (mantissa 0.ddddd) each printed P component carries a
    rounding error of half a unit in the 5th digit: between 5e-6 and 5e-5 of its value depending on
    the mantissa, so |δB_i| ≤ √3·5e-5·|B_i| per site (the projection P⊥ does not enlarge it)."""
    monkeypatch.setenv("SLD_FAKE_VASP_FIELD_DIGITS", "5")
    state, engine = initial_system()
    ref_ev = engine.evaluate(state)
    ev = vasp_engine(fake_vasp_env / "runs5").evaluate(state)
    b = np.linalg.norm(ref_ev.fields_ev_per_mub, axis=1)
    err = np.linalg.norm(ev.fields_ev_per_mub - ref_ev.fields_ev_per_mub, axis=1)
    assert np.all(err <= np.sqrt(3) * 5e-5 * b * (1 + 1e-9) + 1e-15)
    print(f"5-digit fields: max |dB|/|B| = {np.max(err / b):.2e}")
    assert err.max() > 1e-9  # the 5-digit rounding is visible (this is not a 12-digit run)


@pytest.mark.slow  # ~23 s: 6 steps, 5 faults, one 8 s frozen-job timeout
def test_faults_are_corrected_and_trajectory_completes(fake_vasp_env, monkeypatch):
    faults = [
        {"fault": "error", "message": "brmix", "match": "step_000001", "times": 1},
        {"fault": "unconverged", "match": "step_000002", "times": 1},
        {"fault": "hang", "match": "step_000003", "times": 1},
        {"fault": "error", "message": "edddav", "match": "step_000004", "times": 1},
        {"fault": "stderr", "match": "step_000005", "times": 1},
    ]
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps(faults))
    state, engine = initial_system()
    s = settings("sib-fixed-field")
    ref = run(state, engine.evaluate, s, 5)
    got = run(state, vasp_engine(fake_vasp_env / "runs", incar={"ENCUT": 450, "KPAR": 2}).evaluate, s, 5)
    dpos, dspin = max_dev(ref, got)
    budget = agreement_budget(ref, s, engine.evaluate, state)
    assert dpos <= budget and dspin <= budget  # corrected runs print the same physics
    corr = {k: got[k][1].info["corrections"] for k in range(6)}
    assert corr[0] == []
    assert [c["handler"] for c in corr[1]] == ["GuardedVaspErrorHandler"] and "brmix" in corr[1][0]["errors"]
    assert corr[2][0]["handler"] == "GuardedUnconvergedErrorHandler"
    assert corr[2][0]["actions"][0]["action"]["_set"]["ALGO"] == "All"
    assert corr[3][0]["handler"] == "StaticFrozenJobHandler" and corr[3][0]["errors"] == ["Frozen job"]
    assert corr[4][0]["handler"] == "GuardedVaspErrorHandler" and "edddav" in corr[4][0]["errors"]
    assert corr[5][0]["handler"] == "GuardedStdErrHandler" and corr[5][0]["errors"] == ["out_of_memory"]
    assert corr[5][0]["actions"][0]["action"]["_set"] == {"KPAR": 1}
    # BRMIX's first fix keeps the chain; EDDDAV's fix deletes CHGCAR: recorded, never silent
    assert got[1][1].info["restart_chain"]["intact"]
    broken = got[4][1].info["restart_chain"]["broken_by"]
    assert broken and broken[0]["action"]["file"] == "CHGCAR"
    assert not got[4][1].info["restart_chain"]["intact"]
    incar2 = (fake_vasp_env / "runs" / "step_000002" / "INCAR").read_text()
    assert "ALGO = All" in incar2


def test_unrecoverable_crash_is_restartable(fake_vasp_env, monkeypatch):
    state, _ = initial_system()
    s = settings("sib-fixed-field")
    root = fake_vasp_env / "runs"
    clean = run(state, vasp_engine(fake_vasp_env / "clean").evaluate, s, 2)
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "crash", "match": "step_000002", "times": 9}]))
    engine = vasp_engine(root)
    st, ev = state, engine.evaluate(state)
    st, ev = advance(st, ev, s, engine.evaluate)
    with pytest.raises(VaspRunError) as info:
        advance(st, ev, s, engine.evaluate)
    msg = str(info.value)
    assert "step_000002" in msg and "ConstraintBlockValidator" in msg and "cut off" in msg
    job = json.loads((root / "step_000000" / "custodian.json").read_text())[0]["job"]
    assert job["auto_gamma"] is False and job["vasp_cmd"] == ["sld-fake-vasp"]
    failed = root / "step_000002"
    assert (failed / "INCAR").is_file() and (failed / "OSZICAR").is_file()  # left for inspection
    # remove the fault, rerun the step in a fresh engine (new process after a crash)
    monkeypatch.delenv("SLD_FAKE_VASP_FAULTS")
    engine2 = vasp_engine(root)
    st2, ev2 = advance(st, ev, s, engine2.evaluate)
    assert (root / "step_000002.prev-1" / "OSZICAR").is_file()
    assert np.array_equal(st2.positions, clean[2][0].positions) and np.array_equal(st2.spins, clean[2][0].spins)
    assert np.array_equal(ev2.fields_ev_per_mub, clean[2][1].fields_ev_per_mub)
    assert np.array_equal(ev2.forces_ev_per_a, clean[2][1].forces_ev_per_a)
    assert ev2.info["restart_chain"]["seeded_from"].endswith("step_000001")


def test_engine_serialises_and_rejects_bad_spec(tmp_path):
    engine = vasp_engine(tmp_path, moment_convention="M_int", max_errors=3)
    again = VaspEngine.from_dict(json.loads(engine.to_json()))
    assert again.as_dict() == engine.as_dict()
    assert again.custodian.max_errors == 3 and again.input_set.kpoints == (2, 2, 2)
    from sld_workflows.errors import SpecError

    with pytest.raises(SpecError, match="unknown keys"):
        VaspEngine.from_spec({"rwigs": {"Fe": 1.3}, "lamda": 3})
    with pytest.raises(SpecError, match="rwigs"):
        VaspEngine.from_spec({"lambda": 3})
    with pytest.raises(SpecError, match="moment_convention"):
        VaspEngine.from_spec({"rwigs": {"Fe": 1.3}, "moment_convention": "Mint"})


def test_built_from_run_spec(tmp_path):
    from sld_workflows.errors import SpecError
    from sld_workflows.run.spec import RunSpec

    state, _ = make_preset("bcc_fe")
    state.structure.to(filename=str(tmp_path / "fe.cif"))
    base = {"name": "t", "structure": {"file": str(tmp_path / "fe.cif"), "moments": {"Fe": 2.2}},
            "dynamics": {"dt_fs": 1.0, "steps": 3}}
    spec = RunSpec.from_dict({**base, "engine": {"kind": "vasp", "rwigs": {"Fe": 1.3}, "command": "sld-fake-vasp",
                                         "run_dir": str(tmp_path / "runs"), "kpoints": [3, 3, 3]}})
    engine = spec.build_engine()
    assert isinstance(engine, VaspEngine)
    assert engine.command == ("sld-fake-vasp",) and engine.input_set.kpoints == (3, 3, 3)
    assert engine.run_root == str((tmp_path / "runs").resolve())
    with pytest.raises(SpecError, match="lamda"):
        RunSpec.from_dict({**base, "engine": {"kind": "vasp", "rwigs": {"Fe": 1.3}, "lamda": 2}}).build_engine()


def test_persistent_fault_exhausts_max_errors(fake_vasp_env, monkeypatch):
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "unconverged", "times": 99}]))
    state, _ = initial_system()
    engine = vasp_engine(fake_vasp_env / "runs", max_errors=1)
    with pytest.raises(VaspRunError, match=r"step_000000.*MaxCorrections.*UnconvergedErrorHandler") as info:
        engine.evaluate(state)
    assert info.value.directory.endswith("step_000000")
    assert (Path(info.value.directory) / "custodian.json").is_file()


def test_small_lambda_is_raised_and_fields_unchanged(fake_vasp_env):
    """ConstraintDeviationHandler through the whole stack: LAMBDA 0.05 -> 0.5 -> 5 (deviation < 1°),
    the field (λ-independent at convergence) equals the model's; the correction is in the info."""
    state, engine = initial_system()
    ev = vasp_engine(fake_vasp_env / "runs", **{"lambda": 0.05}).evaluate(state)
    handlers = [c["handler"] for c in ev.info["corrections"]]
    assert handlers == ["ConstraintDeviationHandler", "ConstraintDeviationHandler"]
    assert ev.info["lambda"] == 5.0 and ev.info["restart_chain"]["broken_by"] == []
    ref = engine.evaluate(state)
    assert np.abs(ev.fields_ev_per_mub - ref.fields_ev_per_mub).max() < 1e-10


def test_same_state_twice_reseeds_from_its_own_run(fake_vasp_env):
    state, _ = initial_system()
    engine = vasp_engine(fake_vasp_env / "runs")
    first = engine.evaluate(state)
    second = engine.evaluate(state)
    assert np.array_equal(first.fields_ev_per_mub, second.fields_ev_per_mub)
    assert second.info["restart_chain"]["seeded_from"].endswith("step_000000.prev-1")
    # the first run's directory was moved aside to .prev-1 by the second
    for ev, run_dir in ((first, first.info["run_dir"] + ".prev-1"), (second, second.info["run_dir"])):
        assert (ev.info["scf_iterations_oszicar"], ev.info["scf_iterations"]) == scf_counts(Path(run_dir))
    assert second.info["scf_iterations"] < first.info["scf_iterations"]  # the second restarted from the first
