"""Real ABINIT through FireWorks on the embedded stack (split layout): a 3-step SLD trajectory of
2-atom bcc Fe completes; frames pair every state with its evaluation; every evaluation after the
first is seeded from the previous one's recorded run directory (restart chain); the worker killed
(SIGKILL) during an engine call is recovered, and every integrator output — including the rerun
step's — is bit-identical to the integrator recomputed from the stored evaluations.

Tiny settings (ecut 12 Ha, 2×2×2 k, toldfe 1e-7 Ha) keep it to a few minutes on 2 cores."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import write_spec

from sld_workflows.cli.main import main
from sld_workflows.dynamics import step as sld_step
from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.engines.abinit import AbinitEngine
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.workflows.phases import clear_caches, decode_frame

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _abinit_installed():
    """Fail, never skip, without ABINIT: a missing binary must not pass for a working engine."""
    if shutil.which("abinit") is None:
        pytest.fail("ABINIT is not installed: `apt-get install abinit abinit-data openmpi-bin` (.ci/run does)")

#: the tiny test setting (also used by tests/test_abinit_physics.py)
TINY = {"ratsph_bohr": {"Fe": 2.12}, "ecut_ha": 12, "kpoints": [2, 2, 2], "mpi_procs": 2, "toldfe_ha": 1e-7,
        "nstep": 100, "tsmear_ha": 0.02, "extra": {"diemix": 0.3, "diemixmag": 0.3}}

KILL_DRIVER = textwrap.dedent("""
    import os, signal, sys
    n = int(sys.argv[1])
    from sld_workflows.engines.abinit.engine import AbinitEngine
    real = AbinitEngine.execute
    count = [0]
    def execute(self, run_dir, written):
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)   # the worker dies in the engine call
        return real(self, run_dir, written)
    AbinitEngine.execute = execute
    from sld_workflows.cli.main import main
    sys.exit(main(["worker", *sys.argv[2:]]))
""")


def canted_fe():
    state, _ = make_preset("bcc_fe")
    th = np.radians([75.0, 105.0])
    return state.replace(spins=np.c_[np.sin(th), 0 * th, np.cos(th)],
                         positions=state.positions + np.array([[0.0, 0.0, 0.0], [0.02, 0.0, 0.0]]))


def test_abinit_trajectory_through_fireworks(sld_backend, tmp_path, capsys):
    clear_caches()
    state = canted_fe()
    engine = AbinitEngine.from_spec({**TINY, "run_dir": str(tmp_path / "unused")}, state)
    settings = DynamicsSettings(dt_fs=1.0, alpha=0.1, temperature=50.0, ensemble="nvt",
                                spin_scheme="sib-fixed-field", seed=7)
    steps = 3
    spec = {"name": "fe-abinit", "initial_state": state.as_dict(), "engine": engine.as_dict(),
            "dynamics": settings.as_dict(), "steps": steps}
    assert main(["submit", str(write_spec(tmp_path / "a.yaml", spec)), *sld_backend.args]) == 0
    tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]

    # a worker killed during its 3rd engine call (the evaluation of step 2)
    driver = tmp_path / "kill_driver.py"
    driver.write_text(KILL_DRIVER)
    env = sld_backend.env()
    proc = subprocess.run([sys.executable, str(driver), "3", *sld_backend.args, "--launch-dir", str(tmp_path / "w1")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    capsys.readouterr()
    assert main(["recover", *sld_backend.args]) == 0
    with sld_backend.open() as session:
        states = session.store.firework_states(tid).get(tid, {})
    if not any(s in states for s in ("READY", "WAITING", "RUNNING", "RESERVED")):
        assert main(["resume", tid, *sld_backend.args]) == 0
    clear_caches()
    assert main(["worker", *sld_backend.args, "--launch-dir", str(tmp_path / "w2")]) == 0

    with sld_backend.open() as session:
        store = session.store
        doc = store.get_trajectory(tid)
        assert doc["layout"] == "split" and doc["status"] == "COMPLETED" and doc["steps_done"] == steps
        assert store.count_frames(tid, "state") == steps + 1 and store.count_frames(tid, "evaluation") == steps + 1
        frames = [(store.get_frame(tid, k, "state"), store.get_frame(tid, k, "evaluation")) for k in range(steps + 1)]
        provisional = {k: store.get_frame(tid, k, "provisional_state") for k in range(1, steps + 1)}
    for k, (sf, ef) in enumerate(frames):
        s, e = decode_frame(sf), decode_frame(ef)
        assert s.step == k and e.n_sites == s.n_sites == 2
        assert ef["info"]["engine"] == "abinit" and ef["info"]["scf_iterations"] > 0
        assert ef["engine_run_dir"].startswith(ef["launch_dir"])  # ran inside its Firework's directory
        assert np.all(np.linalg.norm(e.fields_ev_per_mub, axis=1) > 0)  # canted: non-zero fields
        chain = ef["info"]["restart_chain"]
        if k == 0:
            assert chain["seeded_from"] is None
        else:
            assert chain["seeded_from"] == frames[k - 1][1]["engine_run_dir"] and chain["copied"] == ["WFK", "DEN"]
    # step 2 was rerun by the second worker, seeded across workers from step 1's directory
    assert frames[2][1]["launch_dir"].startswith(str(tmp_path / "w2"))
    # the integrator recomputed from the stored evaluations gives the stored frames, bit for bit
    for k in range(steps):
        s, e = decode_frame(frames[k][0]), decode_frame(frames[k][1])
        prov = sld_step.propagate(s, e, settings, None)
        assert json.dumps(prov.as_dict()) == json.dumps(provisional[k + 1]["data"]), k
        new = sld_step.complete(prov, decode_frame(frames[k + 1][1]), settings)
        assert json.dumps(new.as_dict()) == json.dumps(frames[k + 1][0]["data"]), k
