"""``sld run SPEC.yaml --out DIR``: run a spin-lattice dynamics job in this process."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a spec in this process (model/analytic engines; writes extxyz, summary, plot)",
        description=(
            "Run the spin-lattice dynamics described by SPEC.yaml (see docs/run_spec.md) and write "
            "trajectory.extxyz, final_state.json, summary.json and overview.png to DIR."
        ),
    )
    parser.add_argument("spec", metavar="SPEC.yaml", help="run specification (YAML)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    parser.add_argument("--steps", type=int, default=None, metavar="N", help="override dynamics.steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or closing message")
    parser.add_argument("--force", action="store_true", help="allow a non-empty DIR")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sld_workflows.errors import SpecError
    from sld_workflows.run.local import run_local
    from sld_workflows.run.spec import RunSpec

    spec = RunSpec.from_file(args.spec)
    if args.steps is not None:
        if args.steps < 0:
            raise SpecError("--steps", f"must be >= 0, got {args.steps}")
        spec = spec.with_steps(args.steps)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise SpecError("--out", f"directory {out} is not empty (use --force to write into it)")
    result = run_local(spec, out, progress=not args.no_progress)
    return 130 if result.interrupted else 0
