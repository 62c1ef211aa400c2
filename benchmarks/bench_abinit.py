"""Seconds per SLD step of the ABINIT engine, 2-atom bcc Fe (canted 75°/105°, atom 2 displaced),
on this machine (2 MPI ranks), and how far each setting's fields are from a converged setting.

Each case evaluates the same three states, as three consecutive SLD steps would (moments rotated by
1° and atom 2 moved by 0.005 Å per step), step 0 from scratch and steps 1, 2 seeded from the step
before (``restart``: WFK/DEN chain) or from scratch (``no-restart``). An SLD step with
``sib-fixed-field`` is one engine call; the integrator's own time is negligible (ms). Printed per
case: wall seconds per step (mean of the three), SCF iterations per step, and the field error
max_i |B_i − B_i(ref)| / max_i |B_i(ref)| over the three states, against the ``reference`` case.

    python benchmarks/bench_abinit.py                 # every case (~30 min on 2 free cores)
    python benchmarks/bench_abinit.py --cases coarse coarse-no-restart --reference reference
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sld_workflows.engines.abinit import AbinitEngine  # noqa: E402
from sld_workflows.engines.model.presets import make_preset  # noqa: E402

COMMON = {"ratsph_bohr": {"Fe": 2.12}, "mpi_procs": 2, "nstep": 120, "tsmear_ha": 0.02,
          "extra": {"diemix": 0.3, "diemixmag": 0.3}}
CASES = {
    "reference": {"ecut_ha": 18, "kpoints": [6, 6, 6], "toldfe_ha": 1e-9},
    "k4-ecut14": {"ecut_ha": 14, "kpoints": [4, 4, 4], "toldfe_ha": 1e-7},
    "coarse": {"ecut_ha": 12, "kpoints": [2, 2, 2], "toldfe_ha": 1e-7},
    "coarse-no-restart": {"ecut_ha": 12, "kpoints": [2, 2, 2], "toldfe_ha": 1e-7, "restart": False},
    "coarse-soft-lambda": {"ecut_ha": 12, "kpoints": [2, 2, 2], "toldfe_ha": 1e-7, "magcon_lambda": 0.05},
    "coarse-loose-tol": {"ecut_ha": 12, "kpoints": [2, 2, 2], "toldfe_ha": 1e-6},
}


def states():
    base, _ = make_preset("bcc_fe")
    out = []
    for k in range(3):
        th = np.radians([75.0 + k, 105.0 - k])
        pos = base.positions + np.array([[0.0, 0.0, 0.0], [0.02 + 0.005 * k, 0.0, 0.0]])
        out.append(base.replace(spins=np.c_[np.sin(th), 0 * th, np.cos(th)], positions=pos, step=k))
    return out


def run_case(name: str, root: Path) -> dict:
    engine = AbinitEngine.from_spec({**COMMON, **CASES[name], "run_dir": str(root / name)}, states()[0])
    walls, scf, fields = [], [], []
    for s in states():
        t = time.perf_counter()
        ev = engine.evaluate(s)
        walls.append(time.perf_counter() - t)
        scf.append(ev.info["scf_iterations"])
        fields.append(ev.fields_ev_per_mub)
    return {"wall_s": walls, "scf": scf, "fields": np.array(fields)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--reference", default="reference", choices=list(CASES))
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    names = list(dict.fromkeys([args.reference, *args.cases]))
    with tempfile.TemporaryDirectory(prefix="bench_abinit_") as tmp:
        results = {n: run_case(n, Path(tmp)) for n in names}
    ref = results[args.reference]["fields"]
    scale = np.abs(ref).max()
    print(f"{'case':22s} {'settings':42s} {'s/step':>7s} {'SCF per step':>14s} {'field err':>9s}")
    for n in names:
        r = results[n]
        c = CASES[n]
        desc = (f"k {'x'.join(map(str, c['kpoints']))}, ecut {c['ecut_ha']:g}, toldfe {c['toldfe_ha']:g}"
                + (f", lambda {c['magcon_lambda']:g}" if "magcon_lambda" in c else "")
                + (", no restart" if c.get("restart") is False else ""))
        err = float(np.abs(r["fields"] - ref).max() / scale)
        print(f"{n:22s} {desc:42s} {np.mean(r['wall_s']):7.1f} {'/'.join(map(str, r['scf'])):>14s} {err:9.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps({n: {**r, "fields": r["fields"].tolist()} for n, r in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
