"""Readers of one finished ABINIT 9 run: ``run.abo`` (the main output) and ``run.log`` (stdout).

Our own, because the libraries do not cover it:

- ASE 3.29's ``ase.io.abinit.read_abinit_out`` raises ``UnboundLocalError`` on ABINIT 9.6.2's
  ``.abo`` (it looks for the pre-9 header lines), and knows neither the per-atom sphere moments nor
  the constraining fields;
- abipy is not packaged here; pymatgen's ``io.abinit`` reads results through netCDF (abipy's GSR
  files), not installed either, and neither library parses the ``magconon`` block (sphere moments,
  ``constraining magnetic field``, ``lVp``);
- the energy we need is E_KS = ``total_energy_dc`` (last ``EnergyTermsDC`` document, full
  precision) − ``lVp`` (log): PAW's default density mixing (``iscf 17``) makes the double-counting
  energy the one with second-order SCF errors, and it contains lVp = 2E_p of the penalty
  potential. Neither ``etotal`` (= E_KS + lVp, 9 printed digits) nor the "direct" ``total_energy``
  will do: on bcc Fe at 4×4×4 k the direct energy of one converged run was off by 5e-5 Ha
  (total_energy_dc − lVp − total_energy: −3e-6, +7e-6, +5.3e-5 Ha in three runs), which moved the
  finite-difference torque by 23 % (docs/abinit_engine.md).

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

    total_energy_ha: float          # "direct" free energy (no penalty): first-order SCF errors
    total_energy_dc_ha: float       # double-counting free energy = E_KS + lVp (full precision)
    etotal_ha: float                # etotal as printed in ResultsGS (= total_energy_dc, 9 digits)
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

    @property
    def e_ks_ha(self) -> float:
        """E_KS without the penalty: the double-counting free energy minus lVp (= 2E_p)."""
        return self.total_energy_dc_ha - (self.lvp_ha or 0.0)


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
    terms_dc = yaml_documents(abo, "EnergyTermsDC")
    if not results or not terms or not terms_dc:
        raise AbinitParseError(f"{abo_path}: no ResultsGS/EnergyTerms/EnergyTermsDC document")
    res, en, en_dc = results[-1], terms[-1], terms_dc[-1]
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
        total_energy_dc_ha=float(en_dc["total_energy_dc"]),
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
