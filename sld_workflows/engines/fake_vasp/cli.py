"""``sld-fake-vasp``: a stand-in for ``vasp_ncl`` that runs in the current directory.

It reads INCAR, POSCAR, KPOINTS (M_CONSTR, MAGMOM, LAMBDA, I_CONSTRAINED_M, NELM, ISTART), evaluates
a configured engine at that structure with the spins taken from ``M_CONSTR`` (moment sizes μ from
``|MAGMOM|``), and writes OSZICAR, OUTCAR, vasprun.xml, CONTCAR, WAVECAR/CHGCAR placeholders and
stdout in VASP's layouts. It is not VASP: every file says so (vasprun ``subversion``, OUTCAR header,
a ``#`` note on OSZICAR's first line, the WAVECAR/CHGCAR text).

Engine: any MSONable engine, JSON-decoded with ``monty.json.MontyDecoder`` from the path in env
``SLD_FAKE_VASP_ENGINE``, else ``FAKE_VASP_ENGINE.json`` in the run directory.

Physics written, from the engine's evaluation and the conventions the parser applies
(:mod:`sld_workflows.engines.vasp.conventions`, shared, so the two cannot drift apart; the stand-in
does not use the parser's number reader, so a reader bug shows instead of cancelling out):

- sphere moment ``M_int = μ s``; smoothed moment ``MW = MW_RATIO · μ s + P/λ`` with ``MW_RATIO = 0.7``
  (real bcc Fe: 2.19/3.16 = 0.69): the moment leans along the field by MW⊥ = P/λ, as the penalty
  E_p = λ|MW⊥|² makes a real one do; both printed ``F7.3``;
- printed field ``P = μ · B_model⊥ / (c |MW_printed|)``, c = 2 for ``I_CONSTRAINED_M`` = 1, 2 and 1
  for 4, so that the parser's ``(|MW|/μ)·c·P⊥`` returns the model field (using the *printed* |MW|
  keeps the 3-decimal rounding of MW out of the field);
- ``E_p = Σ|P|²/λ`` from the printed P (the mode-1/2 identity; used for mode 4 too, a stand-in
  simplification); ``E0 = E_DFT + E_p``; ``F = E0`` (no smearing entropy); ``<lVp> = 2E_p``,
  ``DBL = −E_p`` (mode 1/2 relations seen in real files; mode 4: ``E_p`` and 0);
- forces (``3F16.8`` in vasprun.xml) and stress (kBar, VASP sign = −ASE sign) from the engine.

Printed precision: VASP prints ``lambda*MW_perp`` as E12.5 (5 significant digits), and the field is
printed nowhere else. Env ``SLD_FAKE_VASP_FIELD_DIGITS`` (default 5 = real VASP) widens those rows
to E(d+7).d; the parser reads both. This is a property of the stand-in only (used to show the
engine chain is exact to the 12 printed digits, ~7e-11 over 20 steps); with real VASP the field carries
5 significant digits.

Env ``SLD_FAKE_VASP_FLIP_FIELD=1`` prints −P while MW leans along +P: a VASP whose sign convention
differs from the one the engine assumes (the engine's sign guard must refuse it).

SCF iterations are emulated: ``SCF_FRESH = 24`` from scratch, ``SCF_RESTART = 12`` when ISTART ≥ 1
and a WAVECAR written by this program is present (``NELM`` for the ``unconverged`` fault).

Fault injection (for Custodian handler tests): a JSON list of ``{"fault": ..., "times": 1,
"match": "<substring of the run directory name>", "message": "brmix"}`` read from
``FAKE_VASP_FAULTS`` in the run directory or from env ``SLD_FAKE_VASP_FAULTS`` (a file path or the
JSON text). A fault fires while this directory's attempt counter (``.fake_vasp_attempts``) ≤ times.
Faults: ``error`` (prints a VASP error message from :data:`ERROR_MESSAGES` to stdout, writes no
vasprun.xml, exit 1), ``stderr`` (a message on stderr, default "Allocation would exceed memory limit", exit 1),
``unconverged`` (NELM SCF steps, otherwise complete), ``hang`` (prints a few
SCF lines, then sleeps until killed), ``crash`` (OSZICAR cut off inside the constraint block,
exit 139).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

MW_RATIO = 0.7
SCF_FRESH = 24
SCF_RESTART = 12
ERROR_MESSAGES = {
    "brmix": "BRMIX: very serious problems\n the old and the new charge density differ",
    "subspacematrix": "WARNING: Sub-Space-Matrix is not hermitian in DAV",
    "coef": "ERROR: while reading WAVECAR, plane wave coefficients changed",
    "edddav": "Error EDDDAV: Call to ZHEGV failed. Returncode =   7 1  16",
}
PLACEHOLDER = "sld-fake-vasp placeholder {name} (not a real VASP file)\ngeneration {gen}\n"


class FakeVaspInputError(Exception):
    pass


def _say(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _load_faults(cwd: Path) -> list[dict]:
    specs: list[dict] = []
    local = cwd / "FAKE_VASP_FAULTS"
    if local.is_file():
        loaded = json.loads(local.read_text() or "[]")
        specs += [loaded] if isinstance(loaded, dict) else loaded
    env = os.environ.get("SLD_FAKE_VASP_FAULTS")
    if env:
        text = env if env.lstrip().startswith(("[", "{")) else Path(env).read_text()
        loaded = json.loads(text or "[]")
        specs += [loaded] if isinstance(loaded, dict) else loaded
    return specs


def _attempt(cwd: Path) -> int:
    counter = cwd / ".fake_vasp_attempts"
    n = int(counter.read_text()) + 1 if counter.is_file() else 1
    counter.write_text(f"{n}\n")
    return n


def _active_fault(cwd: Path, attempt: int) -> dict | None:
    for spec in _load_faults(cwd):
        if spec.get("match") and spec["match"] not in cwd.name:
            continue
        if attempt <= int(spec.get("times", 1)):
            return spec
    return None


def _generation(path: Path) -> int:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    if len(lines) >= 2 and lines[0].startswith("sld-fake-vasp placeholder") and lines[1].startswith("generation"):
        return int(lines[1].split()[1])
    return 0


def _load_engine(cwd: Path):
    from monty.json import MontyDecoder

    path = os.environ.get("SLD_FAKE_VASP_ENGINE") or str(cwd / "FAKE_VASP_ENGINE.json")
    if not Path(path).is_file():
        raise FakeVaspInputError(f"no engine: set SLD_FAKE_VASP_ENGINE or put FAKE_VASP_ENGINE.json in {cwd}")
    engine = MontyDecoder().process_decoded(json.loads(Path(path).read_text()))
    if not hasattr(engine, "evaluate"):
        raise FakeVaspInputError(f"{path} does not decode to an engine (got {type(engine).__name__})")
    return engine


def _incar_value(text: str):
    tokens = []
    for tok in text.split():
        if "*" in tok:  # VASP repeat syntax 3*0.0
            k, v = tok.split("*", 1)
            tokens += [v] * int(k)
        else:
            tokens.append(tok)
    vals = []
    for tok in tokens:
        low = tok.lower().strip(".")
        if low in ("true", "t"):
            vals.append(True)
        elif low in ("false", "f"):
            vals.append(False)
        else:
            try:
                vals.append(int(tok))
            except ValueError:
                try:
                    vals.append(float(tok))
                except ValueError:
                    vals.append(tok)
    if len(vals) == 1:
        return vals[0]
    if all(isinstance(v, str) for v in vals):
        return text.strip()
    return vals


def read_incar(path: Path) -> dict:
    """INCAR as {TAG: value} (a small reader: pymatgen's import costs a second per call)."""
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].split("!")[0]
        for part in line.split(";"):
            if "=" in part:
                key, value = part.split("=", 1)
                out[key.strip().upper()] = _incar_value(value)
    return out


