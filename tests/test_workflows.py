"""End-to-end: `sld submit` + `sld worker` (and plain `rlaunch rapidfire`) give the same bits as the
in-process driver; extend/restart from the store alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import reference_frames, toy_spec, write_spec

from sld_workflows.cli.main import main
from sld_workflows.workflows.phases import evaluation_data


def _canon(d: dict) -> str:
    # json distinguishes -0.0 from 0.0 and prints floats exactly: string equality is bit equality
    return json.dumps(d, sort_keys=True)


def _submit(backend, tmp_path, spec, capsys, *extra) -> str:
    path = write_spec(tmp_path / f"{spec['name']}.yaml", spec)
    assert main(["submit", str(path), *backend.args, *extra]) == 0
    out = capsys.readouterr().out
    return out.split("submitted trajectory ")[1].split()[0]


def _assert_matches_reference(backend, tid, ref, start=0):
    with backend.open() as session:
        store = session.store
        doc = store.get_trajectory(tid)
        assert doc["steps_done"] == start + len(ref) - 1
        for k, (state, evaluation) in enumerate(ref, start=start):
            s = store.get_frame(tid, k, "state")
            e = store.get_frame(tid, k, "evaluation")
            assert s is not None and e is not None, f"step {k} missing"
            assert _canon(s["data"]) == _canon(state.as_dict()), f"state of step {k} differs"
            assert _canon(e["data"]) == _canon(evaluation_data(evaluation)), f"evaluation of step {k} differs"
        # each step exactly once
        assert store.count_frames(tid, "state") == len(ref)
        assert store.count_frames(tid, "evaluation") == len(ref)


@pytest.mark.parametrize(("scheme", "layout"), [("sib", "merged"), ("sib-fixed-field", "merged"),
                                                 ("sib", "split"), ("sib-fixed-field", "split")])
def test_submit_and_worker_match_in_process_driver(sld_backend, tmp_path, capsys, scheme, layout):
    spec = toy_spec(steps=4, spin_scheme=scheme, name=f"toy-{layout}")
    tid = _submit(sld_backend, tmp_path, spec, capsys, "--layout", layout)
    assert main(["worker", *sld_backend.args, "--launch-dir", str(tmp_path / "runs")]) == 0
    _assert_matches_reference(sld_backend, tid, reference_frames(spec))
    with sld_backend.open() as session:
        doc = session.store.get_trajectory(tid)
        assert doc["status"] == "COMPLETED"
        assert doc["provenance"]["spin_scheme"] == scheme and doc["provenance"]["seed"] == 7
        states = session.store.firework_states(tid)[tid]
        per_step = {"merged": 1, "split": 4 if scheme == "sib" else 2}[layout]
        expected = 4 * per_step + (0 if layout == "merged" else 2)  # split: first evaluation + final integrator
        assert states == {"COMPLETED": expected}
        # split layout stores engine inputs, and launch dirs of engine Fireworks
        e = session.store.get_frame(tid, 2, "evaluation")
        assert e["launch_dir"].startswith(str(tmp_path / "runs"))
        assert session.store.has_frame(tid, 2, "provisional_state") == (layout == "split")
    assert main(["status", *sld_backend.args]) == 0
    table = capsys.readouterr().out
    assert tid in table and "4/4" in table and "COMPLETED" in table


def test_plain_rlaunch_rapidfire_gives_same_frames(sld_backend, tmp_path, capsys):
    spec = toy_spec(steps=3, name="rl")
    tid = _submit(sld_backend, tmp_path, spec, capsys)
    run_dir = tmp_path / "rl_runs"
    run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from fireworks.scripts.rlaunch_run import rlaunch; sys.exit(rlaunch())",
         *sld_backend.rlaunch_args(), "-s", "rapidfire", "--sleep", "1"],
        cwd=run_dir, env=sld_backend.env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_matches_reference(sld_backend, tid, reference_frames(spec))
    # lpad sees the same LaunchPad
    lpad = subprocess.run(
        [sys.executable, "-c", "import sys; from fireworks.scripts.lpad_run import lpad; sys.exit(lpad())",
         *sld_backend.rlaunch_args(), "get_fws", "-s", "COMPLETED", "-d", "count"],
        cwd=run_dir, env=sld_backend.env(), capture_output=True, text=True, timeout=120,
    )
    assert lpad.returncode == 0, lpad.stderr[-2000:]
    assert lpad.stdout.strip().splitlines()[-1] == "3"
    if sld_backend.embedded:  # the SLD task took the lock and saved atomically: no lock owner left
        assert (sld_backend.project / "launchpad.json.lock").read_text() == ""


def _delete_workflow(backend, tid):
    with backend.open() as session:
        fw_ids = session.lpad.get_fw_ids({"spec.sld.trajectory": tid})
        session.lpad.delete_wf(fw_ids[0])
        assert session.lpad.get_fw_ids({"spec.sld.trajectory": tid}) == []


@pytest.mark.parametrize("delete_workflow", [False, True])
def test_extend_after_finish_and_after_deletion(sld_backend, tmp_path, capsys, delete_workflow):
    spec = toy_spec(steps=3, name="ext")
    tid = _submit(sld_backend, tmp_path, spec, capsys)
    assert main(["worker", *sld_backend.args]) == 0
    if delete_workflow:
        _delete_workflow(sld_backend, tid)
    assert main(["extend", tid, "--steps", "2", *sld_backend.args]) == 0
    assert main(["worker", *sld_backend.args]) == 0
    _assert_matches_reference(sld_backend, tid, reference_frames(spec, steps=5))


@pytest.mark.parametrize("delete_workflow", [False, True])
def test_restart_branch_from_step(sld_backend, tmp_path, capsys, delete_workflow):
    spec = toy_spec(steps=4, name="parent")
    tid = _submit(sld_backend, tmp_path, spec, capsys)
    assert main(["worker", *sld_backend.args]) == 0
    if delete_workflow:
        _delete_workflow(sld_backend, tid)
    capsys.readouterr()
    # same seed: the branch must reproduce the parent's steps 2..4 bit for bit
    assert main(["restart", tid, "--from-step", "2", *sld_backend.args]) == 0
    same = capsys.readouterr().out.split("new trajectory ")[1].split()[0]
    # new seed: a genuinely new branch
    assert main(["restart", tid, "--from-step", "2", "--seed", "99", "--steps", "3", *sld_backend.args]) == 0
    other = capsys.readouterr().out.split("new trajectory ")[1].split()[0]
    assert main(["worker", *sld_backend.args]) == 0
    ref = reference_frames(spec)
    _assert_matches_reference(sld_backend, tid, ref)            # parent kept untouched
    _assert_matches_reference(sld_backend, same, ref[2:], start=2)
    with sld_backend.open() as session:
        b = session.store.get_trajectory(other)
        assert b["parent"] == {"trajectory": tid, "step": 2}
        assert b["steps_done"] == 5 and b["provenance"]["seed"] == 99
        s3_parent = session.store.get_frame(tid, 3, "state")["data"]
        s3_branch = session.store.get_frame(other, 3, "state")["data"]
        assert _canon(s3_parent) != _canon(s3_branch)
        assert _canon(session.store.get_frame(other, 2, "state")["data"]) == _canon(ref[2][0].as_dict())


def test_resume_after_fizzled_step(sld_backend, tmp_path, capsys, monkeypatch):
    """A step that fails (engine error) fizzles; `sld resume` continues from the store."""
    spec = toy_spec(steps=3, name="fz")
    tid = _submit(sld_backend, tmp_path, spec, capsys)
    from sld_workflows.workflows import phases

    calls = {"n": 0}
    real = phases.evaluate_request

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("engine crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr("sld_workflows.workflows.tasks.evaluate_request", flaky)
    assert main(["worker", *sld_backend.args]) == 0
    with sld_backend.open() as session:
        assert session.store.firework_states(tid)[tid].get("FIZZLED") == 1
        assert session.store.get_trajectory(tid)["steps_done"] < 3
        from sld_workflows.workflows.manage import status_rows

        assert status_rows(session, tid)[0]["status"] == "FAILED"
    monkeypatch.setattr("sld_workflows.workflows.tasks.evaluate_request", real)
    assert main(["resume", tid, *sld_backend.args]) == 0
    assert main(["status", tid, *sld_backend.args]) == 0
    assert "QUEUED" in capsys.readouterr().out
    assert main(["worker", *sld_backend.args]) == 0
    _assert_matches_reference(sld_backend, tid, reference_frames(spec))


def test_step_task_needs_no_step_and_loads_old_specs():
    """The step comes from the store; a Firework stored with the old ``step`` parameter still loads."""
    from sld_workflows.store.keys import FrameKind
    from sld_workflows.workflows.phases import decode_frame
    from sld_workflows.workflows.tasks import SLDStepTask, step_firework

    fw = step_firework({"_id": "sld-x", "name": "t"}, 3)
    assert "step" not in fw.tasks[0]
    assert fw.spec["sld"] == {"trajectory": "sld-x", "step": 3, "kind": "step"}
    old = SLDStepTask.from_dict({"trajectory": "sld-x", "step": 3})
    assert old["trajectory"] == "sld-x"
    with pytest.raises(ValueError):  # an unknown kind is refused, not decoded as a state
        decode_frame({"kind": "not_an_evaluation", "data": {}})
    assert FrameKind("midpoint_evaluation").is_evaluation and not FrameKind.PROVISIONAL_STATE.is_evaluation
