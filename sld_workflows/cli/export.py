"""``sld export``: a dataset (extxyz, MACE extxyz, DeePMD npy) from a MongoDB query (docs/datasets.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="write frames selected by a query as extxyz / mace / deepmd, with a manifest",
        description="Select frames (campaign, arm, trajectory, steps, stride, tags), optionally cut them by "
                    "count or budget and split them by initial structure, and write them atomically to OUT.")
    p.add_argument("--format", required=True, help="extxyz | mace | deepmd")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)")
    p.add_argument("--campaign")
    p.add_argument("--arm", action="append", default=[], help="arm name (repeatable): sld, reference, test")
    p.add_argument("--trajectory", action="append", default=[], help="trajectory id (repeatable)")
    p.add_argument("--steps", metavar="A:B", help="inclusive step range, e.g. 0:9 (either side may be empty)")
    p.add_argument("--stride", type=int, default=1, help="keep every k-th step of each trajectory")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="trajectory tag filter")
    p.add_argument("--split", metavar="TRAIN,VAL[,TEST]", help="ratios by initial structure, e.g. 0.8,0.1,0.1")
    p.add_argument("--count", type=int, help="fixed number of frames")
    p.add_argument("--budget", type=float, help="fixed cost in reference points (one static reference = 1)")
    p.add_argument("--sld-frame-cost", type=float, help="cost of one SLD snapshot in reference points "
                   "(default: measured from the campaign's recorded costs; the paper's is 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of count/budget selection")
    p.add_argument("-l", "--launchpad", metavar="LAUNCHPAD_YAML")
    p.add_argument("--project", metavar="DIR", help="project folder (default $SLD_PROJECT or ./sld_project)")
    p.add_argument("--embedded", action="store_true", default=None, help="the project's embedded store")
    p.set_defaults(func=cmd_export)


def _steps(text: str | None) -> tuple[int | None, int | None]:
    from sld_workflows.datasets.selection import ExportError

    if not text:
        return None, None
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            return int(lo), int(lo)
        return (int(lo) if lo else None), (int(hi) if hi else None)
    except ValueError:
        raise ExportError(f"--steps must look like A:B (integers), got {text!r}") from None


def _tags(items: list[str]) -> tuple[tuple[str, Any], ...]:
    from sld_workflows.datasets.selection import ExportError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExportError(f"--tag must be KEY=VALUE, got {item!r}")
        parsed: Any = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                continue
        out.append((key, parsed))
    return tuple(out)


def cmd_export(args: argparse.Namespace) -> int:
    from sld_workflows.campaigns.adapters import open_session
    from sld_workflows.datasets.export import WRITERS, export
    from sld_workflows.datasets.selection import ExportError, ExportQuery, Protocol

    if args.format not in WRITERS:
        raise ExportError(f"unknown format {args.format!r} (choose one of: {', '.join(WRITERS)}); nothing was written")
    split = None
    if args.split:
        try:
            split = tuple(float(x) for x in args.split.split(","))
        except ValueError:
            raise ExportError(f"--split must be comma-separated ratios, got {args.split!r}") from None
    lo, hi = _steps(args.steps)
    query = ExportQuery(campaign=args.campaign, arms=tuple(args.arm), trajectories=tuple(args.trajectory),
                        step_min=lo, step_max=hi, stride=args.stride, tags=_tags(args.tag))
    protocol = Protocol(count=args.count, budget=args.budget, sld_frame_cost=args.sld_frame_cost, split=split,
                        seed=args.seed)
    with open_session(args.launchpad, args.project, embedded=args.embedded) as session:
        manifest = export(session.lpad.db, args.out, args.format, query, protocol, argv=sys.argv)
    counts = ", ".join(f"{s}: {c['frames']} frames / {c['structures']} structures"
                       for s, c in manifest["counts"].items())
    print(f"wrote {manifest['total_frames']} frames ({counts}) as {args.format} to {args.out} (manifest.json)")
    return 0
