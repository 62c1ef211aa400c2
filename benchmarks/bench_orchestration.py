"""Per-step orchestration overhead of SLD workflows beside a trivial FireWorks chain, same run, same store.

Cases (embedded mongomock-persistence store by default; ``-l launchpad.yaml`` for a real MongoDB):

- one trajectory of 200 steps, and 50 concurrent trajectories of 20 steps (one workflow each,
  round-robin by FireWorks' queue), merged layout (1 Firework per step) and split layout
  (engine + integrator Fireworks, 2 per step with ``sib-fixed-field``);
- the trivial chain: no-op Fireworks that add the next Firework (``FWAction(additions=...)``), the same
  number of chains and Fireworks per chain as the SLD case has Fireworks.

The engine is trivial (Zeeman field on 2 sites) and its measured wall time (stored per evaluation)
is subtracted. Printed: per-step overhead, per-Firework cost of the trivial chain, Fireworks per step,
and ratio = overhead / (trivial cost × Fireworks per step); goal ≤ 1.5. The trivial chain runs before
and after each SLD case (the load of a shared machine drifts) and the mean of both is used.

    python benchmarks/bench_orchestration.py            # full: 200 steps and 50 x 20
    python benchmarks/bench_orchestration.py --quick    # 40 steps and 10 x 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import fireworks.core.rocket as fw_rocket
from fireworks import FiretaskBase, Firework, FWAction, FWorker, Workflow, explicit_serialize
from fireworks.core.rocket_launcher import rapidfire

# Rockets log every launch at INFO regardless of rapidfire's strm_lvl; keep the results readable.
fw_rocket.ROCKET_STREAM_LOGLEVEL = "CRITICAL"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sld_workflows.dynamics.settings import DynamicsSettings  # noqa: E402
from sld_workflows.engines.analytic import ZeemanEngine  # noqa: E402
from sld_workflows.state import SLDState  # noqa: E402
from sld_workflows.store.connection import open_session  # noqa: E402
from sld_workflows.workflows.manage import TrajectoryInput, submit  # noqa: E402
from sld_workflows.workflows.phases import clear_caches  # noqa: E402


@explicit_serialize
class NoopChainTask(FiretaskBase):
    """Trivial chain link: does nothing and adds the next link until ``remaining`` is 0."""

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


def _run(session, launch_dir: Path) -> float:
    start = time.perf_counter()
    rapidfire(session.lpad, FWorker(), m_dir=str(launch_dir), nlaunches=0, sleep_time=1, strm_lvl="CRITICAL")
    return time.perf_counter() - start


def bench_sld(n_traj: int, steps: int, layout: str, root: Path, launchpad: str | None) -> dict:
    clear_caches()
    project = root / f"sld_{layout}_{n_traj}x{steps}"
    with open_session(launchpad, None if launchpad else project, create=True) as session:
        if launchpad:
            session.lpad.reset("", require_password=False, max_reset_wo_password=10**9)
            session.store.delete_all()
        tids = [submit(session, _toy_input(steps, seed=i), layout=layout) for i in range(n_traj)]
        (project / "launches").mkdir(parents=True, exist_ok=True)
        wall = _run(session, project / "launches")
        n_fw = session.lpad.get_fw_ids({"state": "COMPLETED"}, count_only=True)
        engine = session.store.engine_wall_time()
        done = sum(session.store.get_trajectory(t)["steps_done"] for t in tids)
    assert done == n_traj * steps, f"only {done} of {n_traj * steps} steps done"
    return {"wall_s": wall, "engine_s": engine, "fireworks": n_fw, "steps": done}


def bench_trivial(n_chain: int, length: int, root: Path, launchpad: str | None) -> dict:
    project = root / f"trivial_{n_chain}x{length}"
    root.mkdir(parents=True, exist_ok=True)
    with open_session(launchpad, None if launchpad else project, create=True) as session:
        if launchpad:
            session.lpad.reset("", require_password=False, max_reset_wo_password=10**9)
        else:
            session.initialize_launchpad()
        for _ in range(n_chain):
            session.lpad.add_wf(Workflow([Firework(NoopChainTask(remaining=length - 1), name="noop")]))
        (project / "launches").mkdir(parents=True, exist_ok=True)
        wall = _run(session, project / "launches")
        n_fw = session.lpad.get_fw_ids({"state": "COMPLETED"}, count_only=True)
    assert n_fw == n_chain * length, n_fw
    return {"wall_s": wall, "fireworks": n_fw}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (40 steps; 10 x 10)")
    parser.add_argument("-l", "--launchpad", help="real MongoDB launchpad file (its database is RESET)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--case", choices=("1x200", "50x20"), help="run only this case")
    parser.add_argument("--layout", choices=("merged", "split"), help="run only this layout")
    args = parser.parse_args(argv)
    cases = [(1, 40), (10, 10)] if args.quick else [(1, 200), (50, 20)]
    if args.case:
        cases = [tuple(int(x) for x in args.case.split("x"))]
    layouts = [args.layout] if args.layout else ["merged", "split"]
    results = []
    with tempfile.TemporaryDirectory(prefix="sld_bench_") as tmp:
        root = Path(tmp)
        os.environ.setdefault("SLD_FLUSH_SECS", "30")  # the worker default
        for n_traj, steps in cases:
            for layout in layouts:
                # trivial chains with the same number of Fireworks per chain as the SLD workflows,
                # measured before and after the SLD case (the machine's load drifts): mean of both
                # (merged: 1 Firework per step; split with sib-fixed-field: 2 per step + 2 for step 0)
                per_chain = steps if layout == "merged" else 2 * steps + 2
                before = bench_trivial(n_traj, per_chain, root / "before", args.launchpad)
                sld = bench_sld(n_traj, steps, layout, root, args.launchpad)
                fw_per_step = sld["fireworks"] / sld["steps"]
                after = bench_trivial(n_traj, round(sld["fireworks"] / n_traj), root / "after", args.launchpad)
                trivial = {"wall_s": before["wall_s"] + after["wall_s"],
                           "fireworks": before["fireworks"] + after["fireworks"]}
                trivial_per_fw = trivial["wall_s"] / trivial["fireworks"]
                overhead = (sld["wall_s"] - sld["engine_s"]) / sld["steps"]
                ratio = overhead / (trivial_per_fw * fw_per_step)
                results.append({"case": f"{n_traj} x {steps} steps", "layout": layout, **sld,
                                "fireworks_per_step": fw_per_step, "overhead_per_step_ms": 1e3 * overhead,
                                "trivial_per_firework_ms": 1e3 * trivial_per_fw, "trivial_wall_s": trivial["wall_s"],
                                "trivial_before_ms": 1e3 * before["wall_s"] / before["fireworks"],
                                "trivial_after_ms": 1e3 * after["wall_s"] / after["fireworks"],
                                "ratio": ratio})
                r = results[-1]
                print(f"{r['case']:>16} {layout:>6}: overhead {r['overhead_per_step_ms']:7.2f} ms/step "
                      f"(engine {1e3 * sld['engine_s'] / sld['steps']:.3f} ms/step excluded), "
                      f"{fw_per_step:.2f} Fireworks/step; "
                      f"trivial chain {r['trivial_per_firework_ms']:6.2f} ms/Firework "
                      f"(before {r['trivial_before_ms']:.1f}, after {r['trivial_after_ms']:.1f}); "
                      f"ratio {ratio:.2f} (goal <= 1.5)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
