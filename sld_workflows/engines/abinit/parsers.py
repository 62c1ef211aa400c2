"""Readers of one finished ABINIT 9 run: ``run.abo`` (the main output) and ``run.log`` (stdout).

Our own, because the libraries do not cover it:

- ASE 3.29's ``ase.io.abinit.read_abinit_out`` raises ``UnboundLocalError`` on ABINIT 9.6.2's
  ``.abo`` (it looks for the pre-9 header lines), and knows neither the per-atom sphere moments nor
  the constraining fields;
- abipy is not packaged here; pymatgen's ``io.abinit`` reads results through netCDF (abipy's GSR
  files), not installed either, and neither library parses the ``magconon`` block (sphere moments,
  ``constraining magnetic field``, ``lVp``);
- the energy we need is ``total_energy`` of the last ``EnergyTerms`` YAML document (the "direct"
  free energy E_KS without the penalty), not ``etotal``: with PAW's default double-counting
  scheme ``etotal`` = E_KS + lVp = E_KS + 2E_p (reference measurement: differencing ``etotal``
  moves the finite-difference torque by 5 %).

ABINIT's structured YAML documents (``--- !ResultsGS`` ... ``...``) are read with PyYAML; the text
tables of the log with a line reader.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import yaml

from sld_workflows.errors import SLDError

_FLOAT = r"[-+]?\d*\.\d+(?:[EeDd][-+]?\d+)?"


class AbinitParseError(SLDError):
    """An ABINIT output is missing or incomplete."""


@dataclasses.dataclass
class AbinitResult:
    """What one run printed, in ABINIT's units (Ha, bohr, μB)."""

    total_energy_ha: float          # direct free energy, no penalty
    etotal_ha: float                # double-counting etotal (= total_energy + lVp at convergence)
    forces_ha_per_bohr: np.ndarray  # (N, 3)
    stress_ha_per_bohr3: np.ndarray | None  # (3, 3) ABINIT's sign (positive = compressive? see engine)
    moments_mub: np.ndarray         # (N, 3) integrated in the ratsph spheres (last table)
    printed_fields_ha_per_mub: np.ndarray  # (N, 3) λ·M⊥ as printed = half of B_eff
    penalty_ha: float | None        # "Lagrange penalty" E_p
    lvp_ha: float | None
    scf_iterations: int
    converged: bool
    wall_time_s: float | None
    cpu_time_s: float | None


def yaml_documents(text: str, tag: str) -> list[dict]:
    """Every ``--- !<tag>`` YAML document of an ABINIT output, parsed (the tag line dropped)."""
    docs = []
    for m in re.finditer(rf"^--- !{tag}\n(.*?)^\.\.\.$", text, re.M | re.S):
        docs.append(yaml.safe_load(m.group(1)))
    return docs


def error_messages(text: str) -> list[str]:
    """The ``message`` of every ``--- !ERROR`` document, one line each."""
    out = []
    for doc in yaml_documents(text, "ERROR"):
        msg = doc.get("message") if isinstance(doc, dict) else None
        out.append(" ".join(str(msg or doc).split()))
    if not out:  # older style: "ERROR" lines followed by the message
        out = [" ".join(line.split()) for line in text.splitlines() if "--- !BUG" in line or " ERROR" in line][:3]
    return out


def last_moment_table(log: str, n_atoms: int) -> np.ndarray:
    i = log.rfind("Integrated electronic and magnetization densities in atomic spheres")
    if i < 0:
        raise AbinitParseError("no 'Integrated electronic and magnetization densities' table (prtdensph 1?)")
    rows = re.findall(rf"^\s+(\d+)\s+{_FLOAT}\s+{_FLOAT}\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s*$", log[i:], re.M)
    if len(rows) < n_atoms:
        raise AbinitParseError(f"moment table has {len(rows)} rows for {n_atoms} atoms")
    return np.array([[float(x) for x in r[1:]] for r in rows[:n_atoms]])


def last_constraining_fields(log: str, n_atoms: int) -> np.ndarray:
    rows = re.findall(rf"constraining magnetic field\s*\n\s*(\d+)\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})", log)
    if len(rows) < n_atoms:
        raise AbinitParseError(f"{len(rows)} 'constraining magnetic field' lines for {n_atoms} atoms (magconon 1?)")
    rows = rows[-n_atoms:]
    if [int(r[0]) for r in rows] != list(range(1, n_atoms + 1)):
        raise AbinitParseError("the last 'constraining magnetic field' lines are not atoms 1..N in order")
    return np.array([[float(x.replace("D", "E").replace("d", "E")) for x in r[1:]] for r in rows])


def _last_float(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1].replace("D", "E")) if found else None


def parse_run(run_dir: str | Path, n_atoms: int, abo_name: str = "run.abo", log_name: str = "run.log") -> AbinitResult:
    run_dir = Path(run_dir)
    abo_path, log_path = run_dir / abo_name, run_dir / log_name
    if not abo_path.is_file():
        raise AbinitParseError(f"{abo_path} does not exist")
    abo = abo_path.read_text(errors="replace")
    log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    if "Overall time at end" not in abo:
        raise AbinitParseError(f"{abo_path} is incomplete (no 'Overall time at end': the run stopped early)")
    results = yaml_documents(abo, "ResultsGS")
    terms = yaml_documents(abo, "EnergyTerms")
    if not results or not terms:
        raise AbinitParseError(f"{abo_path}: no ResultsGS/EnergyTerms document")
    res, en = results[-1], terms[-1]
    forces = np.asarray(res["cartesian_forces"], dtype=float)
    if forces.shape != (n_atoms, 3):
        raise AbinitParseError(f"{abo_path}: forces of shape {forces.shape}, expected ({n_atoms}, 3)")
    stress = res.get("cartesian_stress_tensor")
    stress = None if stress is None else np.asarray(stress, dtype=float)
    if stress is not None and not np.all(np.isfinite(stress)):
        stress = None
    times = re.findall(rf"Overall time at end \(sec\) : cpu=\s*({_FLOAT})\s+wall=\s*({_FLOAT})", abo)
    source = log or abo
    return AbinitResult(
        total_energy_ha=float(en["total_energy"]),
        etotal_ha=float(res["etotal"]),
        forces_ha_per_bohr=forces,
        stress_ha_per_bohr3=stress,
        moments_mub=last_moment_table(source, n_atoms),
        printed_fields_ha_per_mub=last_constraining_fields(source, n_atoms),
        penalty_ha=_last_float(rf"Lagrange penalty\s+({_FLOAT})", source),
        lvp_ha=_last_float(rf"lVp =\s+({_FLOAT})", source),
        scf_iterations=len(re.findall(r"^ ETOT\s+\d+", abo, re.M)),
        converged=bool(re.search(r"is converged", abo)) and "was not enough SCF cycles to converge" not in abo,
        wall_time_s=float(times[-1][1]) if times else None,
        cpu_time_s=float(times[-1][0]) if times else None,
    )
