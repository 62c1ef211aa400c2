"""The paper's Fig. 3 training-data benchmark on the model engine's 80-atom BiFeO3, both SLD start modes.

    python benchmarks/bench_fig3.py --structures 100 --out runs/fig3     # the reduced run of docs/fig3_benchmark.md
    python benchmarks/bench_fig3.py --structures 600 --out runs/fig3_full  # the paper's pool size (hours on 1 core)

For each start mode (``random``, ``thermal``) it generates a campaign (``sld dataset generate``: N structures,
20 SLD snapshots and 10 random-spin statics each, test trajectories at 300 K and 600 K), then runs
``sld dataset benchmark`` with the ridge control on the full protocol grid and the spin-aware network on a
single point (fixed count, 100 frames at 100 structures), 3 seeds each, and prints the
random-to-SLD error ratios (mean ± s.d. over seeds).
Not a performance benchmark: it prints error ratios between two training sets measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sld_workflows.mlbench.benchmark import METRICS, BenchmarkSettings, run_benchmark
from sld_workflows.mlbench.generate import CampaignSettings, generate_campaign


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structures", type=int, default=100)
    ap.add_argument("--out", default="runs/fig3")
    ap.add_argument("--starts", nargs="+", default=["random", "thermal"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--net-epochs", type=int, default=4)
    ap.add_argument("--no-net", action="store_true")
    args = ap.parse_args()
    n = args.structures
    sizes = tuple(s for s in (25, 50, 100, 200, 400, 800, 1600, 3200) if s <= 0.85 * n * 10)
    budgets = tuple(b for b in (25, 50, 100, 200, 400, 800, 1600) if 2 * b <= 0.85 * n * 20 and b <= 0.85 * n * 10)
    for start in args.starts:
        out = Path(args.out) / start
        campaign = out / "campaign"
        if not (campaign / "manifest.json").is_file():
            t = time.perf_counter()
            generate_campaign(campaign, CampaignSettings(n_structures=n, start=start, test_steps=300, test_every=10))
            print(f"{start}: campaign of {n} structures in {time.perf_counter() - t:.0f} s", flush=True)
        seeds = tuple(args.seeds)
        runs = [("ridge", BenchmarkSettings(trainers=("ridge",), seeds=seeds, sizes=sizes, budgets=budgets))]
        if not args.no_net:
            runs.append(("spinnet", BenchmarkSettings(
                trainers=("spinnet",), seeds=seeds, sizes=(sizes[2],), budgets=(),
                trainer_options={"spinnet": {"epochs": args.net_epochs}})))
        for name, settings in runs:
            t = time.perf_counter()
            result = run_benchmark(campaign, out / name, settings)
            print(f"{start} {name}: {time.perf_counter() - t:.0f} s; Néel |L| "
                  + ", ".join(f"{k} {v['neel_mean']:.3f}±{v['neel_std']:.3f}" for k, v in result["order"].items()),
                  flush=True)
            for q in result["ratios_reference_over_sld"]:
                print(f"  {q['protocol']} reference/{q['vs']} x={q['x']:g}: " + "  ".join(
                    f"{m.split('_')[0]} {q[m]['mean']:.2f}±{q[m]['std']:.2f}" for m in METRICS), flush=True)
            print(json.dumps(result["test_baseline_mae"]), flush=True)


if __name__ == "__main__":
    main()
