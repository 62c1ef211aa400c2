"""Crash safety: kill -9 the worker at chosen and random points, `sld recover`, finish; every step is
stored exactly once and every frame is bit-identical to an uninterrupted run. Also SIGTERM saves.

The worker runs in a subprocess through a small driver that installs the kill hook (no test hooks
in the package): ``engine N`` kills during the N-th engine call, ``write N`` right after the N-th
frame write, ``flush N`` right after the N-th save of the embedded store (so the file on disk holds
a RUNNING Firework and frames of an unfinished step), ``checkout N`` right after FireWorks checked
out the N-th Firework (RUNNING, before our task recorded anything), ``step N`` right after the store
shows the N-th completed step, ``sigterm N`` sends SIGTERM to itself during the N-th engine call. The random
trials draw N (of frame writes or of completed steps) from a seeded RNG, so they are reproducible
and every one of them really kills the worker.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import reference_frames, toy_spec, write_spec

from sld_workflows.cli.main import main
from sld_workflows.workflows.phases import evaluation_data

DRIVER = textwrap.dedent("""
    import os, signal, sys
    mode, n = sys.argv[1], int(sys.argv[2])
    count = [0]
    sig = signal.SIGTERM if mode == "sigterm" else signal.SIGKILL

    def hit():
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), sig)

    from sld_workflows.store import connection, trajectories
    from sld_workflows.workflows import phases
    if mode in ("engine", "sigterm"):
        real_engine_for = phases.engine_for

        class Hooked:
            def __init__(self, inner):
                self.inner = inner

            def evaluate(self, state):
                hit()
                return self.inner.evaluate(state)

        phases.engine_for = lambda doc: Hooked(real_engine_for(doc))
    elif mode == "write":
        real_put = trajectories.TrajectoryStore.put_frame

        def put(self, *a, **k):
            out = real_put(self, *a, **k)
            hit()
            return out

        trajectories.TrajectoryStore.put_frame = put
    elif mode == "step":
        real_record = trajectories.TrajectoryStore.record_step

        def record(self, *a, **k):
            out = real_record(self, *a, **k)
            hit()
            return out

        trajectories.TrajectoryStore.record_step = record
    elif mode == "checkout":  # killed after FireWorks marked the Firework RUNNING, before our task ran
        from fireworks.core.launchpad import LaunchPad
        real_checkout = LaunchPad.checkout_fw

        def checkout(self, *a, **k):
            out = real_checkout(self, *a, **k)
            hit()
            return out

        LaunchPad.checkout_fw = checkout
    elif mode == "flush":
        real_flush = connection.EmbeddedGuard.flush

        def flush(self):
            real_flush(self)
            hit()

        connection.EmbeddedGuard.flush = flush
    from sld_workflows.cli.main import main
    sys.exit(main(["worker", *sys.argv[3:]]))
