"""Custodian corrections never change the physics of a trajectory: a correction that would change
KPOINTS, ENCUT, smearing, symmetry, +U or the constraint is undone and fails the step with that
reason; the LAMBDA handler stays silent while the SCF is unconverged (one change at a time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pymatgen.io.vasp.inputs import Kpoints
from test_fake_vasp import fake, prepare, system  # noqa: F401  (fixture)
from test_vasp_engine import fake_vasp_env, initial_system, vasp_engine  # noqa: F401  (fixture)

from sld_workflows.engines.vasp import VaspRunError
from sld_workflows.engines.vasp.handlers import (
    ConstraintDeviationHandler,
    GuardedUnconvergedErrorHandler,
    GuardedVaspErrorHandler,
    physics_changes,
    physics_snapshot,
)

pytestmark = pytest.mark.filterwarnings("ignore:No POTCAR file with matching TITEL")


def test_physics_changes_names_what_differs(tmp_path):
    state, _ = initial_system()
    prepare(state, tmp_path / "a", kpoints=(4, 4, 4))
    prepare(state, tmp_path / "b", kpoints=(4, 4, 4), incar={"ENCUT": 520, "IMIX": 1, "ALGO": "All"})
    changes = physics_changes(physics_snapshot(tmp_path / "a"), physics_snapshot(tmp_path / "b"))
    assert changes == ["INCAR.ENCUT 400.0 -> 520.0"]  # mixing and algorithm are not physics


@pytest.mark.usefixtures("fake_vasp_env")
def test_brmix_ladder_that_would_change_kpoints_fails_the_step_with_that_reason(tmp_path, monkeypatch):
    """Custodian's BRMIX ladder: ISTART/IMIX first (allowed), then KPOINTS Gamma -> Monkhorst
    (refused): the step fails naming KPOINTS, and the run directory keeps the intended mesh."""
    state, _ = initial_system()
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "error", "times": 6, "message": "brmix"}]))
    engine = vasp_engine(tmp_path / "runs", kpoints=[4, 4, 4], max_errors=6)
    with pytest.raises(VaspRunError, match=r"would change the physics.*KPOINTS 'Gamma 4 x 4 x 4") as err:
        engine.evaluate(state)
    kp = Kpoints.from_file(f"{err.value.directory}/KPOINTS")
    assert kp.style == Kpoints.supported_modes.Gamma and tuple(kp.kpts[0]) == (4, 4, 4)
    log = json.loads((Path(err.value.directory) / "custodian.json").read_text())
    actions = [c["actions"] for job in log for c in job["corrections"]]
    assert {"dict": "INCAR", "action": {"_set": {"IMIX": 1}}} in actions[-2]  # allowed mixing change first
    assert actions[-1] is None  # then the refused k-point change ended the run


def test_constraint_handler_waits_for_a_converged_scf(system, tmp_path, monkeypatch):  # noqa: F811
    state, _ = system
    d = prepare(state, tmp_path / "run", lambda_=0.05, incar={"NELM": 30})
    monkeypatch.setenv("SLD_FAKE_VASP_FAULTS", json.dumps([{"fault": "unconverged"}]))
    assert fake(d).returncode == 0
    assert GuardedUnconvergedErrorHandler().check(str(d))
    assert not ConstraintDeviationHandler(max_angle_deg=1.0).check(str(d))  # unconverged: not judged
    assert GuardedUnconvergedErrorHandler().correct(str(d))["actions"]  # ALGO change allowed
    assert fake(d).returncode == 0  # converged now: the deviation (λ = 0.05) is judged
    assert ConstraintDeviationHandler(max_angle_deg=1.0).check(str(d))


def test_guarded_handler_restores_inputs_it_may_not_change(tmp_path, system):  # noqa: F811
    state, _ = system
    d = prepare(state, tmp_path / "run", kpoints=(4, 4, 4))
    (d / "vasp.out").write_text("BRMIX: very serious problems\n the old and the new charge density differ\n")
    intended = (d / "KPOINTS").read_bytes(), (d / "INCAR").read_bytes()
    h = GuardedVaspErrorHandler()
    h.error_count["brmix"] = 2  # the next rung of Custodian's ladder changes the k-point style
    assert h.check(str(d))
    result = h.correct(str(d))
    assert result["actions"] is None and "KPOINTS" in result["errors"][-1]
    assert ((d / "KPOINTS").read_bytes(), (d / "INCAR").read_bytes()) == intended
