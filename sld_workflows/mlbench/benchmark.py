"""The Fig. 3 benchmark of a campaign export: three protocols × trainers × seeds, errors on the test
trajectories, order statistics beside them; ``benchmark.json`` and ``fig3.png`` in the output directory.

Protocols (see :mod:`.protocols`): ``fixed_count`` (arms ``sld`` and ``reference`` at each size),
``fixed_budget`` (arms ``reference``, ``sld`` with ``cost_ratio`` SLD snapshots per reference point, and
``sld_strided``: that SLD set keeping every ``stride``-th snapshot). The training pool of each seed excludes
a seeded ``validation_fraction`` of the initial structures (the validation set of the network trainers).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.mlbench import BenchmarkError
from sld_workflows.mlbench.frames import FrameSet, load_arm_frames, load_manifest, neel_order
from sld_workflows.mlbench.metrics import baseline_mae, mae
from sld_workflows.mlbench.protocols import (
    fixed_budget,
    fixed_count,
    measured_cost_ratio,
    split_validation,
    strided,
)
from sld_workflows.mlbench.trainers import TRAINERS

METRICS = ("energy_mev_per_atom", "force_mev_per_a", "magforce_mev_per_mub")
RESULT_NAME, FIGURE_NAME = "benchmark.json", "fig3.png"


@dataclasses.dataclass
class BenchmarkSettings:
    """``cost_ratio``: SLD snapshots per reference point of equal cost, a number or ``"measured"`` (from the
    frames' ``cost_s``); the paper's ≈ 2 by default. ``stride`` defaults to round(cost_ratio)."""

    trainers: tuple[str, ...] = ("ridge",)
    trainer_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    sizes: tuple[int, ...] = (20, 50, 100)
    budgets: tuple[float, ...] = (20, 50)
    cost_ratio: float | str = 2.0
    stride: int | None = None
    validation_fraction: float = 0.1


def _arm(source, name: str) -> FrameSet:
    return FrameSet.from_atoms(load_arm_frames(source, name), name)


def _order_stats(fs: FrameSet) -> dict[str, float]:
    neel = neel_order(fs)
    return {"neel_mean": float(neel.mean()), "neel_std": float(neel.std()), "frames": len(fs)}


def plan(settings: BenchmarkSettings, sld: FrameSet, ref: FrameSet, ratio: float, stride: int) -> list[dict]:
    """Every training set of every seed as (protocol, arm, seed, indices, validation indices); all bad sizes
    and budgets are found here, before any training."""
    jobs = []
    for seed in settings.seeds:
        pools = {arm: split_validation(fs, settings.validation_fraction, seed) for arm, fs in
                 (("sld", sld), ("reference", ref))}
        arms = {"sld": sld, "reference": ref}
        for n in settings.sizes:
            for arm in ("sld", "reference"):
                pool, val = pools[arm]
                jobs.append({"protocol": "fixed_count", "arm": arm, "seed": seed, "x": n,
                             "index": fixed_count(arms[arm], pool, int(n), seed), "val": val, "data": arm})
        for budget in settings.budgets:
            ref_idx = fixed_budget(ref, pools["reference"][0], budget, 1.0, seed)
            sld_idx = fixed_budget(sld, pools["sld"][0], budget, ratio, seed)
            for arm, data, idx in (("reference", "reference", ref_idx), ("sld", "sld", sld_idx),
                                   ("sld_strided", "sld", strided(sld, sld_idx, stride))):
                jobs.append({"protocol": "fixed_budget", "arm": arm, "seed": seed, "x": budget, "index": idx,
                             "val": pools[data][1], "data": data})
    return jobs


def summarise(rows: list[dict]) -> dict[str, Any]:
    """Mean and seed spread of each point, and the reference-to-SLD error ratios (per seed, then mean ± std)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["trainer"], r["protocol"], r["arm"], r["x"]), []).append(r)
    points = []
    for (trainer, protocol, arm, x), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        entry = {"trainer": trainer, "protocol": protocol, "arm": arm, "x": x, "seeds": len(rs),
                 "frames": int(np.mean([r["frames"] for r in rs]))}
        for m in METRICS:
            values = np.array([r["mae"][m] for r in rs])
            entry[m] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        points.append(entry)
    ratios = []
    by_key = {(r["trainer"], r["protocol"], r["arm"], r["x"], r["seed"]): r for r in rows}
    for (trainer, protocol, arm, x, seed), r in by_key.items():
        if arm != "reference":
            continue
        for other in ("sld", "sld_strided"):
            o = by_key.get((trainer, protocol, other, x, seed))
            if o is not None:
                ratios.append({"trainer": trainer, "protocol": protocol, "vs": other, "x": x, "seed": seed,
                               **{m: r["mae"][m] / o["mae"][m] for m in METRICS}})
    ratio_summary = []
    keys = sorted({(q["trainer"], q["protocol"], q["vs"], q["x"]) for q in ratios}, key=lambda k: tuple(map(str, k)))
    for key in keys:
        qs = [q for q in ratios if (q["trainer"], q["protocol"], q["vs"], q["x"]) == key]
        entry = dict(zip(("trainer", "protocol", "vs", "x"), key, strict=True))
        for m in METRICS:
            v = np.array([q[m] for q in qs])
            entry[m] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        ratio_summary.append(entry)
    return {"points": points, "ratios_reference_over_sld": ratio_summary}