""")


def _canon(d):
    return json.dumps(d, sort_keys=True)


def _check_exact(backend, specs):
    with backend.open() as session:
        store = session.store
        for tid, spec in specs.items():
            ref = reference_frames(spec)
            doc = store.get_trajectory(tid)
            assert doc["steps_done"] == spec["steps"] and doc["status"] == "COMPLETED", (tid, doc["status"])
            assert store.count_frames(tid, "state") == len(ref)
            assert store.count_frames(tid, "evaluation") == len(ref)
            for k, (state, evaluation) in enumerate(ref):
                assert _canon(store.get_frame(tid, k, "state")["data"]) == _canon(state.as_dict()), (tid, k)
                assert _canon(store.get_frame(tid, k, "evaluation")["data"]) == _canon(evaluation_data(evaluation))
            states = store.firework_states(tid)[tid]
            assert set(states) <= {"COMPLETED", "FIZZLED", "ARCHIVED"} and states.get("FIZZLED", 0) == 0, states


def _submit_pair(backend, tmp_path, trial, capsys):
    specs = {}
    for scheme, layout, steps in (("sib", "merged", 5), ("sib-fixed-field", "split", 3)):
        spec = toy_spec(steps=steps, spin_scheme=scheme, seed=100 + trial, name=f"c{trial}-{layout}")
        path = write_spec(tmp_path / f"c{trial}-{layout}.yaml", spec)
        assert main(["submit", str(path), "--layout", layout, *backend.args]) == 0
        tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]
        specs[tid] = spec
    return specs


def _crash_worker(backend, tmp_path, mode, n, flush_secs="0"):
    if mode == "flush" and not backend.embedded:
        mode = "write"  # a server has no store flushes: every write is already durable
    driver = tmp_path / "crash_driver.py"
    driver.write_text(DRIVER)
    env = backend.env()
    env.pop("MONGOMOCK_SERVERSTORE_FILE", None)
    env["SLD_FLUSH_SECS"] = flush_secs
    cmd = [sys.executable, str(driver), mode, str(n), *backend.args, "--launch-dir", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    return proc.returncode


# Per trial pair a worker makes 15 engine calls (merged sib: 1 + 2x5; split fixed-field: 1 + 3),
# 21 frame writes (merged: 1 + 2x5; split: 1 + 3x3) and completes 8 steps (5 + 3).
ENGINE_CALLS, FRAME_WRITES, STEPS = 15, 21, 8
_RNG = random.Random(20261124)
RANDOM_TRIALS = [("write", _RNG.randint(1, FRAME_WRITES - 1)), ("step", _RNG.randint(1, STEPS - 1)),
                 ("write", _RNG.randint(1, FRAME_WRITES - 1)), ("step", _RNG.randint(1, STEPS - 1))]
TRIALS = [("engine", 1), ("engine", 4), ("engine", 9), ("engine", 14), ("write", 2), ("write", 7),
          ("write", 15), ("flush", 3), ("flush", 8), ("checkout", 1), ("checkout", 6), *RANDOM_TRIALS,
          ("sigterm", 6)]


@pytest.mark.slow
def test_kill_worker_recover_and_finish_bit_identical(sld_backend, tmp_path, capsys):
    reruns = 0
    for trial, (mode, n) in enumerate(TRIALS):
        specs = _submit_pair(sld_backend, tmp_path, trial, capsys)
        rc = _crash_worker(sld_backend, tmp_path, mode, n)
        if mode == "sigterm":
            assert rc == 143, rc
        else:
            assert rc == -signal.SIGKILL, (mode, n, rc)  # the kill point was reached: not a clean exit
        capsys.readouterr()
        assert main(["recover", *sld_backend.args]) == 0
        out = capsys.readouterr().out
        reruns += int(out.split("rerun ")[1].split()[0])
        for tid in specs:  # a trajectory whose Firework fizzled or vanished is resumed from the store
            with sld_backend.open() as session:
                states = session.store.firework_states(tid).get(tid, {})
                needs_resume = not any(s in states for s in ("READY", "WAITING", "RUNNING", "RESERVED"))
                done = session.store.get_trajectory(tid)["status"] == "COMPLETED"
            if needs_resume and not done:
                assert main(["resume", tid, *sld_backend.args]) == 0
        assert main(["worker", *sld_backend.args, "--launch-dir", str(tmp_path / "runs")]) == 0
        _check_exact(sld_backend, specs)
    assert reruns >= 5  # lost RUNNING Fireworks were found and rerun


@pytest.mark.slow
def test_sigterm_requeues_the_step_at_once(tmp_path, capsys, sld_backend):
    """SIGTERM (scancel, walltime, docker stop) on every backend: exit 143, the running Firework is
    READY again at once (no `sld recover` needed), the embedded store saved and its lock released."""
    specs = _submit_pair(sld_backend, tmp_path, 99, capsys)
    # embedded: no periodic flushes, so only the SIGTERM save can persist the progress
    rc = _crash_worker(sld_backend, tmp_path, "sigterm", 9, flush_secs="100000")
    assert rc == 143
    if sld_backend.embedded:
        assert (sld_backend.project / "launchpad.json.lock").read_text() == ""  # owner gone, lock released
    with sld_backend.open() as session:
        done = sum(session.store.get_trajectory(t)["steps_done"] for t in specs)
        assert done >= 3  # 8 engine calls completed before the signal: their steps were kept
        assert session.lpad.get_fw_ids({"spec.sld": {"$exists": True}, "state": "RUNNING"}) == []
    assert main(["worker", *sld_backend.args, "--launch-dir", str(tmp_path / "runs")]) == 0
    _check_exact(sld_backend, specs)


@pytest.mark.parametrize("recorded_by", ["checkout", "task"])
def test_recover_on_a_server_uses_worker_pid_and_heartbeat(sld_backend, tmp_path, capsys, recorded_by):
    """The non-embedded rule (no store lock to rely on): a RUNNING Firework is rerun only if its
    worker process is gone (or its heartbeat expired); a live worker's Firework is left alone. The
    worker is known from its launch (``sld worker`` records host/pid at checkout) or, for a plain
    ``rlaunch``, from the record our task wrote on the trajectory."""
    import os

    from sld_workflows.store.session import Session
    from sld_workflows.workflows.manage import recover

    specs = _submit_pair(sld_backend, tmp_path, 50, capsys)
    assert _crash_worker(sld_backend, tmp_path, "flush", 3) == -signal.SIGKILL
    with sld_backend.open() as session:
        server_view = Session(session.lpad, None, "as if a MongoDB server")  # pid/heartbeat rules
        running = session.lpad.get_fw_ids({"spec.sld": {"$exists": True}, "state": "RUNNING"})
        assert len(running) == 1
        tid = session.store.trajectory_of_firework(running[0])
        launch = {"fw_id": running[0], "state": "RUNNING"}
        dead_launch = session.lpad.launches.find_one(launch)["fworker"]["env"]["sld_worker"]
        dead_worker = session.store.get_trajectory(tid)["worker"]
        alive = {"pid": os.getpid(), "since": time.time()}
        if recorded_by == "checkout":
            session.lpad.launches.update_one(launch, {"$set": {"fworker.env.sld_worker": {**dead_launch, **alive}}})
        else:  # as after a plain rlaunch: no identity in the launch, the task's record on the trajectory
            session.lpad.launches.update_one(launch, {"$unset": {"fworker.env.sld_worker": 1}})
            session.store.update_trajectory(tid, worker={**dead_worker, **alive})
        # the worker is alive (this test process): nothing is rerun before the heartbeat expires
        assert recover(server_view)["rerun"] == []
        assert session.lpad.get_fw_ids({"state": "RUNNING"}) == running
        # the recorded worker is dead: rerun now
        if recorded_by == "checkout":
            session.lpad.launches.update_one(launch, {"$set": {"fworker.env.sld_worker": dead_launch}})
        else:
            session.store.update_trajectory(tid, worker=dead_worker)
        assert recover(server_view)["rerun"] == running
        assert session.lpad.get_fw_ids({"fw_id": running[0], "state": "READY"}) == running
    assert main(["worker", *sld_backend.args]) == 0
    _check_exact(sld_backend, specs)