def read_poscar(path: Path):
    """(species list, cell (3,3) Å, fractional coords (N,3)) from a VASP 5 POSCAR."""
    import numpy as np

    lines = path.read_text().splitlines()
    scale = float(lines[1].split()[0])
    cell = np.array([[float(x) for x in lines[i].split()[:3]] for i in (2, 3, 4)]) * scale
    names = lines[5].split()
    counts = [int(x) for x in lines[6].split()]
    if len(names) != len(counts):
        raise FakeVaspInputError("POSCAR: species names line missing or inconsistent (VASP 5 format needed)")
    i = 7
    if lines[i].strip()[:1] in "sS":
        i += 1
    cartesian = lines[i].strip()[:1] in "cCkK"
    n = sum(counts)
    coords = np.array([[float(x) for x in lines[i + 1 + k].split()[:3]] for k in range(n)])
    frac = np.linalg.solve(cell.T, (coords * scale).T).T if cartesian else coords
    species = [name for name, c in zip(names, counts, strict=True) for _ in range(c)]
    return species, cell, frac


def read_kpoints_mesh(path: Path) -> tuple[int, int, int]:
    lines = path.read_text().splitlines()
    try:
        return tuple(int(x) for x in lines[3].split()[:3])
    except (IndexError, ValueError):
        return (1, 1, 1)


