"""``sld dataset generate|benchmark``: the training-data benchmark of the paper's Fig. 3.

``sld dataset generate OUT`` writes a model-engine campaign export (arms sld, reference, test);
``sld dataset from-campaign NAME OUT`` exports a campaign stored by ``sld campaign`` the same way;
``sld dataset benchmark SOURCE --out DIR`` trains and evaluates on an export directory (``sld export``
output or ``generate``'s), writing ``benchmark.json`` and ``fig3.png``. See docs/fig3_benchmark.md.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="training data for ML potentials: generate, benchmark (Fig. 3)")
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION")

    gen = sub.add_parser("generate", help="a model-engine campaign (arms sld, reference, test) as an export")
    gen.add_argument("out", metavar="OUT", help="export directory to write")
    gen.add_argument("--preset", default="bifeo3_2x2x2")
    gen.add_argument("--structures", type=int, default=20, help="initial structures (pool size)")
    gen.add_argument("--sld-steps", type=int, default=20, help="SLD snapshots per structure")
    gen.add_argument("--reference-per-structure", type=int, default=10, help="random-spin statics per structure")
    gen.add_argument("--start", choices=("random", "thermal"), default="random",
                     help="how SLD segments start: random spins, or spins thermalised on the frozen structure")
    gen.add_argument("--thermalise-steps", type=int, default=300)
    gen.add_argument("--test-temperatures", type=float, nargs="+", default=[300.0, 600.0], metavar="K")
    gen.add_argument("--test-steps", type=int, default=200)
    gen.add_argument("--test-every", type=int, default=10)
    gen.add_argument("--seed", type=int, default=1)
    gen.set_defaults(func=generate_command)

    fc = sub.add_parser("from-campaign", help="export a stored campaign's arms as a benchmark source")
    fc.add_argument("campaign", metavar="NAME")
    fc.add_argument("out", metavar="OUT", help="export directory to write (manifest.json + arms/<arm>/*.extxyz)")
    fc.add_argument("-l", "--launchpad", metavar="LAUNCHPAD_YAML")
    fc.add_argument("--project", metavar="DIR", help="project folder (default $SLD_PROJECT or ./sld_project)")
    fc.add_argument("--embedded", action="store_true", default=None, help="the project's embedded store")
    fc.set_defaults(func=from_campaign_command)

    bench = sub.add_parser("benchmark", help="Fig. 3: fixed count, fixed budget, strided SLD; JSON + PNG")
    bench.add_argument("source", metavar="SOURCE", help="export directory (manifest.json + <arm>.extxyz)")
    bench.add_argument("--out", required=True, metavar="DIR")
    bench.add_argument("--trainer", action="append", metavar="NAME",
                       help="ridge (default), spinnet, deepmd; repeat for several")
    bench.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    bench.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100], help="fixed-count sizes (frames)")
    bench.add_argument("--budgets", type=float, nargs="*", default=[20, 50], help="budgets (reference-point units)")
    bench.add_argument("--cost-ratio", default="2", help="SLD snapshots per reference point, or 'measured'")
    bench.add_argument("--stride", type=int, default=None)
    bench.add_argument("--epochs", type=int, default=None, help="spinnet epochs")
    bench.set_defaults(func=benchmark_command)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def generate_command(args: argparse.Namespace) -> int:
    from sld_workflows.mlbench.generate import CampaignSettings, generate_campaign

    settings = CampaignSettings(
        preset=args.preset, n_structures=args.structures, sld_steps=args.sld_steps,
        reference_per_structure=args.reference_per_structure, start=args.start,
        thermalise_steps=args.thermalise_steps, test_temperatures_k=tuple(args.test_temperatures),
        test_steps=args.test_steps, test_every=args.test_every, seed=args.seed)
    out = generate_campaign(args.out, settings)
    print(f"campaign written to {out}")
    return 0


def from_campaign_command(args: argparse.Namespace) -> int:
    from sld_workflows.mlbench.frames import export_campaign, load_manifest
    from sld_workflows.store.session import open_session

    with open_session(args.launchpad, args.project, embedded=args.embedded) as session:
        out = export_campaign(session.lpad.db, args.campaign, args.out, argv=sys.argv)
    arms = load_manifest(out)["arms"]
    summary = ", ".join(f"{a} {e['frames']} frames" for a, e in arms.items())
    print(f"campaign {args.campaign} exported to {out}: {summary}")
    return 0


def benchmark_command(args: argparse.Namespace) -> int:
    from sld_workflows.mlbench import BenchmarkError
    from sld_workflows.mlbench.benchmark import BenchmarkSettings, run_benchmark

    ratio: float | str = args.cost_ratio
    if ratio != "measured":
        try:
            ratio = float(ratio)
        except ValueError as exc:
            raise BenchmarkError(f"--cost-ratio: a number or 'measured', got {args.cost_ratio!r}") from exc
    options = {"spinnet": {"epochs": args.epochs}} if args.epochs else {}
    settings = BenchmarkSettings(
        trainers=tuple(args.trainer or ["ridge"]), trainer_options=options, seeds=tuple(args.seeds),
        sizes=tuple(args.sizes), budgets=tuple(args.budgets), cost_ratio=ratio, stride=args.stride)
    result = run_benchmark(args.source, args.out, settings, log=lambda line: print(line, file=sys.stderr))
    for q in result["ratios_reference_over_sld"]:
        print(f"{q['trainer']} {q['protocol']} reference/{q['vs']} x={q['x']:g}: " + "  ".join(
            f"{m.split('_')[0]} {q[m]['mean']:.2f}±{q[m]['std']:.2f}" for m in
            ("energy_mev_per_atom", "force_mev_per_a", "magforce_mev_per_mub")))
    print(f"wrote {args.out}/benchmark.json and {args.out}/fig3.png")
    return 0
