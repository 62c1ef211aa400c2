"""Campaign analysis a person can look at: per-arm distributions as a PNG and the numbers as JSON.

Per arm: energy per atom (eV/atom), magnitude of the transverse magnetic force |F⊥| on magnetic sites
(eV/μB), neighbour spin correlation ⟨ŝ_i·ŝ_j⟩ against pair distance (magnetic pairs, ASE neighbour
list with periodic images), and the material's order parameters (the preset's, e.g. the Néel vector
of BiFeO3) per frame. At most ``max_frames`` frames per arm are used for the pair and order statistics
(evenly spaced); the histograms use every frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.datasets.blocks import magnetic_forces, read_block


def _hist(values: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist(), "mean": float(np.mean(values)) if values.size else None,
            "std": float(np.std(values)) if values.size else None, "n": int(values.size)}


def _pair_correlation(species, magnetic, positions, cell, spins, edges) -> tuple[np.ndarray, np.ndarray]:
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    idx = np.flatnonzero(magnetic)
    atoms = Atoms(symbols=[species[i] for i in idx], positions=positions[idx], cell=cell, pbc=True)
    i, j, d = neighbor_list("ijd", atoms, float(edges[-1]))
    s = spins[idx]
    dots = np.einsum("ij,ij->i", s[i], s[j])
    sums, _ = np.histogram(d, bins=edges, weights=dots)
    counts, _ = np.histogram(d, bins=edges)
    return sums, counts


def analyze_campaign(db: Any, name: str, out_dir: str, max_frames: int = 400, cutoff_a: float = 8.0) -> dict[str, Any]:
    from sld_workflows.campaigns.manage import get_campaign
    from sld_workflows.state import SLDState

    camp = get_campaign(db, name)
    preset = (camp["spec"].get("structure") or {}).get("preset")
    blocks: dict[str, list] = {}
    for arm, cfg in camp["arms"].items():
        blocks[arm] = [read_block(db, tid) for tid in cfg["trajectories"]]
    energies = {a: np.concatenate([b.arrays["energy"] / len(b.species) for b in bl]) if bl else np.zeros(0)
                for a, bl in blocks.items()}
    fperp: dict[str, np.ndarray] = {}
    for a, bl in blocks.items():
        vals = []
        for b in bl:
            _, perp, _ = magnetic_forces(b)
            mag = b.arrays["moments"] > 0
            vals.append(np.linalg.norm(perp, axis=-1)[mag])
        fperp[a] = np.concatenate(vals) if vals else np.zeros(0)
    all_e = np.concatenate([v for v in energies.values() if v.size])
    all_f = np.concatenate([v for v in fperp.values() if v.size])
    e_edges = np.linspace(all_e.min(), all_e.max() + 1e-12, 41)
    f_edges = np.linspace(0.0, all_f.max() + 1e-12, 41)
    r_edges = np.linspace(0.0, cutoff_a, 33)
    result: dict[str, Any] = {"campaign": name, "preset": preset, "units": {"energy_per_atom": "eV/atom",
                              "magnetic_force_perp": "eV/μB", "distance": "Å"}, "arms": {}}
    for a, bl in blocks.items():
        frames = [(b, i) for b in bl for i in range(b.n_frames)]
        pick = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int)) if frames else []
        sums = np.zeros(len(r_edges) - 1)
        counts = np.zeros(len(r_edges) - 1)
        orders: dict[str, list[float]] = {}
        for k in pick:
            b, i = frames[k]
            ar = b.arrays
            s, c = _pair_correlation(b.species, ar["moments"][i] > 0, ar["positions"][i], ar["cell"][i],
                                     ar["spins"][i], r_edges)
            sums += s
            counts += c
            if preset:
                from sld_workflows.analysis.order import order_parameters

                state = SLDState(species=b.species, positions=ar["positions"][i], cell=ar["cell"][i],
                                 velocities=ar["velocities"][i], spins=ar["spins"][i], moments=ar["moments"][i])
                for key, v in order_parameters(preset, state).items():
                    if not key.startswith("T_"):
                        orders.setdefault(key, []).append(float(v))
        corr = np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)
        result["arms"][a] = {
            "frames": int(energies[a].size),
            "energy_per_atom": _hist(energies[a], e_edges),
            "magnetic_force_perp": _hist(fperp[a], f_edges),
            "spin_correlation": {"r_edges": r_edges.tolist(),
                                 "mean_dot": [None if np.isnan(x) else float(x) for x in corr],
                                 "pairs": counts.astype(int).tolist(), "frames_used": len(pick)},
            "order_parameters": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "values": v}
                                 for k, v in orders.items()},
        }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}_analysis.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    png_path = out / f"{name}_analysis.png"
    _plot(result, png_path)
    return {"json": str(json_path), "png": str(png_path), "result": result}


def _plot(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(fig)
    (ax_e, ax_f), (ax_c, ax_o) = fig.subplots(2, 2)
    for n, (arm, r) in enumerate(result["arms"].items()):
        color = f"C{n}"
        for ax, key in ((ax_e, "energy_per_atom"), (ax_f, "magnetic_force_perp")):
            h = r[key]
            edges = np.array(h["edges"])
            total = max(sum(h["counts"]), 1)
            ax.stairs(np.array(h["counts"]) / total / np.diff(edges), edges, label=arm, color=color)
        sc = r["spin_correlation"]
        edges = np.array(sc["r_edges"])
        mid = 0.5 * (edges[1:] + edges[:-1])
        y = np.array([np.nan if v is None else v for v in sc["mean_dot"]])
        ax_c.plot(mid[np.isfinite(y)], y[np.isfinite(y)], "o-", color=color, label=arm)
        for m, (key, o) in enumerate(r["order_parameters"].items()):
            ax_o.hist(o["values"], bins=30, histtype="step", color=color, linestyle=("-", "--", ":")[m % 3],
                      label=f"{arm}: {key}")
    ax_e.set_xlabel("energy per atom (eV/atom)")
    ax_e.set_ylabel("density")
    ax_f.set_xlabel("|transverse magnetic force| (eV/μB)")
    ax_f.set_ylabel("density")
    ax_c.set_xlabel("pair distance (Å)")
    ax_c.set_ylabel("⟨ŝi·ŝj⟩")
    ax_c.axhline(0.0, color="k", lw=0.5)
    ax_o.set_xlabel("order parameter")
    ax_o.set_ylabel("frames")
    for ax in (ax_e, ax_f, ax_c, ax_o):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(f"campaign {result['campaign']}: per-arm distributions")
    fig.savefig(path, dpi=90)
