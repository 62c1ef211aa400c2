"""The zero-setup default (no -l, no --embedded): a project folder whose own local server is started
on demand. Each failure the embedded store showed in issue 9 is reproduced here on the default and
must not happen; plus several concurrent workers, and the server's bad-input cases."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CHECKOUT_ROOT, reference_frames, toy_spec, write_spec

from sld_workflows.workflows.phases import evaluation_data

pytestmark = pytest.mark.server


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(CHECKOUT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MONGOMOCK_SERVERSTORE_FILE", None)
    return env


def sld(*args: str, cwd: Path, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "sld_workflows.cli.main", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-1000:], proc.stderr[-2000:])
    return proc


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    """A default project in ``tmp_path/proj``; its server is stopped afterwards."""
    from sld_workflows.store.server import LocalServer

    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "proj"
    yield directory
    LocalServer(directory).stop()


def _submit(project: Path, tmp_path: Path, spec: dict, *extra: str) -> str:
    path = write_spec(tmp_path / f"{spec['name']}.yaml", spec)
    out = sld("submit", str(path), "--project", str(project), *extra, cwd=tmp_path).stdout
    return out.split("submitted trajectory ")[1].split()[0]


def _session(project: Path):
    from sld_workflows.store.session import open_session

    return open_session(project=project)


def _canon(d: dict) -> str:
    return json.dumps(d, sort_keys=True)


def _check_exact(project: Path, specs: dict[str, dict]) -> None:
    """Every trajectory complete, every step stored once with the bits of the in-process driver,
    no Firework fizzled and none launched twice."""
    with _session(project) as session:
        store = session.store
        for tid, spec in specs.items():
            ref = reference_frames(spec)
            doc = store.get_trajectory(tid)
            assert doc["status"] == "COMPLETED" and doc["steps_done"] == spec["steps"], (tid, doc["status"])
            assert store.count_frames(tid, "state") == len(ref) == store.count_frames(tid, "evaluation")
            for k, (state, evaluation) in enumerate(ref):
                assert _canon(store.get_frame(tid, k, "state")["data"]) == _canon(state.as_dict()), (tid, k)
                assert _canon(store.get_frame(tid, k, "evaluation")["data"]) == _canon(evaluation_data(evaluation))
            assert set(store.firework_states(tid)[tid]) == {"COMPLETED"}


def test_default_project_uses_its_own_server(project, tmp_path):
    tid = _submit(project, tmp_path, toy_spec(steps=3, name="d"))
    assert json.loads((project / "project.json").read_text())["backend"] == "server"
    record = json.loads((project / "server" / "server.json").read_text())
    assert record["port"] > 0 and Path(record["storage_path"]).is_dir()
    sld("worker", "--project", str(project), cwd=tmp_path)
    assert not list(tmp_path.glob("launcher_*"))  # launch folders go to PROJECT/launches
    assert list((project / "launches").glob("launcher_*"))
    _check_exact(project, {tid: toy_spec(steps=3, name="d")})
    status = sld("server", "status", "--project", str(project), cwd=tmp_path).stdout
    assert f"127.0.0.1:{record['port']}" in status


@pytest.mark.slow
@pytest.mark.parametrize("nworkers", [2, 4])
def test_concurrent_workers_run_every_step_exactly_once(project, tmp_path, nworkers):
    specs = {}
    for i in range(6):
        spec = toy_spec(steps=8, seed=30 + i, name=f"w{i}")
        specs[_submit(project, tmp_path, spec)] = spec
    sld("worker", "-n", str(nworkers), "--project", str(project), cwd=tmp_path, timeout=600)
    _check_exact(project, specs)
    with _session(project) as session:
        fws = list(session.lpad.fireworks.find({}, {"fw_id": 1, "launches": 1, "archived_launches": 1}))
        assert len(fws) == sum(s["steps"] for s in specs.values())  # one Firework per step, no second chain
        assert all(len(fw["launches"]) == 1 and not fw.get("archived_launches") for fw in fws)
        assert session.lpad.launches.count_documents({}) == len(fws)  # no Firework launched twice
        assert len({fw["fw_id"] for fw in fws}) == len(fws)
        pids = {d["fworker"]["env"]["sld_worker"]["pid"] for d in session.lpad.launches.find()}
        assert len(pids) > 1  # the work was in fact shared between worker processes


@pytest.mark.slow
def test_lpad_and_status_during_a_worker_lose_nothing(project, tmp_path):
    """Plain `lpad` reads and a `lpad rerun_fws` while a worker runs, and `sld status` all the time."""
    spec = toy_spec(steps=40, name="long")
    tid = _submit(project, tmp_path, spec)
    lp_file = project / "server" / "my_launchpad.yaml"
    worker = subprocess.Popen([sys.executable, "-m", "sld_workflows.cli.main", "worker", "--project", str(project)],
                              cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lpad = [sys.executable, "-c", "import sys; from fireworks.scripts.lpad_run import lpad; sys.exit(lpad())",
                "-l", str(lp_file)]
        reruns = 0
        seen_running = False
        while worker.poll() is None:
            status = sld("status", "--project", str(project), "--json", cwd=tmp_path)
            rows = json.loads(status.stdout)
            seen_running |= rows[0]["status"] in ("RUNNING", "QUEUED") and rows[0]["steps_done"] < 40
            count = subprocess.run([*lpad, "get_fws", "-s", "COMPLETED", "-d", "count"], cwd=tmp_path, env=_env(),
                                   capture_output=True, text=True, timeout=60)
            assert count.returncode == 0, count.stderr[-1000:]
            if reruns == 0 and int(count.stdout.strip().splitlines()[-1]) >= 3:
                rerun = subprocess.run([*lpad, "rerun_fws", "-i", "2"], cwd=tmp_path, env=_env(),
                                       capture_output=True, text=True, timeout=60)
                assert rerun.returncode == 0, rerun.stderr[-1000:]
                reruns += 1
        assert worker.wait(timeout=300) == 0, worker.stderr.read()[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
    assert seen_running and reruns == 1
    # the rerun Firework and its children ran again: same bits, nothing lost; one chain only
    sld("worker", "--project", str(project), cwd=tmp_path)
    _check_exact(project, {tid: spec})


def _steps_done(project: Path) -> int:
    with _session(project) as session:
        return sum(d["steps_done"] for d in session.store.find_trajectories())


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="known flaky (about 1 run in 3 here): after a kill and "
                   "`sld recover`, the next worker sometimes stalls after 'Launching Rocket' and makes no progress for "
                   "120 s (most likely a workflow lock left by the killed worker that recover did not release; "
                   "FireWorks then waits WFLOCK_EXPIRATION_SECS); not yet fixed")
def test_workers_killed_every_few_steps_still_make_progress(project, tmp_path):
    """kill -9 a worker each time the store shows a few more steps (seeded), recover, go on: progress is
    kept every time (the embedded store with its 30 s flush kept nothing), and the end is exact."""
    rng = random.Random(9)
    specs = {}
    for i in range(2):
        spec = toy_spec(steps=30, seed=60 + i, name=f"k{i}")
        specs[_submit(project, tmp_path, spec)] = spec
    done = _steps_done(project)
    for _ in range(4):
        target = done + rng.randint(2, 8)
        log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
        worker = subprocess.Popen([sys.executable, "-m", "sld_workflows.cli.main", "worker", "--project",
                                   str(project)], cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while _steps_done(project) < target and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        exited_alone = worker.poll()
        worker.kill()
        worker.wait()
        log.close()
        now = _steps_done(project)
        # what the store showed before the kill is kept (the log says why if the worker stopped early)
        assert now >= target > done, (exited_alone, (tmp_path / "worker.log").read_text()[-1500:])
        done = now
        sld("recover", "--project", str(project), cwd=tmp_path)
    sld("worker", "--project", str(project), cwd=tmp_path)
    _check_exact(project, specs)


def test_status_into_a_closed_pipe_prints_no_traceback(project, tmp_path):
    for i in range(3):
        _submit(project, tmp_path, toy_spec(steps=1, name=f"p{i}"))
    proc = subprocess.Popen([sys.executable, "-m", "sld_workflows.cli.main", "status", "--project", str(project)],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `sld status | head -0`: the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_server_bad_input_is_one_clear_line(project, tmp_path):
    from sld_workflows.store.server import LocalServer

    started = sld("server", "start", "--project", str(project), cwd=tmp_path).stdout
    record = json.loads((project / "server" / "server.json").read_text())
    again = sld("server", "start", "--project", str(project), cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already running at 127.0.0.1:" in again.stderr
    assert again.stderr.count("\n") == 1 and str(record["port"]) in again.stderr and str(record["port"]) in started
    # stale record after kill -9: detected, and replaced by the next start
    os.kill(record["pid"], signal.SIGKILL)
    time.sleep(0.5)
    assert "stale record" in sld("server", "status", "--project", str(project), cwd=tmp_path, check=False).stdout
    restarted = sld("server", "start", "--project", str(project), cwd=tmp_path).stdout
    assert "replaced a stale record" in restarted
    LocalServer(project).stop()
    # port in use
    with contextlib.closing(socket.socket()) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        proc = sld("server", "start", "--project", str(tmp_path / "other"), "--port", str(port), cwd=tmp_path,
                   check=False)
        assert proc.returncode == 2 and f"port {port}" in proc.stderr and "in use" in proc.stderr
        assert proc.stderr.count("\n") == 1 and time.monotonic() - t0 < 10
    # storage folder not writable (its parent is a file: not writable for root either)
    (tmp_path / "afile").write_text("x")
    proc = sld("server", "start", "--project", str(tmp_path / "afile" / "p"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not writable" in proc.stderr and proc.stderr.count("\n") == 1


def test_worker_on_a_stopped_server_is_one_clear_line(tmp_path):
    """A worker pointed (-l) at a database server that is down: one line within seconds, exit 2."""
    from sld_workflows.store.server import free_port
    from sld_workflows.store.session import write_local_launchpad_file

    (tmp_path / "server").mkdir()
    lp = write_local_launchpad_file(tmp_path, "127.0.0.1", free_port())
    t0 = time.monotonic()
    proc = sld("worker", "-l", str(lp), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "cannot connect" in proc.stderr and proc.stderr.count("\n") == 1
    assert time.monotonic() - t0 < 15


def test_relative_mongomock_file_with_plain_rlaunch(tmp_path):
    """The embedded store named by a relative MONGOMOCK_SERVERSTORE_FILE: plain rlaunch runs it."""
    spec = toy_spec(steps=2, name="rel")
    sld("submit", str(write_spec(tmp_path / "rel.yaml", spec)), "--project", "p", "--embedded", cwd=tmp_path)
    env = dict(_env(), MONGOMOCK_SERVERSTORE_FILE="p/launchpad.json", PWD=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c",
                           "import sys; from fireworks.scripts.rlaunch_run import rlaunch; sys.exit(rlaunch())",
                           "rapidfire", "--sleep", "1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(sld("status", "--project", "p", "--json", cwd=tmp_path).stdout)
    assert rows[0]["steps_done"] == 2 and rows[0]["status"] == "COMPLETED"


def test_lpad_on_a_damaged_store_is_one_clear_line(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "launchpad.json").write_text('{"fireworks": ')
    proc = sld("lpad", "--project", "p", "get_fws", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not readable JSON" in proc.stderr and proc.stderr.count("\n") == 1
    assert (tmp_path / "p" / "launchpad.json").read_text() == '{"fireworks": '


def test_dashboard_of_a_server_project_reads_its_live_database(project, tmp_path):
    """`sld dashboard --project DIR` on a server project opens the project's server (not a snapshot)."""
    from sld_workflows.cli.dashboard import open_source
    from sld_workflows.dashboard.source import ServerSource

    tid = _submit(project, tmp_path, toy_spec(steps=2, name="dash"))
    source = open_source(None, str(project))
    try:
        assert isinstance(source, ServerSource) and source.live
        docs = list(source.db()["sld_trajectories"].find({}, {"_id": 1}))
        assert [d["_id"] for d in docs] == [tid]
    finally:
        source.close()
