"""``sld campaign create | run | status | list | analyze``: data-generation campaigns (docs/campaigns.md).

Every command takes ``-l launchpad.yaml`` (a real MongoDB) or ``--project DIR`` (the project's local
server, or its embedded store with ``--embedded`` at creation), as ``sld submit`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-l", "--launchpad", metavar="LAUNCHPAD_YAML", help="FireWorks launchpad file of a MongoDB")
    parser.add_argument("--project", metavar="DIR", help="project folder (default $SLD_PROJECT or ./sld_project): its "
                        "local server, started on demand, or its embedded store")
    parser.add_argument("--embedded", action="store_true", default=None,
                        help="use the embedded mongomock store DIR/launchpad.json (one process at a time)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("campaign", help="data-generation campaigns: SLD arm, random-spin reference, tests")
    sub = parser.add_subparsers(dest="campaign_command", metavar="ACTION")

    p = sub.add_parser("create", help="validate a campaign spec, build its structure pool, store its trajectories")
    p.add_argument("spec", metavar="CAMPAIGN.yaml")
    _common(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("run", help="feed workflows (throttled), run them in this process, prune finished ones")
    p.add_argument("name")
    p.add_argument("--max-active", type=int, default=None, help="trajectories on the LaunchPad at once "
                   "(default: the spec's submission.max_active)")
    p.add_argument("--launch-dir", default=None, help="where Fireworks run (default: PROJECT/launches or cwd)")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="progress and cost per arm (reference-point units)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("list", help="stored campaigns")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("analyze", help="per-arm distributions as PNG + JSON")
    p.add_argument("name")
    p.add_argument("--out", required=True, metavar="DIR")
    _common(p)
    p.set_defaults(func=cmd_analyze)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _session(args: argparse.Namespace, create: bool = False):
    from sld_workflows.campaigns.adapters import open_session

    return open_session(args.launchpad, args.project, create=create, embedded=args.embedded)


def cmd_create(args: argparse.Namespace) -> int:
    from sld_workflows.campaigns.manage import create_campaign, get_campaign
    from sld_workflows.campaigns.pool import build_pool
    from sld_workflows.campaigns.spec import CampaignSpec

    spec = CampaignSpec.from_file(args.spec)  # validated before any store is opened
    pool = build_pool(spec)  # an unreadable pool file fails here, before anything is written
    with _session(args, create=True) as session:
        from sld_workflows.errors import SLDError

        try:
            get_campaign(session.lpad.db, spec.name)
        except SLDError:  # absent: good
            pass
        else:
            raise SLDError(f"campaign name {spec.name!r} is already taken (see `sld campaign list`); "
                           "choose another name")
        doc = create_campaign(session, spec, pool)
        arms = ", ".join(f"{a}: {len(c['trajectories'])}" for a, c in doc["arms"].items())
        print(f"created campaign {spec.name} ({arms} trajectories, pool of {doc['pool']['n_entries']}) in "
              f"{session.description}; run it with `sld campaign run {spec.name}`")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from sld_workflows.campaigns.manage import campaign_status, run_campaign

    if args.max_active is not None and args.max_active < 1:
        raise ValueError(f"--max-active must be >= 1, got {args.max_active}")
    with _session(args) as session:
        launch_dir = args.launch_dir or (os.path.join(os.path.dirname(session.guard.filename), "launches")
                                         if session.embedded else os.getcwd())
        result = run_campaign(session, args.name, launch_dir, args.max_active, args.timeout)
        status = campaign_status(session.lpad.db, args.name)
        done = ", ".join(f"{a}: {r['points_done']}/{r['points_requested']}" for a, r in status["arms"].items())
        print(f"campaign {args.name}: {result['launches']} Fireworks in {result['wall_time_s']:.1f} s "
              f"(at most {result['max_fireworks']} on the LaunchPad); points {done}; state {status['state']}")
    return 0


def _fmt(v: Any, f: str) -> str:
    return "-" if v is None else format(v, f)


def cmd_status(args: argparse.Namespace) -> int:
    from sld_workflows.campaigns.manage import campaign_status

    with _session(args) as session:
        status = campaign_status(session.lpad.db, args.name)
    if args.json:
        print(json.dumps(status, indent=1, default=str))
        return 0
    print(f"campaign {status['name']} ({status['state']}, created {status['created']}); cost unit: one reference "
          f"static = {_fmt(status['reference_point_cost'], '.4g')} ({status['cost_basis'] or 'no reference yet'})")
    header = f"{'arm':<10} {'kind':<10} {'points':>13} {'done traj':>10} {'engine s':>10} {'SCF':>8} {'calls':>7} " \
             f"{'cost (ref pts)':>14} {'per point':>9}"
    print(header)
    print("-" * len(header))
    for arm, r in status["arms"].items():
        print(f"{arm:<10} {r['kind']:<10} {r['points_done']:>6}/{r['points_requested']:<6} "
              f"{r['completed']:>4}/{r['trajectories']:<5} {r['engine_wall_time_s']:>10.2f} "
              f"{_fmt(r['scf_iterations'], '.0f'):>8} {r['engine_calls']:>7} "
              f"{_fmt(r['cost_reference_points'], '.1f'):>14} {_fmt(r['cost_per_point_reference_units'], '.3f'):>9}")
    print(f"Fireworks of this campaign on the LaunchPad: {status['launchpad_fireworks']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from sld_workflows.campaigns.manage import list_campaigns

    with _session(args) as session:
        rows = list_campaigns(session.lpad.db)
        where = session.description
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    if not rows:
        print(f"no campaigns in {where}")
        return 0
    for r in rows:
        arms = ", ".join(f"{a} {c['n_structures']}x{c.get('n_steps', c.get('n_statics'))}"
                         for a, c in r["arms"].items())
        print(f"{r['name']:<24} {str(r['state']):<10} {r['created']}  {arms}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from sld_workflows.campaigns.analysis import analyze_campaign

    with _session(args) as session:
        result = analyze_campaign(session.lpad.db, args.name, args.out)
    print(f"wrote {result['png']} and {result['json']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from sld_workflows.cli.main import main

    sys.exit(main())
