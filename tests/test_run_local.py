"""The in-process driver: trajectory frames equal a direct ``advance`` loop, reproducibility,
summary, plot, interruption, and the extxyz frame layout."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import ase.io
import numpy as np
import pytest
from conftest import as_written

from sld_workflows.dynamics.step import advance
from sld_workflows.evaluation import Evaluation
from sld_workflows.run.local import run_local
from sld_workflows.run.output import TrajectoryWriter, frame_atoms, frame_record, plot_run
from sld_workflows.run.spec import RunSpec
from sld_workflows.state import SLDState

# per-atom columns are compared as ASE prints them (conftest.as_written); header scalars (energy,
# time_fs, ...) are printed with repr and round-trip exactly.


@pytest.fixture()
def raw(tiny_fe_raw: dict) -> dict:
    """The shared tiny bcc Fe spec with a Zeeman field too, 12 full-SIB steps, every third stored."""
    tiny_fe_raw["engine"]["zeeman"] = {"field_ev_per_mub": [0.0, 0.0, 0.02]}
    tiny_fe_raw["dynamics"].update(steps=12, spin_scheme="sib")
    tiny_fe_raw["output"]["every"] = 3
    return tiny_fe_raw


def reference_frames(raw: dict) -> list[tuple[SLDState, Evaluation]]:
    """The direct in-process loop: evaluate, then ``advance`` ``steps`` times, keeping stored steps."""
    spec = RunSpec.from_dict(raw)
    state, engine = spec.build_initial_state(), spec.build_engine()
    evaluation = engine.evaluate(state)
    frames = [(state, evaluation)]
    for n in range(1, spec.steps + 1):
        state, evaluation = advance(state, evaluation, spec.settings, engine.evaluate)
        if n % spec.output_every == 0:
            frames.append((state, evaluation))
    return frames


def assert_frames_match(path: Path, expected: list[tuple[SLDState, Evaluation]]) -> None:
    frames = ase.io.read(path, index=":")
    assert len(frames) == len(expected)
    for atoms, (state, evaluation) in zip(frames, expected, strict=True):
        # header scalars: exact
        assert atoms.info["step"] == state.step
        assert atoms.info["time_fs"] == state.time_fs
        assert atoms.get_potential_energy() == evaluation.energy_ev
        assert np.array_equal(atoms.cell.array, state.cell)
        # per-atom columns: identical to the loop's values printed with ASE's %16.8f
        assert np.array_equal(atoms.positions, as_written(state.positions))
        assert np.array_equal(atoms.get_forces(), as_written(evaluation.forces_ev_per_a))
        assert np.array_equal(atoms.calc.results["magmoms"], as_written(state.spins * state.moments[:, None]))
        assert np.array_equal(atoms.arrays["spins"], as_written(state.spins))
        assert np.array_equal(atoms.arrays["fields_ev_per_mub"], as_written(evaluation.fields_ev_per_mub))
        assert np.array_equal(atoms.arrays["velocities_a_per_fs"], as_written(state.velocities))
        assert np.array_equal(atoms.arrays["moments_mub"], as_written(state.moments))


def test_trajectory_equals_direct_advance_loop(raw, tmp_path):
    result = run_local(raw, tmp_path / "out", progress=False)
    expected = reference_frames(raw)
    assert len(expected) == 12 // 3 + 1
    assert result.steps_completed == 12 and not result.interrupted
    assert result.frames_written == 5
    # the comparison means something: forces, spins and velocities all move over the run
    assert np.abs(expected[-1][1].forces_ev_per_a).max() > 1e-3
    assert np.abs(expected[-1][0].spins - expected[0][0].spins).max() > 1e-3
    assert_frames_match(result.trajectory_path, expected)
    final_state, final_eval = result.final_state, result.final_evaluation
    assert final_state.same_as(expected[-1][0])
    assert final_eval.energy_ev == expected[-1][1].energy_ev
    saved = SLDState.from_dict(json.loads(result.final_state_path.read_text()))
    assert saved.same_as(final_state)
    # full SIB: one evaluation for the initial state, two per step
    assert result.engine_calls == 1 + 2 * 12


def test_fixed_field_scheme_calls_engine_once_per_step(raw, tmp_path):
    raw["dynamics"]["spin_scheme"] = "sib-fixed-field"
    result = run_local(raw, tmp_path / "out", progress=False)
    assert result.engine_calls == 1 + 12
    assert_frames_match(result.trajectory_path, reference_frames(raw))
    summary = json.loads(result.summary_path.read_text())
    assert summary["spin_scheme"] == "sib-fixed-field" and summary["engine_calls_per_step"] == 1


def test_same_spec_twice_is_identical_and_another_seed_differs(raw, tmp_path):
    a = run_local(raw, tmp_path / "a", progress=False)
    b = run_local(raw, tmp_path / "b", progress=False)
    assert a.trajectory_path.read_bytes() == b.trajectory_path.read_bytes()
    raw["dynamics"]["seed"] = 12
    c = run_local(raw, tmp_path / "c", progress=False)
    fa = ase.io.read(a.trajectory_path, index=":")
    fc = ase.io.read(c.trajectory_path, index=":")
    assert len(fa) == len(fc)
    assert not np.allclose(fa[0].arrays["spins"], fc[0].arrays["spins"])  # random initial spins
    assert not np.allclose(fa[-1].get_forces(), fc[-1].get_forces())


def test_summary_and_plot(raw, tmp_path):
    result = run_local(raw, tmp_path / "out", progress=False)
    summary = json.loads(result.summary_path.read_text())
    assert summary["name"] == "tiny-fe"
    assert summary["spec"] == RunSpec.from_dict(raw).spec
    assert summary["settings"]["dt_fs"] == 0.5 and summary["settings"]["seed"] == 11
    assert summary["spin_scheme"] == "sib" and summary["engine_calls_per_step"] == 2
    assert summary["engine"]["class"] == "sld_workflows.engines.composite.CompositeEngine"
    assert [t["@class"] for t in summary["engine"]["as_dict"]["engines"]] == [
        "HeisenbergEngine", "ZeemanEngine", "HarmonicEngine"]
    assert summary["steps_requested"] == summary["steps_completed"] == 12
    assert summary["frames_written"] == 5 and summary["interrupted"] is False
    assert summary["wall_time_s"] > 0
    assert summary["final"]["energy_ev"] == result.final_evaluation.energy_ev
    assert summary["final"]["step"] == 12
    assert summary["versions"]["ase"] == ase.__version__
    # the plot exists and is not blank: a 750x800 px figure with many distinct colours
    from matplotlib.image import imread

    image = imread(result.plot_path)
    assert image.shape[0] == 800 and image.shape[1] == 750
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20
    assert result.plot_path.stat().st_size > 10_000


class _InterruptingEngine:
    """Wraps an engine and sends this process SIGINT on its ``at``-th call (Ctrl-C mid-run)."""

    def __init__(self, engine, at: int) -> None:
        self.engine, self.at, self.calls = engine, at, 0

    def evaluate(self, state):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return self.engine.evaluate(state)

    def as_dict(self):
        return self.engine.as_dict()


def test_sigint_stops_cleanly_after_the_current_step(raw, tmp_path, capsys, monkeypatch):
    spec = RunSpec.from_dict(raw).with_steps(1000)
    wrapped = _InterruptingEngine(spec.build_engine(), at=1 + 2 * 7 + 1)  # during step 8
    monkeypatch.setattr(RunSpec, "build_engine", lambda self: wrapped)
    previous = signal.getsignal(signal.SIGINT)
    result = run_local(spec, tmp_path / "out", progress=False)
    assert signal.getsignal(signal.SIGINT) is previous  # handler restored
    assert result.interrupted and result.steps_completed == 8
    frames = ase.io.read(result.trajectory_path, index=":")
    assert [a.info["step"] for a in frames] == [0, 3, 6]
    summary = json.loads(result.summary_path.read_text())
    assert summary["interrupted"] is True and summary["steps_completed"] == 8
    assert summary["steps_requested"] == 1000
    assert result.plot_path.is_file()
    assert "interrupted after 8 of 1000 steps" in capsys.readouterr().err


def test_frame_atoms_layout_round_trips_through_extxyz(tmp_path):
    n = 3
    state = SLDState(
        species=("Fe", "Fe", "O"), positions=np.arange(9.0).reshape(3, 3) * 0.7, cell=np.diag([4.0, 5.0, 6.0]),
        velocities=np.full((n, 3), 1e-3), spins=[[0, 0, 1], [1, 0, 0], [0, 0, 0]], moments=[2.2, 2.0, 0.0],
        time_fs=1.5, step=3,
    )
    stress = np.array([[0.01, 0.002, 0.0], [0.002, -0.02, 0.0], [0.0, 0.0, 0.005]])
    evaluation = Evaluation(
        -1.25, np.arange(9.0).reshape(3, 3) / 10, [[0.1, 0.2, 0.0], [0.0, 0.3, 0.1], [0, 0, 0]], stress,
        field_parallel_ev_per_mub=[0.5, -0.25, 0.0],
    )
    atoms = frame_atoms(state, evaluation, {"order_m": 0.75, "temperature_bath_k": 10.0})
    path = tmp_path / "f.extxyz"
    with TrajectoryWriter(path) as writer:
        writer.write(atoms)
    with TrajectoryWriter(path, mode="a") as writer:
        writer.write(atoms)
    frames = ase.io.read(path, index=":")
    assert len(frames) == 2
    back = frames[1]
    assert back.get_chemical_symbols() == ["Fe", "Fe", "O"]
    assert back.get_potential_energy() == -1.25
    assert np.array_equal(back.get_forces(), evaluation.forces_ev_per_a)
    assert np.array_equal(back.calc.results["magmoms"], [[0, 0, 2.2], [2.0, 0, 0], [0, 0, 0]])
    # ASE stores stress in Voigt order (xx, yy, zz, yz, xz, xy)
    assert np.allclose(back.get_stress(voigt=False), stress, rtol=0, atol=1e-15)
    assert np.array_equal(back.arrays["field_parallel_ev_per_mub"], [0.5, -0.25, 0.0])
    assert back.info["order_m"] == 0.75 and back.info["step"] == 3 and back.info["time_fs"] == 1.5
    # T_s = sum|mu s x B|^2 / (2 kB sum mu s.B) with the full field B = B_perp + B_par s
    mb = np.array([[2.2 * 0.1, 2.2 * 0.2, 2.2 * 0.5], [2.0 * -0.25, 2.0 * 0.3, 2.0 * 0.1]])
    s = np.array([[0, 0, 1.0], [1.0, 0, 0]])
    expected_ts = np.sum(np.cross(s, mb) ** 2) / (2 * 8.617333262e-5 * np.sum(s * mb))
    assert back.info["temperature_spin_k"] == pytest.approx(expected_ts, rel=1e-12)
    assert frame_record(back)["energy_ev"] == -1.25 and frame_record(back)["order_m"] == 0.75


def test_plot_run_draws_order_parameters_from_records(tmp_path):
    t = np.linspace(0, 100, 11)
    records = [{"time_fs": x, "energy_ev": -x / 50, "temperature_lattice_k": 300 - x, "temperature_bath_k": 300,
                "order_m_s": np.tanh(x / 30)} for x in t]
    path = plot_run(records, tmp_path / "p.png", title="test")
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no frames"):
        plot_run([], tmp_path / "empty.png")


def test_model_preset_run_matches_loop_and_records_order_parameters(tmp_path):
    raw = {
        "name": "fe-model",
        "structure": {"preset": "bcc_fe", "supercell": [2, 2, 2]},
        "spins": {"init": "random"},
        "velocities": {"temperature_k": 300},
        "engine": {"kind": "model"},
        "dynamics": {"dt_fs": 0.1, "steps": 10, "ensemble": "npt", "temperature": 300, "alpha": 0.1, "seed": 3},
        "output": {"every": 5},
    }
    result = run_local(raw, tmp_path / "out", progress=False)
    expected = reference_frames(raw)
    assert_frames_match(result.trajectory_path, expected)
    frames = ase.io.read(result.trajectory_path, index=":")
    assert np.allclose(frames[-1].get_stress(voigt=False), expected[-1][1].stress_ev_per_a3, rtol=0, atol=1e-15)
    assert not np.array_equal(expected[-1][0].cell, expected[0][0].cell)  # npt moved the cell
    summary = json.loads(result.summary_path.read_text())
    try:
        from sld_workflows.analysis.order import order_parameters
    except ImportError:
        assert summary["order_parameters_available"] is False
        assert not any(k.startswith("order_") for k in frames[0].info)
    else:
        assert summary["order_parameters_available"] is True
        for atoms, (state, _) in zip(frames, expected, strict=True):
            values = order_parameters("bcc_fe", state)
            assert atoms.info["order_m_z"] == values["m_z"] and atoms.info["order_m"] == values["m"]
        assert summary["final"]["order_parameters"]["m_z"] == order_parameters("bcc_fe", expected[-1][0])["m_z"]


def test_frames_name_the_spin_scheme(raw, tmp_path):
    result = run_local(raw, tmp_path / "out", progress=False)
    assert {a.info["spin_scheme"] for a in ase.io.read(result.trajectory_path, index=":")} == {"sib"}


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io

    from sld_workflows.run.local import _progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert _progress_bar(10, True, "x").disable  # not a TTY
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert _progress_bar(10, False, "x").disable  # progress=False
    with _progress_bar(10, True, "run-name") as bar:
        assert not bar.disable
        bar.update(10)
    assert "run-name" in terminal.getvalue() and "10/10" in terminal.getvalue()


class _FailingEngine:
    """Wraps an engine and raises on its ``at``-th call (an engine crash mid-run)."""

    def __init__(self, engine, at: int) -> None:
        self.engine, self.at, self.calls = engine, at, 0

    def evaluate(self, state):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("engine crashed")
        return self.engine.evaluate(state)

    def as_dict(self):
        return self.engine.as_dict()


def test_engine_failure_keeps_outputs_and_reraises(raw, tmp_path, monkeypatch):
    spec = RunSpec.from_dict(raw)
    engine = spec.build_engine()
    failing = _FailingEngine(engine, at=1 + 2 * 6 + 2)  # during step 7
    monkeypatch.setattr(RunSpec, "build_engine", lambda self: failing)
    with pytest.raises(RuntimeError, match="engine crashed"):
        run_local(spec, tmp_path / "out", progress=False)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["error"] == "RuntimeError: engine crashed" and summary["steps_completed"] == 6
    assert [a.info["step"] for a in ase.io.read(tmp_path / "out" / "trajectory.extxyz", index=":")] == [0, 3, 6]
    saved = SLDState.from_dict(json.loads((tmp_path / "out" / "final_state.json").read_text()))
    assert saved.step == 6
    # an engine that fails on the initial state writes nothing
    failing = _FailingEngine(engine, at=1)
    with pytest.raises(RuntimeError):
        run_local(spec, tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()
