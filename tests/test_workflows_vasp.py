"""Split layout with the VASP engine (Custodian + ``sld-fake-vasp``): every engine Firework runs VASP
in its own launch directory, seeded with WAVECAR/CHGCAR of the previous evaluation's directory (a
different Firework), and the stored frames equal the in-process driver with the same engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CHECKOUT_ROOT, write_spec
from monty.json import MontyEncoder

from sld_workflows.cli.main import main
from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.dynamics.step import advance
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.engines.vasp import VaspEngine
from sld_workflows.store.runtime import WorkerRuntime
from sld_workflows.workflows.phases import evaluation_data

pytestmark = [pytest.mark.filterwarnings("ignore:No POTCAR file with matching TITEL"), pytest.mark.slow]


def _system():
    state, engine = make_preset("bcc_fe", supercell=(1, 1, 1))
    rng = np.random.default_rng(11)
    spins = state.spins + 0.3 * rng.normal(size=state.spins.shape)
    state = state.replace(spins=spins / np.linalg.norm(spins, axis=1)[:, None],
                          positions=state.positions + 0.03 * rng.normal(size=state.positions.shape))
    return state, engine


def _vasp(run_dir: Path) -> VaspEngine:
    return VaspEngine.from_spec({"rwigs": {"Fe": 1.3}, "lambda": 10.0, "kpoints": [1, 1, 1],
                                 "command": ["sld-fake-vasp"], "run_dir": str(run_dir),
                                 "polling_time_step_s": 0.05, "monitor_freq": 4, "frozen_timeout_s": 8.0})


def test_split_layout_vasp_engine_fireworks(sld_backend, tmp_path, capsys, monkeypatch):
    state, model = _system()
    engine_file = tmp_path / "model_engine.json"
    engine_file.write_text(model.to_json())
    monkeypatch.setenv("SLD_FAKE_VASP_ENGINE", str(engine_file))
    monkeypatch.setenv("SLD_FAKE_VASP_FIELD_DIGITS", "12")
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT_ROOT))
    monkeypatch.delenv("SLD_FAKE_VASP_FAULTS", raising=False)
    settings = DynamicsSettings(dt_fs=1.0, alpha=0.1, temperature=50.0, ensemble="nvt",
                                spin_scheme="sib-fixed-field", seed=5)
    steps = 3
    spec = {"name": "fe-vasp", "initial_state": state.as_dict(), "engine": _vasp(tmp_path / "unused").as_dict(),
            "dynamics": settings.as_dict(), "steps": steps}
    spec = json.loads(json.dumps(spec, cls=MontyEncoder))
    assert main(["submit", str(write_spec(tmp_path / "v.yaml", spec)), *sld_backend.args]) == 0
    tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]
    assert main(["worker", *sld_backend.args, "--launch-dir", str(tmp_path / "fw_runs")]) == 0

    # in-process reference with the same engine (own run directory)
    ref_engine = _vasp(tmp_path / "ref_runs")
    s, e = state, ref_engine.evaluate(state)
    ref = [(s, e)]
    for _ in range(steps):
        s, e = advance(s, e, settings, ref_engine.evaluate)
        ref.append((s, e))

    with sld_backend.open() as session:
        store = session.store
        doc = store.get_trajectory(tid)
        assert doc["layout"] == "split" and doc["status"] == "COMPLETED"
        launch_dirs = set()
        for k, (s_ref, e_ref) in enumerate(ref):
            sf, ef = store.get_frame(tid, k, "state"), store.get_frame(tid, k, "evaluation")
            assert json.dumps(sf["data"]) == json.dumps(s_ref.as_dict()), k
            assert json.dumps(ef["data"]) == json.dumps(evaluation_data(e_ref)), k
            run_dir = Path(ef["engine_run_dir"])
            assert run_dir.parent.parent == Path(ef["launch_dir"])  # VASP ran inside the Firework's dir
            assert (run_dir / "OSZICAR").is_file()
            launch_dirs.add(ef["launch_dir"])
            chain = ef["info"]["restart_chain"]
            if k == 0:
                assert not chain["intact"] and ef["scf_iterations"] == 24
            else:  # seeded from the previous step's run directory, in another Firework's launch dir
                prev = store.get_frame(tid, k - 1, "evaluation")["engine_run_dir"]
                assert chain["seeded_from"] == prev and chain["intact"] and ef["scf_iterations"] == 12
        assert len(launch_dirs) == steps + 1  # one engine Firework (launch dir) per evaluation


def test_vasp_steps_on_alternating_workers_find_previous_run_dir(sld_backend, tmp_path, capsys, monkeypatch):
    """Two workers (own launch roots, fresh process caches) take turns (A B A A B A ...), one Firework each: every
    evaluation is seeded from the run directory recorded in the previous evaluation's frame, which
    lies under the other worker's launch root."""
    state, model = _system()
    engine_file = tmp_path / "model_engine.json"
    engine_file.write_text(model.to_json())
    monkeypatch.setenv("SLD_FAKE_VASP_ENGINE", str(engine_file))
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT_ROOT))
    monkeypatch.delenv("SLD_FAKE_VASP_FAULTS", raising=False)
    settings = DynamicsSettings(dt_fs=1.0, alpha=0.1, temperature=50.0, ensemble="nvt",
                                spin_scheme="sib-fixed-field", seed=5)
    spec = {"name": "fe-vasp-2w", "initial_state": state.as_dict(), "engine": _vasp(tmp_path / "unused").as_dict(),
            "dynamics": settings.as_dict(), "steps": 2}
    spec = json.loads(json.dumps(spec, cls=MontyEncoder))
    assert main(["submit", str(write_spec(tmp_path / "v.yaml", spec)), *sld_backend.args]) == 0
    tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]
    roots = [tmp_path / "worker_a", tmp_path / "worker_b"]
    for turn in range(40):
        WorkerRuntime.current().clear()  # another worker process knows nothing of the previous one
        assert main(["worker", *sld_backend.args, "--nlaunches", "1", "--launch-dir", str(roots[turn % 3 % 2])]) == 0
        with sld_backend.open() as session:
            if session.store.get_trajectory(tid)["status"] == "COMPLETED":
                break
    with sld_backend.open() as session:
        store = session.store
        assert store.get_trajectory(tid)["status"] == "COMPLETED"
        frames = [store.get_frame(tid, k, "evaluation") for k in range(3)]
    assert not frames[0]["info"]["restart_chain"]["intact"]
    for prev, ef in zip(frames, frames[1:], strict=False):
        chain = ef["info"]["restart_chain"]
        assert chain["seeded_from"] == prev["engine_run_dir"] and chain["intact"]
        assert Path(ef["engine_run_dir"]).is_relative_to(ef["launch_dir"])
    worker_of = [Path(f["engine_run_dir"]).is_relative_to(roots[0]) for f in frames]
    assert worker_of[0] != worker_of[1] or worker_of[1] != worker_of[2]  # at least one seed crossed workers
