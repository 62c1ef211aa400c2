"""``sld submit | worker | status | resume | extend | restart | recover``: FireWorks orchestration.

Every command works on a project folder (``--project DIR``, else ``$SLD_PROJECT``, else
``./sld_project``) whose database is its own local server (started on demand), or the embedded
mongomock file (``--embedded`` at ``sld submit``), or any MongoDB (``-l launchpad.yaml``, FireWorks
format). See docs/orchestration.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-l", "--launchpad", metavar="LAUNCHPAD_YAML",
                        help="FireWorks launchpad file of a MongoDB (default: the project's local server)")
    parser.add_argument("--project", metavar="DIR",
                        help="project folder (default $SLD_PROJECT, else ./sld_project)")
    parser.add_argument("--embedded", action="store_true", default=None,
                        help="use the embedded mongomock store DIR/launchpad.json (one process at a time) "
                             "instead of the project's local server")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("submit", help="store a trajectory and add its FireWorks workflow")
    p.add_argument("spec", help="run spec (YAML)")
    p.add_argument("--layout", choices=("merged", "split"),
                   help="merged: one Firework per step (model/analytic engines, default); "
                        "split: engine in its own Firework (default for VASP)")
    p.add_argument("--name", help="trajectory name (default: the spec's name)")
    p.add_argument("--category", help="FireWorks _category of the Fireworks (route to workers)")
    p.add_argument("--engine-category", help="_category of engine Fireworks only (split layout)")
    p.add_argument("--write-workflow", metavar="WF_YAML",
                   help="write a FireWorks workflow file (for `lpad add`) instead of submitting; "
                        "its first Firework registers the trajectory when a worker runs it")
    _common(p)
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("worker", help="run Fireworks locally (FireWorks rapidfire)")
    p.add_argument("-n", "--nworkers", type=int, default=1, help="run N worker processes at once (server backends)")
    p.add_argument("--nlaunches", type=int, default=0, help="stop after N Fireworks (0: until none is left)")
    p.add_argument("--forever", action="store_true",
                   help="keep polling an empty queue instead of exiting (services, e.g. docker compose)")
    p.add_argument("--launch-dir", help="where launcher_* directories go (default: PROJECT/launches, or cwd)")
    p.add_argument("-w", "--fworker", metavar="FWORKER_YAML", help="FireWorks fworker file (category, query)")
    p.add_argument("--sleep", type=int, default=1, help="seconds between polls when nothing is ready")
    p.add_argument("--timeout", type=int, default=None, help="stop after this many seconds")
    _common(p)
    p.set_defaults(func=cmd_worker)

    p = subparsers.add_parser("status", help="table of trajectories: steps done, state, last energy")
    p.add_argument("trajectory", nargs="?", help="one trajectory id (details)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _common(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("resume", help="continue a stopped or failed trajectory from the store")
    p.add_argument("trajectory")
    _common(p)
    p.set_defaults(func=cmd_resume)

    p = subparsers.add_parser("extend", help="run N more steps of a finished trajectory")
    p.add_argument("trajectory")
    p.add_argument("--steps", type=int, required=True)
    _common(p)
    p.set_defaults(func=cmd_extend)

    p = subparsers.add_parser("restart", help="branch a new trajectory from a stored step (old one kept)")
    p.add_argument("trajectory")
    p.add_argument("--from-step", type=int, required=True)
    p.add_argument("--steps", type=int, help="steps of the branch (default: up to the parent's target)")
    p.add_argument("--seed", type=int, help="new noise seed for the branch")
    p.add_argument("--name")
    _common(p)
    p.set_defaults(func=cmd_restart)

    p = subparsers.add_parser("recover", help="detect lost runs (dead workers, stale heartbeats) and rerun them")
    p.add_argument("--expiration", type=float, default=None,
                   help="seconds without heartbeat before a run counts as lost "
                        "(default: FireWorks RUN_EXPIRATION_SECS; see config/FW_config.yaml)")
    _common(p)
    p.set_defaults(func=cmd_recover)


def _session(args: argparse.Namespace, create: bool = False):
    from sld_workflows.store.session import open_session

    return open_session(args.launchpad, args.project, create=create, embedded=getattr(args, "embedded", None))


def cmd_submit(args: argparse.Namespace) -> int:
    from sld_workflows.workflows.manage import load_input, submit

    inp = load_input(args.spec)  # validate before opening (nothing written on a bad spec)
    options = {k: v for k, v in (("category", args.category), ("engine_category", args.engine_category)) if v}
    if args.write_workflow:
        return _write_workflow(args)
    with _session(args, create=True) as session:
        tid = submit(session, inp, layout=args.layout, name=args.name, fireworks_options=options)
        print(f"submitted trajectory {tid} ({inp.steps} steps) to {session.description}")
    return 0


def _write_workflow(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sld_workflows.errors import SLDError
    from sld_workflows.workflows.native import (
        SLDWorkflowSettings,
        embeddable_spec,
        native_workflow,
        write_workflow,
    )

    out = Path(args.write_workflow)
    if out.is_dir():
        raise SLDError(f"--write-workflow: {out} is a directory; give a file name, e.g. {out / 'wf.yaml'}")
    settings = SLDWorkflowSettings(layout=args.layout, name=args.name, category=args.category,
                                   engine_category=args.engine_category)
    wf = native_workflow([embeddable_spec(args.spec, validate=False)], settings, validate=False)  # validated above
    write_workflow(wf, out, header=f"SLD workflow written by `sld submit {args.spec} --write-workflow`.\n"
                                   f"Add it with `lpad add {out}`, run it with `rlaunch rapidfire` or `qlaunch`.")
    print(f"wrote workflow {out} (1 trajectory, {wf.fws[0].name}); add it with `lpad add {out}`")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    from fireworks.core.fworker import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    from sld_workflows.store.fireworks_compat import make_fworker, stamp_checkouts
    from sld_workflows.store.keys import FireworkState, FwSpec

    if args.nlaunches < 0:
        raise ValueError(f"--nlaunches must be >= 0, got {args.nlaunches}")
    if args.nworkers < 1:
        raise ValueError(f"-n must be >= 1, got {args.nworkers}")
    with _session(args) as session:
        fworker = make_fworker(FWorker.from_file(args.fworker) if args.fworker else None, lpad=session.lpad)
        if args.launch_dir:
            launch_dir = args.launch_dir
        elif session.project is not None:
            launch_dir = os.path.join(session.project, "launches")
        else:
            launch_dir = os.getcwd()
        os.makedirs(launch_dir, exist_ok=True)
        if args.nworkers > 1:
            if session.embedded:
                raise ValueError("the embedded store serves one process at a time: -n > 1 needs the local "
                                 "server (the default for new projects) or a MongoDB (-l)")
            return _run_workers(args, session, os.path.abspath(launch_dir))
        stuck = session.lpad.get_fw_ids(FwSpec.query(states=FireworkState.RUNNING))
        if stuck and session.embedded:  # nobody else can be running them: we hold the store's lock
            print(f"warning: {len(stuck)} SLD Firework(s) {stuck[:5]} are RUNNING from a worker that died; "
                  "run `sld recover` to rerun them", file=sys.stderr)
        stamp_checkouts(session.lpad, fworker.env["sld_worker"])
        cwd = os.getcwd()
        try:
            nlaunches = -1 if args.forever else args.nlaunches  # FireWorks: -1 = never stop
            rapidfire(session.lpad, fworker, m_dir=os.path.abspath(launch_dir), nlaunches=nlaunches,
                      sleep_time=max(args.sleep, 1), timeout=args.timeout, strm_lvl="ERROR")
        finally:
            os.chdir(cwd)
        _print_summary(session)
    return 0


def _print_summary(session: Any) -> None:
    counts: dict[str, int] = {}
    for states in session.store.firework_states().values():
        for state, n in states.items():
            counts[state] = counts.get(state, 0) + n
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
    print(f"worker finished; SLD Fireworks by state: {summary}")


def _run_workers(args: argparse.Namespace, session: Any, launch_dir: str) -> int:
    """``-n N``: N worker processes on the same database; SIGTERM is passed on to each of them."""
    import signal
    import subprocess

    cmd = [sys.executable, "-m", "sld_workflows.cli.main", "worker", "--launch-dir", launch_dir,
           "--nlaunches", str(args.nlaunches), "--sleep", str(args.sleep)] + (["--forever"] if args.forever else [])
    if args.launchpad:
        cmd += ["-l", str(args.launchpad)]
    elif session.project is not None:
        cmd += ["--project", str(session.project)]
    if args.timeout is not None:
        cmd += ["--timeout", str(args.timeout)]
    if args.fworker:
        cmd += ["-w", args.fworker]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(args.nworkers)]

    def forward(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(session)
    if any(c == 143 for c in codes):
        return 143
    return max(codes, key=abs)


def _fmt(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        code = _status(args)
        sys.stdout.flush()  # inside the try: a reader gone early shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # `sld status | head`: the reader left; not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _status(args: argparse.Namespace) -> int:
    from sld_workflows.workflows.manage import status_rows

    with _session(args) as session:
        rows = status_rows(session, args.trajectory)
        if args.json:
            print(json.dumps(rows, default=str, indent=1))
            return 0
        if not rows:
            print(f"no trajectories in {session.description}")
            return 0
        header = (f"{'trajectory':<17} {'name':<20} {'status':<10} {'steps':>11} {'fireworks':<24} "
                  f"{'last E (eV)':>16} {'engine s':>9}")
        print(header)
        print("-" * len(header))
        for r in rows:
            fws = ",".join(f"{k[:4]}:{v}" for k, v in sorted(r["fireworks"].items())) or "none"
            steps = f"{r['steps_done']}/{r['steps_requested']}"
            print(f"{r['id']:<17} {str(r['name'])[:20]:<20} {str(r['status']):<10} {steps:>11} {fws:<24} "
                  f"{_fmt(r['last_energy_ev'], '.8f'):>16} {_fmt(r['engine_wall_time_s'], '.2f'):>9}")
        if args.trajectory:
            r = rows[0]
            branch = (f", branched from {r['parent']['trajectory']} at step {r['parent']['step']}"
                      if r["parent"] else "")
            print(f"layout {r['layout']}, spin scheme {r['spin_scheme']}, starts at step {r['start_step']}{branch}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from sld_workflows.workflows.manage import resume

    with _session(args) as session:
        fw_id = resume(session, args.trajectory)
        print(f"trajectory {args.trajectory} is complete; nothing to resume" if fw_id is None
              else f"resumed trajectory {args.trajectory} (Firework {fw_id})")
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    from sld_workflows.workflows.manage import extend

    with _session(args) as session:
        fw_id = extend(session, args.trajectory, args.steps)
        doc = session.store.get_trajectory(args.trajectory)
        print(f"extended trajectory {args.trajectory} to step {doc['steps_requested']} (Firework {fw_id})")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from sld_workflows.workflows.manage import restart

    with _session(args) as session:
        tid = restart(session, args.trajectory, args.from_step, steps=args.steps, seed=args.seed, name=args.name)
        print(f"new trajectory {tid} branched from {args.trajectory} at step {args.from_step}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from sld_workflows.workflows.manage import recover

    with _session(args) as session:
        result = recover(session, args.expiration)
        print(f"rerun {len(result['rerun'])} lost Firework(s) {result['rerun']}; "
              f"refreshed {len(result['inconsistent'])} inconsistent; "
              f"checked {len(result['running_checked'])} running; "
              f"continued {len(result['resumed'])} trajectory chain(s) cut by a kill")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from sld_workflows.cli.main import main

    sys.exit(main())
