"""Orchestration cost of SLD workflows beside a trivial FireWorks chain, same run, same backend.

Backends: the project's local server (SecantusDB, started here in a temporary folder) and the embedded
mongomock-persistence store. Printed, each with the trivial chain's figure measured in the same run:

1. per-step overhead with one worker (in this process; the engine's stored wall time subtracted),
   for one trajectory of 200 steps and 50 trajectories of 20 steps (merged layout: one Firework per
   step), and ratio = overhead / trivial chain's cost per Firework;
2. throughput (steps/s) with 1, 2 and 4 worker processes (``sld worker -n N``) on 50 x 20, beside the
   trivial chain with N ``rlaunch`` processes; the embedded store serves one process at a time, so it
   has the 1-worker figure only;
3. cost per Firework of a 20-step trajectory when the store already holds 0, 5,000 and 20,000 frames.

    python benchmarks/bench_orchestration.py            # full sizes (about 5-10 min on 2 cores)
    python benchmarks/bench_orchestration.py --quick    # 40 steps; 10 x 10; 0/1,000/4,000 frames
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fireworks.core.rocket as fw_rocket
from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize
from fireworks.core.rocket_launcher import rapidfire

fw_rocket.ROCKET_STREAM_LOGLEVEL = "CRITICAL"  # Rockets log every launch at INFO otherwise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sld_workflows.dynamics.settings import DynamicsSettings  # noqa: E402
from sld_workflows.engines.analytic import ZeemanEngine  # noqa: E402
from sld_workflows.state import SLDState  # noqa: E402
from sld_workflows.store.fireworks_compat import make_fworker  # noqa: E402
from sld_workflows.store.server import LocalServer  # noqa: E402
from sld_workflows.store.session import open_session, write_local_launchpad_file  # noqa: E402
from sld_workflows.workflows.manage import TrajectoryInput, submit  # noqa: E402


@explicit_serialize
class NoopChainTask(FiretaskBase):
    """Trivial chain link: does nothing and adds the next link until ``remaining`` is 0."""

    _fw_name = "{{bench_orchestration.NoopChainTask}}"
    required_params = ["remaining"]

    def run_task(self, fw_spec):
        if self["remaining"] <= 0:
            return FWAction(stored_data={"done": True})
        return FWAction(additions=[Firework(NoopChainTask(remaining=self["remaining"] - 1), name="noop")])


def _toy_input(steps: int, seed: int) -> TrajectoryInput:
    state = SLDState(species=("Fe", "Fe"), positions=[[0, 0, 0], [1.4, 1.4, 1.4]], cell=[[2.8, 0, 0], [0, 2.8, 0],
                     [0, 0, 2.8]], velocities=[[0, 0, 0], [0, 0, 0]], spins=[[1, 0, 0], [0, 1, 0]], moments=[2.2, 2.2])
    dynamics = DynamicsSettings(dt_fs=1.0, alpha=0.1, temperature=10.0, ensemble="spin-only",
                                spin_scheme="sib-fixed-field", seed=seed)
    return TrajectoryInput("bench", state, ZeemanEngine((0.0, 0.0, 0.01)), dynamics, steps)


class Backend:
    """A scratch database on one backend: ``open()`` gives a session, ``args`` the CLI flags."""

    def __init__(self, kind: str, root: Path, server_lp: Path | None) -> None:
        self.kind, self.root, self.server_lp = kind, root, server_lp
        self.n = 0

    @contextlib.contextmanager
    def fresh(self):
        """A new empty database (server: reset; embedded: a new project folder)."""
        self.n += 1
        if self.kind == "server":
            with open_session(self.server_lp, create=True) as session:
                session.lpad.reset("", require_password=False, max_reset_wo_password=10**9)
                session.store.delete_all()
                session.store.claims.delete_many({})
                yield session, ["-l", str(self.server_lp)]
        else:
            project = self.root / f"embedded_{self.n}"
            with open_session(project=project, create=True, embedded=True) as session:
                session.initialize_launchpad()
                yield session, ["--project", str(project), "--embedded"]


def _rapidfire(session, launch_dir: Path) -> float:
    launch_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rapidfire(session.lpad, make_fworker(), m_dir=str(launch_dir), nlaunches=0, sleep_time=1, strm_lvl="CRITICAL")
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"),
                                                        os.environ.get("PYTHONPATH", "")]))


def sld_case(backend: Backend, n_traj: int, steps: int, workers: int = 0, preload_frames: int = 0) -> dict:
    """``workers`` 0: rapidfire in this process; N: ``sld worker -n N`` subprocesses."""
    with backend.fresh() as (session, args):
        if preload_frames:
            session.store.frames.insert_many(
                [{"trajectory": "sld-preload", "step": i, "kind": "state", "data": {"x": [0.0] * 24}}
                 for i in range(preload_frames)])
            session.flush()
        tids = [submit(session, _toy_input(steps, seed=i)) for i in range(n_traj)]
        session.flush()
        launch_dir = backend.root / f"launches_{backend.kind}_{backend.n}"
        if workers == 0:
            wall = _rapidfire(session, launch_dir)
        elif session.embedded:
            raise ValueError("one process at a time")
        else:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sld_workflows.cli.main", "worker", "-n", str(workers), *args,
                            "--launch-dir", str(launch_dir)], env=_env(), check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
        engine = session.store.engine_wall_time()
        done = sum(session.store.get_trajectory(t)["steps_done"] for t in tids)
        fws = session.lpad.fireworks.count_documents({"spec.sld": {"$exists": True}, "state": "COMPLETED"})
    assert done == n_traj * steps, f"only {done} of {n_traj * steps} steps done"
    return {"wall_s": wall, "engine_s": engine, "steps": done, "fireworks": fws}


def trivial_case(backend: Backend, n_chain: int, length: int, workers: int = 0) -> dict:
    with backend.fresh() as (session, _args):
        for _ in range(n_chain):
            session.lpad.add_wf(Workflow([Firework(NoopChainTask(remaining=length - 1), name="noop")]))
        session.flush()
        launch_dir = backend.root / f"trivial_{backend.kind}_{backend.n}"
        if workers == 0:
            wall = _rapidfire(session, launch_dir)
        else:
            launch_dir.mkdir(parents=True)
            rlaunch = [sys.executable, "-c", "import sys; from fireworks.scripts.rlaunch_run import rlaunch; "
                       "sys.exit(rlaunch())", "-l", str(backend.server_lp), "-s", "rapidfire", "--sleep", "1"]
            start = time.perf_counter()
            procs = [subprocess.Popen(rlaunch, cwd=launch_dir, env=_env(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for _ in range(workers)]
            assert all(p.wait() == 0 for p in procs)
            wall = time.perf_counter() - start
        n_fw = session.lpad.fireworks.count_documents({"state": "COMPLETED"})
    assert n_fw == n_chain * length, n_fw
    return {"wall_s": wall, "fireworks": n_fw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    cases = [(1, 40), (10, 10)] if args.quick else [(1, 200), (50, 20)]
    preloads = [0, 1000, 4000] if args.quick else [0, 5000, 20000]
    results: dict[str, list] = {"overhead": [], "throughput": [], "frames": []}
    with tempfile.TemporaryDirectory(prefix="sld_bench_") as tmp:
        root = Path(tmp)
        server = LocalServer(root / "server_project")
        record = server.start(watch_pid=os.getpid())
        try:
            (root / "server_project" / "server").mkdir(exist_ok=True)
            lp = write_local_launchpad_file(root / "server_project", record.host, record.port)
            backends = [Backend("server", root, lp), Backend("embedded", root, None)]
            print("1. per-step overhead, one worker (merged layout; trivial chain on the same backend)")
            for backend in backends:
                for n_traj, steps in cases:
                    sld = sld_case(backend, n_traj, steps)
                    triv = trivial_case(backend, n_traj, steps)
                    overhead_ms = 1e3 * (sld["wall_s"] - sld["engine_s"]) / sld["steps"]
                    triv_ms = 1e3 * triv["wall_s"] / triv["fireworks"]
                    row = {"backend": backend.kind, "case": f"{n_traj}x{steps}", "overhead_ms": overhead_ms,
                           "trivial_ms": triv_ms, "ratio": overhead_ms / triv_ms}
                    results["overhead"].append(row)
                    print(f"  {backend.kind:>8} {row['case']:>7}: {overhead_ms:7.1f} ms/step, trivial chain "
                          f"{triv_ms:6.1f} ms/Firework, ratio {row['ratio']:.2f}", flush=True)
            print("2. throughput on the last case, N worker processes (trivial chain: N rlaunch processes)")
            n_traj, steps = cases[-1]
            for backend in backends:
                for workers in (1, 2, 4):
                    if backend.kind == "embedded" and workers > 1:
                        print(f"  {backend.kind:>8} N={workers}: not possible (one process at a time)")
                        continue
                    sld = sld_case(backend, n_traj, steps, workers=workers if backend.kind == "server" else 0)
                    row = {"backend": backend.kind, "workers": workers, "steps_per_s": sld["steps"] / sld["wall_s"]}
                    if backend.kind == "server":
                        triv = trivial_case(backend, n_traj, steps, workers=workers)
                        row["trivial_fw_per_s"] = triv["fireworks"] / triv["wall_s"]
                        row["ratio"] = row["trivial_fw_per_s"] / row["steps_per_s"]
                    results["throughput"].append(row)
                    extra = (f", trivial chain {row['trivial_fw_per_s']:6.1f} Fireworks/s, ratio {row['ratio']:.2f}"
                             if "ratio" in row else "")
                    print(f"  {backend.kind:>8} N={workers}: {row['steps_per_s']:6.1f} steps/s{extra}", flush=True)
            print("3. cost per Firework of a 20-step trajectory vs frames already stored (one worker)")
            for backend in backends:
                for preload in preloads:
                    sld = sld_case(backend, 1, 20, preload_frames=preload)
                    per_fw = 1e3 * (sld["wall_s"] - sld["engine_s"]) / sld["fireworks"]
                    results["frames"].append({"backend": backend.kind, "frames": preload, "ms_per_firework": per_fw})
                    print(f"  {backend.kind:>8} {preload:>6} frames: {per_fw:7.1f} ms/Firework", flush=True)
        finally:
            server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