def run_benchmark(source: str | Path, out_dir: str | Path, settings: BenchmarkSettings | None = None,
                  log=None) -> dict[str, Any]:
    """Run the benchmark of the export at ``source``; write ``benchmark.json`` and ``fig3.png`` to ``out_dir``."""
    st = settings or BenchmarkSettings()
    manifest = load_manifest(source)
    trainers = {name: TRAINERS.create(name, **st.trainer_options.get(name, {})) for name in st.trainers}
    for trainer in trainers.values():
        getattr(trainer, "check", lambda: None)()  # a missing backend fails here, before any training
    test = _arm(source, "test")
    sld, ref = _arm(source, "sld"), _arm(source, "reference")
    if st.cost_ratio == "measured":
        ratio = measured_cost_ratio(sld, ref)
    else:
        ratio = float(st.cost_ratio)
        if not ratio > 0:
            raise BenchmarkError(f"cost ratio must be > 0 or 'measured', got {st.cost_ratio!r}")
    stride = int(st.stride or max(1, round(ratio)))
    jobs = plan(st, sld, ref, ratio, stride)
    arms = {"sld": sld, "reference": ref}
    rows = []
    t0 = time.perf_counter()
    for name, trainer in trainers.items():
        for job in jobs:
            data = arms[job["data"]]
            train, val = data.subset(job["index"]), data.subset(job["val"])
            t = time.perf_counter()
            model = trainer.fit(train, val, seed=job["seed"])
            row = {"trainer": name, "protocol": job["protocol"], "arm": job["arm"], "x": job["x"],
                   "seed": job["seed"], "frames": len(train), "structures": int(len(np.unique(train.structure))),
                   "fit_s": time.perf_counter() - t, "mae": mae(model, test)}
            rows.append(row)
            if log:
                log(f"{name} {job['protocol']} {job['arm']} x={job['x']} seed={job['seed']} "
                    f"frames={len(train)} fit {row['fit_s']:.1f}s " +
                    " ".join(f"{k}={v:.4g}" for k, v in row["mae"].items()))
    result = {
        "campaign": manifest.get("campaign"), "source": str(source), "generator": manifest.get("generator"),
        "settings": {**dataclasses.asdict(st), "cost_ratio_used": ratio, "stride_used": stride},
        "units": {"energy": "meV/atom", "force": "meV/Å", "magforce": "meV/μB (transverse, magnetic sites)",
                  "x fixed_count": "training frames", "x fixed_budget": "reference-point units"},
        "measured_cost_ratio": _maybe_ratio(sld, ref),
        "order": {"sld": _order_stats(sld), "reference": _order_stats(ref), "test": _order_stats(test),
                  **{f"test:{t}": _order_stats(test.subset(np.flatnonzero(test.trajectory == t)))
                     for t in np.unique(test.trajectory)}},
        "test_baseline_mae": baseline_mae(test),
        "rows": rows, **summarise(rows), "wall_time_s": time.perf_counter() - t0,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_NAME).write_text(json.dumps(result, indent=2, default=_json_default))
    plot_fig3(result, out / FIGURE_NAME)
    return result


def _maybe_ratio(sld: FrameSet, ref: FrameSet) -> float | None:
    try:
        return measured_cost_ratio(sld, ref)
    except BenchmarkError:
        return None


def _json_default(value):
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def plot_fig3(result: dict[str, Any], path: str | Path) -> Path:
    """Fig. 3's layout: energy, force, spin-force MAE; top row against training-set size (fixed count),
    bottom row against budget (reference-point units); error bars are the seed spread (1 s.d.)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(2, 3, figsize=(12, 7), constrained_layout=True)
    titles = ("energy (meV/atom)", "force (meV/Å)", "transverse spin force (meV/μB)")
    styles = {"reference": ("tab:red", "o", "random-spin reference"), "sld": ("tab:blue", "s", "SLD"),
              "sld_strided": ("tab:green", "^", "SLD strided")}
    dashes = ["-", "--", ":", "-."]
    trainers = sorted({p["trainer"] for p in result["points"]})
    for row, protocol in enumerate(("fixed_count", "fixed_budget")):
        for col, metric in enumerate(METRICS):
            ax = axes[row, col]
            for t_index, trainer in enumerate(trainers):
                for arm, (color, marker, label) in styles.items():
                    pts = sorted((p for p in result["points"] if p["trainer"] == trainer and
                                  p["protocol"] == protocol and p["arm"] == arm), key=lambda p: p["x"])
                    if not pts:
                        continue
                    ax.errorbar([p["x"] for p in pts], [p[metric]["mean"] for p in pts],
                                yerr=[p[metric]["std"] for p in pts], color=color, marker=marker,
                                linestyle=dashes[t_index % len(dashes)], capsize=3, label=f"{label} ({trainer})")
            ax.set_xscale("log")  # sizes log-spaced; errors on a linear axis (they span less than a decade)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(titles[col])
            ax.set_xlabel("training-set size (frames)" if protocol == "fixed_count"
                          else "budget (reference-point units)")
            ax.grid(True, which="both", alpha=0.3)
    for ax in axes[:, 0]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    order = result["order"]
    fig.suptitle(f"{result.get('campaign')}: MAE on the test trajectories; Néel |L|: SLD "
                 f"{order['sld']['neel_mean']:.2f}, reference {order['reference']['neel_mean']:.2f}, "
                 f"test {order['test']['neel_mean']:.2f}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