def run(cwd: Path, t0: float) -> int:
    import numpy as np

    from sld_workflows.engines.fake_vasp import writers as w
    from sld_workflows.engines.fake_vasp.xml_outcar import outcar_text, vasprun_xml
    from sld_workflows.engines.vasp import conventions as cv
    from sld_workflows.state import SLDState
    from sld_workflows.vectors import unit_rows

    attempt = _attempt(cwd)
    fault = _active_fault(cwd, attempt)
    for name in ("INCAR", "POSCAR"):
        if not (cwd / name).is_file():
            raise FakeVaspInputError(f"{name} not found")
    incar = read_incar(cwd / "INCAR")
    species, cell, frac = read_poscar(cwd / "POSCAR")
    cart = frac @ cell
    n = len(species)
    kmesh = read_kpoints_mesh(cwd / "KPOINTS") if (cwd / "KPOINTS").is_file() else (1, 1, 1)
    icm = int(incar.get("I_CONSTRAINED_M", 0))
    if icm not in cv.CONSTRAINED_MODES:
        raise FakeVaspInputError(f"I_CONSTRAINED_M={icm}: this stand-in emulates constrained runs (1, 2, 4) only")
    lam = float(incar.get("LAMBDA", 0.0))
    if lam <= 0:
        raise FakeVaspInputError("LAMBDA must be > 0")
    try:
        m_constr = np.asarray(incar["M_CONSTR"], dtype=float).reshape(n, 3)
        incar.setdefault("MAGMOM", [0.0] * (3 * n))
        magmom = np.asarray(incar.get("MAGMOM", [[0, 0, 0]] * n), dtype=float).reshape(n, 3)
    except (KeyError, ValueError) as exc:
        _say(" Error reading item 'M_CONSTR' from file INCAR.")
        raise FakeVaspInputError(f"M_CONSTR/MAGMOM: need 3 values per ion ({exc})") from exc
    nelm = int(incar.get("NELM", cv.VASP_DEFAULTS["NELM"]))
    digits = int(os.environ.get("SLD_FAKE_VASP_FIELD_DIGITS", "5"))
    constrained = cv.constrained_mask(m_constr)
    mu = np.linalg.norm(magmom, axis=1)
    spins = np.where(constrained[:, None], m_constr, magmom)
    norms = np.linalg.norm(spins, axis=1)
    mu = np.where(norms > 0, mu, 0.0)
    spins = unit_rows(spins)
    state = SLDState(
        species=tuple(species), positions=cart, cell=cell, velocities=np.zeros((n, 3)), spins=spins, moments=mu,
    )
    engine = _load_engine(cwd)

    wav_gen = _generation(cwd / "WAVECAR") if int(incar.get("ISTART", cv.VASP_DEFAULTS["ISTART"])) >= 1 else 0
    chg_gen = _generation(cwd / "CHGCAR") if int(incar.get("ICHARG", cv.VASP_DEFAULTS["ICHARG"])) in (0, 1) else 0
    restarted = wav_gen > 0
    kind = fault.get("fault") if fault else None
    n_scf = nelm if kind == "unconverged" else (SCF_RESTART if restarted else SCF_FRESH)
    _say(f" POSCAR found :  {len(set(state.species))} types and {n:7d} ions")
    _say(" LDA part: xc-table for (Slater+PW92), standard interpolation")
    _say(f" Constrained moments: I_CONSTRAINED_M = {icm}, LAMBDA = {lam}")
    _say(" WAVECAR read (fake restart)" if restarted else " WAVECAR not read")
    _say(" entering main loop")
    _say("       N       E                     dE             d eps       ncg     rms          rms(c)")

    evaluation = engine.evaluate(state)
    c = cv.field_factor(icm)
    m_int_p = np.round(mu[:, None] * spins, 3)
    mw_parallel = MW_RATIO * mu[:, None] * spins
    lean = np.zeros((n, 3))  # MW⊥ = P/λ, P from the parallel |MW| (|MW⊥| ≪ |MW|: second order)
    for i in np.flatnonzero(constrained & (mu > 0)):
        lean[i] = cv.printed_field_ev_per_mub(evaluation.fields_ev_per_mub[i], MW_RATIO * mu[i], mu[i], c) / lam
    mw_p = np.round(mw_parallel + lean, 3)
    mw_size = np.linalg.norm(mw_p, axis=1)
    sign = -1.0 if os.environ.get("SLD_FAKE_VASP_FLIP_FIELD") == "1" else 1.0
    rows = []
    p_printed = np.zeros((n, 3))
    for i in np.flatnonzero(constrained):
        if mu[i] > 0 and mw_size[i] > 0:
            p = sign * cv.printed_field_ev_per_mub(evaluation.fields_ev_per_mub[i], mw_size[i], mu[i], c)
        else:
            p = np.zeros(3)
        p_printed[i] = [w.fortran_e_value(v, digits) for v in p]
        rows.append((int(i) + 1, p))
    # E_p from the printed P (the mode-1/2 identity), itself as printed (E12.5)
    e_p = w.fortran_e_value(cv.penalty_energy_ev(p_printed, lam), 5)
    e0 = cv.printed_e0_ev(float(evaluation.energy_ev), e_p)
    f_ev = e0
    lvp, dbl = (2 * e_p, -e_p) if icm in (1, 2) else (e_p, 0.0)

    # SCF history (emulated): energies approach F geometrically, the last equals F.
    energies = [f_ev + 30.0 * 0.45**k for k in range(n_scf - 1)] + [f_ev]
    osz = ["# sld-fake-vasp: emulated run, not VASP; SCF iteration counts emulated "
           f"({SCF_FRESH} from scratch, {SCF_RESTART} after a WAVECAR restart; this run: {n_scf})\n",
           "       N       E                     dE             d eps       ncg     rms          rms(c)\n"]
    block = w.scf_constraint_block(e_p, lam, lvp, dbl, mw_p, m_int_p)
    prev = 0.0
    hang_after = 3
    for k, e in enumerate(energies, start=1):
        osz.append(block)
        line = w.dav_line(k, e, e - prev, 0.5 * (e - prev), 2 * n * 8, abs(e - f_ev) + 1e-4)
        osz.append(line)
        _say(line.rstrip("\n"))
        prev = e
        if kind == "hang" and k == hang_after:
            (cwd / "OSZICAR").write_text("".join(osz))
            while True:  # a frozen VASP: no more output until killed
                time.sleep(3600)
        if kind == "stderr" and k == hang_after:  # an MPI/memory failure reported on stderr only
            sys.stderr.write(fault.get("message", "Allocation would exceed memory limit") + "\n")
            (cwd / "OSZICAR").write_text("".join(osz))
            return 1
        if kind == "error" and k == hang_after:
            _say(ERROR_MESSAGES[fault.get("message", "brmix")])
            (cwd / "OSZICAR").write_text("".join(osz))
            return 1
    mag = m_int_p.sum(axis=0)
    osz.append(w.f_line(1, f_ev, e0, energies[-1] - (energies[-2] if len(energies) > 1 else 0.0), mag))
    end_block = w.end_of_step_block(e_p, lam, rows, digits)
    if kind == "crash":
        text = "".join(osz) + end_block
        cut = text.rfind("\n", 0, len(text) - 2) + 20  # inside the last field row
        (cwd / "OSZICAR").write_text(text[:cut])
        _say(" forrtl: severe (174): SIGSEGV, segmentation fault occurred")
        return 139
    osz.append(end_block)
    (cwd / "OSZICAR").write_text("".join(osz))
    _say(w.f_line(1, f_ev, e0, 0.0, mag).rstrip("\n"))

    stress_kbar = None
    if evaluation.stress_ev_per_a3 is not None:
        stress_kbar = cv.ase_ev_per_a3_to_stress_kbar(evaluation.stress_ev_per_a3)
    forces = np.asarray(evaluation.forces_ev_per_a)
    incar_d = dict(incar)
    scf_e = [(e, e, e) for e in energies[:-1]] + [(f_ev, e0, e0)]
    (cwd / "vasprun.xml").write_text(vasprun_xml(
        incar_d, list(state.species), cell, frac, kmesh,
        scf_e, forces, stress_kbar, nelm))
    (cwd / "OUTCAR").write_text(outcar_text(n, nelm, cart, forces, stress_kbar, m_int_p,
                                            f_ev, e0, n_scf, time.time() - t0))
    (cwd / "CONTCAR").write_text((cwd / "POSCAR").read_text())
    (cwd / "WAVECAR").write_text(PLACEHOLDER.format(name="WAVECAR", gen=wav_gen + 1))
    (cwd / "CHGCAR").write_text(PLACEHOLDER.format(name="CHGCAR", gen=max(chg_gen, wav_gen) + 1))
    _say(" writing wavefunctions")
    return 0


def main(argv: list[str] | None = None) -> int:
    t0 = time.time()
    _say(" running on    1 total cores")
    _say(" vasp.6.6.0 (sld-fake-vasp: emulation of vasp_ncl for tests, not VASP)")
    cwd = Path.cwd()
    try:
        return run(cwd, t0)
    except FakeVaspInputError as exc:
        _say(f" sld-fake-vasp ERROR: {exc}")
        sys.stderr.write(f"sld-fake-vasp: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
