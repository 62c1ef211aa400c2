"""Bad input to the orchestration commands: clear one-line errors, nothing written."""

from __future__ import annotations

import time

from conftest import toy_spec, write_spec

from sld_workflows.cli.main import main


def _store_snapshot(backend):
    with backend.open() as session:
        return (session.store.trajectories.count_documents({}), session.store.frames.count_documents({}),
                session.lpad.fireworks.count_documents({}))


def test_unknown_trajectory_id(sld_backend, tmp_path, capsys):
    tid = None
    assert main(["submit", str(write_spec(tmp_path / "s.yaml", toy_spec(steps=1))), *sld_backend.args]) == 0
    tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]
    before = _store_snapshot(sld_backend)
    for argv in (["status", "sld-nope"], ["extend", "sld-nope", "--steps", "2"], ["resume", "sld-nope"],
                 ["restart", "sld-nope", "--from-step", "0"]):
        assert main([*argv, *sld_backend.args]) == 2, argv
        err = capsys.readouterr().err
        assert "unknown trajectory id 'sld-nope'" in err, (argv, err)
    assert main(["restart", tid, "--from-step", "7", *sld_backend.args]) == 2
    assert "no stored state at step 7" in capsys.readouterr().err
    assert _store_snapshot(sld_backend) == before


def test_extend_running_trajectory_is_refused(sld_backend, tmp_path, capsys):
    assert main(["submit", str(write_spec(tmp_path / "s.yaml", toy_spec(steps=2))), *sld_backend.args]) == 0
    tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]
    before = _store_snapshot(sld_backend)
    assert main(["extend", tid, "--steps", "3", *sld_backend.args]) == 2
    err = capsys.readouterr().err
    assert f"cannot extend trajectory {tid}: it still has active Fireworks" in err
    assert main(["restart", tid, "--from-step", "0", "--steps", "0", *sld_backend.args]) == 2
    assert "--steps must be an integer >= 1" in capsys.readouterr().err
    assert _store_snapshot(sld_backend) == before
    with sld_backend.open() as session:
        assert session.store.get_trajectory(tid)["steps_requested"] == 2


def test_invalid_spec_writes_nothing(tmp_path, capsys):
    spec = toy_spec(steps=2)
    spec["dynamics"]["dt_fs"] = -1.0
    project = tmp_path / "proj"
    assert main(["submit", str(write_spec(tmp_path / "bad.yaml", spec)), "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "dynamics" in err and "dt_fs must be > 0" in err
    assert not project.exists()
    spec = toy_spec(steps=2)
    del spec["engine"]
    assert main(["submit", str(write_spec(tmp_path / "bad2.yaml", spec)), "--project", str(project)]) == 2
    assert "engine: required key is missing" in capsys.readouterr().err
    assert main(["submit", str(tmp_path / "absent.yaml"), "--project", str(project)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not project.exists()


def test_invalid_spec_leaves_existing_store_untouched(sld_backend, tmp_path, capsys):
    assert main(["submit", str(write_spec(tmp_path / "s.yaml", toy_spec(steps=1))), *sld_backend.args]) == 0
    capsys.readouterr()
    before = _store_snapshot(sld_backend)
    spec = toy_spec(steps=-3)
    assert main(["submit", str(write_spec(tmp_path / "bad.yaml", spec)), *sld_backend.args]) == 2
    assert "steps: must be an integer >= 0" in capsys.readouterr().err
    assert _store_snapshot(sld_backend) == before


def test_unreachable_launchpad_is_a_quick_clear_error(tmp_path, capsys):
    lp = tmp_path / "lp.yaml"
    lp.write_text("host: 127.0.0.1\nport: 9\nname: sld\nmongoclient_kwargs:\n  serverSelectionTimeoutMS: 1000\n")
    start = time.monotonic()
    assert main(["status", "-l", str(lp)]) == 2
    assert time.monotonic() - start < 10
    assert "cannot connect to MongoDB at 127.0.0.1:9" in capsys.readouterr().err
    spec = write_spec(tmp_path / "s.yaml", toy_spec(steps=1))
    assert main(["submit", str(spec), "-l", str(lp)]) == 2
    assert "cannot connect to MongoDB" in capsys.readouterr().err
