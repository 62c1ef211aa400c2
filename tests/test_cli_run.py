"""``sld run`` through the installed console script, in subprocesses running this checkout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml
from conftest import as_written

import sld_workflows
from sld_workflows.dynamics.step import advance
from sld_workflows.run.spec import RunSpec

CHECKOUT = Path(sld_workflows.__file__).resolve().parents[1]


def sld_executable() -> str:
    candidate = Path(sys.executable).parent / "sld"
    found = str(candidate) if candidate.is_file() else shutil.which("sld")
    assert found, "the 'sld' console script is not installed (pip install -e .)"
    return found


def sld(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    return subprocess.run([sld_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, **kwargs)


@pytest.fixture()
def spec_path(tmp_path: Path, tiny_fe_raw: dict) -> Path:
    """The shared tiny bcc Fe spec as a YAML file beside its POSCAR (given by a relative path), at 200 K."""
    raw = tiny_fe_raw
    raw["name"] = "cli-tiny"
    raw["structure"]["file"] = "POSCAR"  # tiny_fe_raw's POSCAR is tmp_path/POSCAR
    raw["velocities"]["temperature_k"] = 200.0
    raw["dynamics"].update(steps=10, temperature=200, alpha=0.2, seed=5)
    raw["output"]["every"] = 5
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_sld_run_end_to_end_matches_in_process_loop(spec_path, tmp_path):
    proc = sld("run", spec_path.name, "--out", "out", "--steps", "20", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    frames = ase.io.read(out / "trajectory.extxyz", index=":")
    assert len(frames) == 20 // 5 + 1  # frame 0, then every 5 steps (--steps overrides 10)

    spec = RunSpec.from_file(spec_path).with_steps(20)
    state, engine = spec.build_initial_state(), spec.build_engine()
    evaluation = engine.evaluate(state)
    expected = [(state, evaluation)]
    for n in range(1, 21):
        state, evaluation = advance(state, evaluation, spec.settings, engine.evaluate)
        if n % 5 == 0:
            expected.append((state, evaluation))
    for atoms, (st, ev) in zip(frames, expected, strict=True):
        assert atoms.info["step"] == st.step
        assert atoms.get_potential_energy() == ev.energy_ev  # header: repr, exact
        assert np.array_equal(atoms.get_forces(), as_written(ev.forces_ev_per_a))
        assert np.array_equal(atoms.calc.results["magmoms"], as_written(st.spins * st.moments[:, None]))
        assert np.array_equal(atoms.positions, as_written(st.positions))
    assert np.abs(expected[-1][1].forces_ev_per_a).max() > 1e-3

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_completed"] == 20 and summary["interrupted"] is False
    assert summary["final"]["energy_ev"] == expected[-1][1].energy_ev
    assert summary["command"][1:] == ["run", spec_path.name, "--out", "out", "--steps", "20", "--no-progress"]
    png = out / "overview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert proc.stderr == ""  # --no-progress: quiet


def test_sld_run_bad_spec_prints_one_line_and_writes_nothing(spec_path, tmp_path):
    raw = yaml.safe_load(spec_path.read_text())
    raw["dynamics"]["dt_fs"] = -0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = sld("run", "bad.yaml", "--out", "never", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "error: dynamics.dt_fs: must be > 0, got -0.5\n"
    assert not (tmp_path / "never").exists()


def test_sld_run_refuses_non_empty_out_without_force(spec_path, tmp_path, monkeypatch):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = sld("run", spec_path.name, "--out", "busy", "--steps", "2", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --out: directory busy is not empty (use --force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # --force: in-process through the same entry point (saves a second interpreter start)
    from sld_workflows.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", spec_path.name, "--out", "busy", "--steps", "2", "--no-progress", "--force"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert len(ase.io.read(out / "trajectory.extxyz", index=":")) == 1  # steps 0 only (every 5 > 2 steps)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sld_run_signal_keeps_what_was_written(spec_path, tmp_path, signum):
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    proc = subprocess.Popen(
        [sld_executable(), "run", spec_path.name, "--out", "out", "--steps", "10000000", "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    trajectory = tmp_path / "out" / "trajectory.extxyz"
    deadline = time.monotonic() + 60
    try:
        # wait for a few frames (every 5 steps) to be on disk
        while time.monotonic() < deadline:
            if trajectory.exists() and trajectory.read_text().count("Lattice=") >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("sld run wrote no frames within 60 s")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted after" in err and f"{signal.Signals(signum).name}: finishing the current step" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert 0 < summary["steps_completed"] < 10_000_000
    frames = ase.io.read(trajectory, index=":")
    assert len(frames) == summary["frames_written"] == summary["steps_completed"] // 5 + 1
    assert (tmp_path / "out" / "overview.png").is_file()
