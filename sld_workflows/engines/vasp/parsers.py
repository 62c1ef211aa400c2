"""Parsers for the outputs of a VASP constrained-moment (``I_CONSTRAINED_M``) static run.

- :func:`parse_constrained_oszicar` — our own OSZICAR parser. pymatgen's ``Oszicar`` misparses
  constrained runs (every ``E_p``/table line becomes a bogus ionic step, ``final_energy`` raises
  ``KeyError: 'E0'``, ``mag`` keeps only x; see ``../shared/reference/vasp_constrained.md`` §5), and
  nothing upstream reads the ``lambda*MW_perp`` block, so this one is written here. It reads the
  fixed-width Fortran layouts of VASP 5.4.4–6.6 (``(I3,3F7.3,F9.3,2F7.3)`` MW/M rows,
  ``(I3,A2,E12.5,A2,E12.5,A2,E12.5)`` field rows), ``***`` ion indices (≥ 1000 ions), mantissas
  without a leading zero (``-.36715064E+02``) and exponents printed without ``E`` (``0.12345-100``).
  A file cut off mid-block raises :class:`OszicarParseError`; it never returns a partial number.
- :func:`parse_vasprun` — energies, forces (eV/Å) and stress from ``vasprun.xml`` via pymatgen's
  ``Vasprun`` (it handles the noncollinear file fine: the XML has no per-atom moments, and we do
  not parse eigenvalues or DOS).
- :func:`evaluation_from_run` — turns a finished run directory into an :class:`Evaluation`
  (conventions below).

Conventions (DESIGN.md §3, reference §4):

- printed vector ``P = LAMBDA * MW_perp`` (eV/μB); for ``I_CONSTRAINED_M`` = 1, 2 the effective
  field conjugate to the smoothed moment MW is ``B_eff = +2 P⊥`` (``field_factor`` 2); for 4 it is
  assumed ``+P⊥`` (factor 1, undocumented by VASP);
- ``P⊥`` is the part perpendicular to the constraint direction (our spin);
- the field handed to the LLG for a site of moment μ is ``(|MW|/μ) · B_eff`` with μ chosen by
  ``moment_convention``: ``"state"`` (default: the state's moment size, the μ the dynamics uses),
  ``"M_int"`` (|M_int| of the sphere) or ``"MW"`` (|MW|);
- ``E_DFT = E0 − E_p`` (printed energies include the penalty);
- stress: VASP prints kBar with the opposite sign to ASE's; we return ``−σ_VASP / 1602.1766208``
  in eV/Å³ (ASE's sign: positive = tensile), as ``ase.io.vasp`` does.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.errors import SLDError
from sld_workflows.units import KBAR_TO_EV_PER_A3


class OszicarParseError(SLDError):
    """An OSZICAR is incomplete or malformed; the message names the file, line and reason."""


# ------------------------------------------------------------------------------------ numbers
_MISSING_E = re.compile(r"^([+-]?\d*\.\d*)([+-]\d{3})$")


def fortran_float(text: str) -> float:
    """A Fortran real as printed by VASP: ``-.367E+02``, ``0.12345-100`` (E dropped for 3-digit
    exponents), ``0.000``. Raises ``ValueError`` for ``***`` overflow fields or garbage."""
    s = text.strip()
    if not s or "*" in s:
        raise ValueError(f"not a number: {text!r}")
    m = _MISSING_E.match(s)
    if m:
        s = f"{m.group(1)}E{m.group(2)}"
    return float(s.replace("D", "E").replace("d", "E"))


def rotation_from_saxis(saxis) -> np.ndarray:
    """Rotation taking SAXIS-frame vectors (MAGMOM, M_CONSTR, MW, P) to Cartesian: Rz(α)·Ry(β),
    α = azimuth and β = polar angle of SAXIS (VASP wiki ``SAXIS``). Identity for (0, 0, 1)."""
    s = np.asarray(saxis, dtype=float)
    s = s / np.linalg.norm(s)
    alpha = np.arctan2(s[1], s[0]) if np.hypot(s[0], s[1]) > 1e-12 else 0.0
    beta = np.arccos(np.clip(s[2], -1.0, 1.0))
    ca, sa, cb, sb = np.cos(alpha), np.sin(alpha), np.cos(beta), np.sin(beta)
    rz = np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cb, 0.0, sb], [0.0, 1.0, 0.0], [-sb, 0.0, cb]])
    return rz @ ry


# ------------------------------------------------------------------------------------ OSZICAR
_F_LINE = re.compile(r"^\s*(\d+|\*+)\s+F=\s*(\S+)\s+E0=\s*(\S+)\s+d E\s*=\s*(\S+)(?:\s+mag=(.*))?$")
_EP_LINE = re.compile(r"^\s*E_p\s*=\s*(\S+)\s+lambda\s*=\s*(\S+)\s*$")
_SCF_LINE = re.compile(r"^\s*(DAV|RMM|SDA|CGA|DMP|ORT|CG|EDDIAG|RMM-DIIS):\s*(\d+|\*+)\s")
_I3 = re.compile(r"^(\s*\d+|\*\*\*)$")


def _is_row(line: str) -> bool:
    """A table row starts with an ``I3`` ion index in columns 1-3 (``***`` beyond 999)."""
    return len(line) > 3 and bool(_I3.match(line[0:3])) and not _F_LINE.match(line)


_FIELD_ROW = re.compile(r"^\s*(\d+|\*\*\*)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


@dataclasses.dataclass
class IonicStep:
    """One ionic step of a constrained OSZICAR. Vectors in the SAXIS frame as printed.

    ``mw``/``m_int``: (N, 3) μB, from the last ``MW_int``/``M_int`` table before the ``F=`` line;
    ``fields``: (N, 3) printed ``lambda*MW_perp`` (eV/μB), zero rows for ions absent from the block;
    ``in_block``: (N,) bool, which ions the block listed; ``e_p``/``lambda_``: from the end-of-step
    block; ``n_scf``: the last electronic-step number printed (DAV:/SDA:/CGA: ...) in this ionic step.
    """

    index: int
    f_ev: float
    e0_ev: float
    de_ev: float
    mag_mub: np.ndarray
    mw: np.ndarray
    m_int: np.ndarray
    fields: np.ndarray
    in_block: np.ndarray
    e_p_ev: float
    lambda_: float
    n_scf: int

    @property
    def e_dft_ev(self) -> float:
        """E0 − E_p: the energy without the penalty."""
        return self.e0_ev - self.e_p_ev


@dataclasses.dataclass
class ConstrainedOszicar:
    steps: list[IonicStep]
    notes: list[str]

    @property
    def final(self) -> IonicStep:
        return self.steps[-1]


def _parse_mw_row(line: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Fixed-width ``(I3,3F7.3,F9.3,2F7.3)``; whitespace split as a fallback for hand-edited files."""
    idx = line[0:3]
    try:
        vals = [fortran_float(line[a:b]) for a, b in ((3, 10), (10, 17), (17, 24), (24, 33), (33, 40), (40, 47))]
        if len(line.rstrip()) > 47:
            raise ValueError("row longer than the fixed layout")
    except ValueError:
        tokens = line.split()
        if len(tokens) != 7:
            raise
        idx = tokens[0]
        vals = [fortran_float(t) for t in tokens[1:]]
    return idx.strip(), np.array(vals[:3]), np.array(vals[3:])


def _parse_field_row(line: str) -> tuple[str, np.ndarray]:
    """``(I3,A2,E12.5,A2,E12.5,A2,E12.5)``: ion [0:3], x [3:17], y [17:31], z [31:45]. Longer rows
    (more digits, see the ``sld-fake-vasp`` precision option) are split on whitespace; the E12.5
    fields are always separated by the two A2 blanks, so they cannot fuse."""
    stripped = line.rstrip("\n")
    if len(stripped.rstrip()) <= 45:
        idx = stripped[0:3]
        vals = [fortran_float(stripped[a:b]) for a, b in ((3, 17), (17, 31), (31, 45))]
    else:
        m = _FIELD_ROW.match(stripped)
        if not m:
            raise ValueError("not a field row")
        idx = m.group(1)
        vals = [fortran_float(m.group(k)) for k in (2, 3, 4)]
    return idx.strip(), np.array(vals)


def parse_constrained_oszicar(
    source: str | Path,
    constrained: np.ndarray | None = None,
    n_ions: int | None = None,
) -> ConstrainedOszicar:
    """Parse a constrained OSZICAR (path or text).

    ``constrained``: (N,) bool mask of ions with a non-zero ``M_CONSTR`` (|component| ≥ 1e-5, VASP's
    test). With it, the end-of-step block must list exactly those ions (rows for ``M_CONSTR = 0 0 0``
    ions are omitted by VASP), ``***`` indices are mapped by order, and a block cut short is
    detected; without it, only numeric indices can be placed and a block cut exactly at a row
    boundary cannot be told from a complete one. Raises :class:`OszicarParseError` for any
    incomplete or inconsistent block.
    """
    name = "OSZICAR"
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        name = str(source)
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise OszicarParseError(f"{name}: cannot read ({exc})") from exc
    else:
        text = source
    lines = text.splitlines()
    if constrained is not None:
        constrained = np.asarray(constrained, dtype=bool)
        n_ions = constrained.size if n_ions is None else n_ions

    def fail(lineno: int, reason: str) -> OszicarParseError:
        return OszicarParseError(f"{name}, line {lineno + 1}: {reason}")

    steps: list[IonicStep] = []
    notes: list[str] = []
    last_mw = last_m = None
    n_scf = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#"):
            notes.append(line.strip())
            i += 1
            continue
        if "MW_int" in line and "M_int" in line:
            rows_mw, rows_m, idxs = [], [], []
            j = i + 1
            while j < len(lines):
                row = lines[j]
                if not _is_row(row):
                    break
                try:
                    idx, mw, m = _parse_mw_row(row)
                except ValueError as exc:
                    raise fail(j, f"malformed MW_int/M_int row ({exc}): {row!r}") from exc
                idxs.append(idx)
                rows_mw.append(mw)
                rows_m.append(m)
                j += 1
            if n_ions is not None and len(rows_mw) != n_ions:
                raise fail(i, f"MW_int/M_int table has {len(rows_mw)} rows, expected {n_ions} ions (truncated?)")
            if n_ions is None and last_mw is not None and len(rows_mw) != len(last_mw):
                raise fail(i, f"MW_int/M_int table has {len(rows_mw)} rows, earlier tables {len(last_mw)} (truncated?)")
            if j >= len(lines):
                raise fail(j - 1, "file ends inside an MW_int/M_int table (truncated)")
            last_mw, last_m = np.array(rows_mw).reshape(-1, 3), np.array(rows_m).reshape(-1, 3)
            i = j
            continue
        sm = _SCF_LINE.match(line)
        if sm:
            # the printed step number (with ALGO=All not every step is printed); I4 overflow: count
            n_scf = int(sm.group(2)) if sm.group(2).isdigit() else n_scf + 1
            i += 1
            continue
        fm = _F_LINE.match(line)
        if fm:
            try:
                f_ev, e0, de = (fortran_float(fm.group(k)) for k in (2, 3, 4))
                mag = np.array([fortran_float(t) for t in (fm.group(5) or "").split()] or [np.nan] * 3)
            except ValueError as exc:
                raise fail(i, f"malformed F= line ({exc})") from exc
            if last_mw is None:
                raise fail(i, "ionic step without any MW_int/M_int table: not a constrained-moment OSZICAR")
            # the end-of-step block: blank, E_p line, header, rows
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j >= len(lines):
                raise fail(i, "file ends after the F= line: end-of-step E_p / lambda*MW_perp block missing (truncated)")
            em = _EP_LINE.match(lines[j])
            if not em:
                raise fail(j, f"expected the end-of-step 'E_p = ... lambda = ...' line, got {lines[j]!r}")
            e_p, lam = fortran_float(em.group(1)), fortran_float(em.group(2))
            j += 1
            if j >= len(lines) or "lambda*MW_perp" not in lines[j]:
                raise fail(j, "end-of-step 'ion lambda*MW_perp' header missing (truncated)")
            j += 1
            rows: list[tuple[str, np.ndarray]] = []
            while j < len(lines):
                row = lines[j]
                if not _is_row(row):
                    break
                try:
                    rows.append(_parse_field_row(row))
                except ValueError as exc:
                    raise fail(j, f"malformed lambda*MW_perp row (cut off?): {row!r}") from exc
                j += 1
            n = last_mw.shape[0]
            fields = np.zeros((n, 3))
            in_block = np.zeros(n, dtype=bool)
            if constrained is not None:
                if constrained.size != n:
                    raise fail(i, f"M_CONSTR names {constrained.size} ions, the OSZICAR tables {n}")
                expected = np.flatnonzero(constrained)
                if len(rows) != expected.size:
                    raise fail(j - 1, f"lambda*MW_perp block has {len(rows)} rows, expected {expected.size} "
                                      "constrained ions (truncated block?)")
                for k, (idx, vec) in enumerate(rows):
                    ion = expected[k]
                    if idx.isdigit() and int(idx) - 1 != ion:
                        raise fail(j - len(rows) + k, f"row for ion {idx}, expected ion {ion + 1} "
                                                      "(M_CONSTR does not match this OSZICAR)")
                    fields[ion] = vec
                    in_block[ion] = True
            else:
                for k, (idx, vec) in enumerate(rows):
                    if not idx.isdigit():
                        raise fail(j - len(rows) + k, "ion index '***' (>999 ions): pass the constrained mask "
                                                      "(from M_CONSTR) to place rows by order")
                    ion = int(idx) - 1
                    if not 0 <= ion < n or in_block[ion]:
                        raise fail(j - len(rows) + k, f"bad or repeated ion index {idx}")
                    fields[ion] = vec
                    in_block[ion] = True
                if not rows:
                    raise fail(j, "empty lambda*MW_perp block (truncated)")
            if j >= len(lines) and not text.endswith("\n"):
                raise fail(j - 1, "file ends without a newline inside the lambda*MW_perp block (truncated)")
            step_index = int(fm.group(1)) if fm.group(1).isdigit() else len(steps) + 1
            steps.append(IonicStep(step_index, f_ev, e0, de, mag, last_mw, last_m, fields, in_block, e_p, lam, n_scf))
            n_scf = 0
            i = j
            continue
        i += 1
    if not steps:
        raise OszicarParseError(f"{name}: no completed ionic step (no 'F=' line): the run did not finish")
    return ConstrainedOszicar(steps, notes)


def penalty_identity(step: IonicStep) -> tuple[float, float]:
    """(printed E_p, Σ|P|²/λ). Equal for ``I_CONSTRAINED_M`` = 1, 2 (E_p = λ|MW⊥|², P = λ MW⊥)."""
    return step.e_p_ev, float(np.sum(step.fields**2) / step.lambda_)


def _half_unit_e12_5(x: np.ndarray | float) -> np.ndarray:
    """Half a unit in the 5th mantissa digit of E12.5 (value printed as 0.ddddd × 10^e)."""
    a = np.abs(np.asarray(x, dtype=float))
    e = np.floor(np.log10(np.where(a > 0, a, 1.0))) + 1
    return np.where(a > 0, 0.5e-5 * 10.0**e, 0.0)


def penalty_identity_tolerance(step: IonicStep, rel: float = 0.0) -> float:
    """Bound on |E_p − Σ|P|²/λ|: the printed precision (half a unit in the 5th digit of E_p and of
    every P component, E12.5), a round-off floor, plus ``rel``·E_p. Real VASP needs ``rel`` ≈ 2e-3:
    in the wiki's 4-ion example E_p = 3.6600e-8 while Σ|P|²/λ = 3.6650e-8 (1.4e-3; E_p and P are
    evidently not taken from the same density); the stand-in writes them consistently (``rel`` = 0)."""
    e_p, _ = penalty_identity(step)
    printed = float(_half_unit_e12_5(e_p)) + float(
        np.sum(2 * np.abs(step.fields) * _half_unit_e12_5(step.fields) + _half_unit_e12_5(step.fields) ** 2)
    ) / step.lambda_
    # round-off floor: when the moments sit on their targets, P is floating-point noise of size
    # ~ε·λ·|MW| and neither side is meaningful below N·λ·(4ε|MW|)² (FeRh sample: ~1e-35 both).
    floor = step.mw.shape[0] * step.lambda_ * (4 * np.finfo(float).eps * np.abs(step.mw).max()) ** 2
    return (printed + rel * abs(e_p)) * 1.0001 + floor


# ------------------------------------------------------------------------------------ vasprun
@dataclasses.dataclass
class VasprunResult:
    e0_ev: float
    e_free_ev: float
    forces_ev_per_a: np.ndarray
    stress_kbar: np.ndarray | None
    n_scf: int
    nelm: int
    converged_electronic: bool


def parse_vasprun(path: str | Path) -> VasprunResult:
    """Final energies (E0 = pymatgen's ``final_energy``, which repairs VASP's wrong ionic-step
    ``e_0_energy``; free energy ``e_fr_energy``), forces (eV/Å) and stress (kBar, VASP's sign) of
    the last ionic step."""
    import warnings

    from pymatgen.io.vasp.outputs import Vasprun

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vr = Vasprun(str(path), parse_dos=False, parse_eigen=False, parse_projected_eigen=False,
                         parse_potcar_file=False, exception_on_bad_xml=True)
    except Exception as exc:  # pymatgen raises several types for broken XML
        raise SLDError(f"{path}: cannot parse vasprun.xml ({type(exc).__name__}: {exc})") from exc
    last = vr.ionic_steps[-1]
    elec = last.get("electronic_steps") or []
    e0 = vr.final_energy  # e_0_energy with pymatgen's fix of the vasprun.xml sigma->0 bug (VASP forum t=16942)
    efr = last["e_fr_energy"]
    stress = last.get("stress")
    return VasprunResult(
        e0_ev=float(e0),
        e_free_ev=float(efr),
        forces_ev_per_a=np.asarray(last["forces"], dtype=float),
        stress_kbar=None if stress is None else np.asarray(stress, dtype=float),
        n_scf=len(elec),
        nelm=int(vr.parameters.get("NELM", 60)),
        converged_electronic=bool(vr.converged_electronic),
    )


def stress_kbar_to_ase_ev_per_a3(stress_kbar: np.ndarray) -> np.ndarray:
    """VASP kBar (positive = compressive, the cell wants to expand) → eV/Å³ with ASE's sign."""
    return -np.asarray(stress_kbar, dtype=float) * KBAR_TO_EV_PER_A3


# ------------------------------------------------------------------------------------ Evaluation
MOMENT_CONVENTIONS = ("state", "M_int", "MW")


def field_factor(i_constrained_m: int) -> float:
    """c in B_eff = c·P⊥: 2 for modes 1 and 2 (derived, reference §4.2), 1 for mode 4 (assumed)."""
    if i_constrained_m in (1, 2):
        return 2.0
    if i_constrained_m == 4:
        return 1.0
    raise SLDError(f"I_CONSTRAINED_M={i_constrained_m} is not supported (use 1, 2 or 4)")


def fields_from_step(
    step: IonicStep,
    spins: np.ndarray,
    moments: np.ndarray,
    i_constrained_m: int = 1,
    moment_convention: str = "state",
    saxis_rotation: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(fields (N,3) eV/μB for the LLG, μ used (N,)) from one parsed ionic step.

    fields = (|MW|/μ)·c·P⊥ on constrained magnetic sites, zero elsewhere; P⊥ ⟂ the spin direction.
    ``spins`` are the constraint directions in Cartesian; ``saxis_rotation`` maps printed vectors
    to Cartesian (None = default SAXIS).
    """
    if moment_convention not in MOMENT_CONVENTIONS:
        raise SLDError(f"moment_convention must be one of {MOMENT_CONVENTIONS}, got {moment_convention!r}")
    rot = np.eye(3) if saxis_rotation is None else saxis_rotation
    p = step.fields @ rot.T
    mw = step.mw @ rot.T
    norms = np.linalg.norm(spins, axis=1)
    unit = np.divide(spins, norms[:, None], out=np.zeros_like(spins, dtype=float), where=norms[:, None] > 0)
    p_perp = p - np.einsum("ij,ij->i", p, unit)[:, None] * unit
    mw_size = np.linalg.norm(mw, axis=1)
    if moment_convention == "state":
        mu = np.asarray(moments, dtype=float)
    elif moment_convention == "M_int":
        mu = np.linalg.norm(step.m_int, axis=1)
    else:
        mu = mw_size
    use = step.in_block & (norms > 0) & (mu > 0)
    fields = np.zeros_like(p)
    c = field_factor(i_constrained_m)
    fields[use] = (mw_size[use] / mu[use])[:, None] * c * p_perp[use]
    return fields, mu


def evaluation_from_run(
    run_dir: str | Path,
    state,
    m_constr: np.ndarray,
    i_constrained_m: int = 1,
    moment_convention: str = "state",
    extra_info: dict[str, Any] | None = None,
):
    """Build the :class:`~sld_workflows.evaluation.Evaluation` of a finished run in ``run_dir``.

    ``m_constr``: (N, 3) the M_CONSTR written for this run (defines which ions are constrained).
    Cross-checks OSZICAR E0 against vasprun.xml (printed precision) so that files of two different
    runs are never mixed.
    """
    from sld_workflows.evaluation import Evaluation

    run_dir = Path(run_dir)
    constrained = np.any(np.abs(np.asarray(m_constr)) >= 1e-5, axis=1)
    osz = parse_constrained_oszicar(run_dir / "OSZICAR", constrained=constrained, n_ions=state.n_sites)
    step = osz.final
    vr = parse_vasprun(run_dir / "vasprun.xml")
    if vr.forces_ev_per_a.shape != (state.n_sites, 3):
        raise SLDError(f"{run_dir}: vasprun.xml has {vr.forces_ev_per_a.shape[0]} ions, state has {state.n_sites}")
    # OSZICAR E0 is printed with 8 significant digits
    if abs(vr.e0_ev - step.e0_ev) > 1e-7 * abs(step.e0_ev) + 1e-8:
        raise SLDError(f"{run_dir}: OSZICAR E0={step.e0_ev} and vasprun.xml e_0_energy={vr.e0_ev} disagree "
                       "(files from different runs?)")
    spins = state.spins
    fields, mu = fields_from_step(step, spins, state.moments, i_constrained_m, moment_convention)
    magnetic_unconstrained = state.magnetic & ~step.in_block
    if np.any(magnetic_unconstrained):
        raise SLDError(f"{run_dir}: magnetic sites {np.flatnonzero(magnetic_unconstrained)[:10].tolist()} have no "
                       "constraining field in OSZICAR (M_CONSTR = 0 0 0?)")
    info = {
        "engine": "vasp",
        "run_dir": str(run_dir),
        "scf_iterations": int(vr.n_scf),
        "scf_iterations_oszicar": int(step.n_scf),
        "e_p_ev": step.e_p_ev,
        "e0_ev": vr.e0_ev,
        "lambda": step.lambda_,
        "i_constrained_m": int(i_constrained_m),
        "field_convention": f"fields = (|MW|/mu) * {field_factor(i_constrained_m):g} * P_perp, "
                            f"P = printed lambda*MW_perp, mu = {moment_convention}",
        "moment_convention": moment_convention,
        "mw_mub": np.linalg.norm(step.mw, axis=1).tolist(),
    }
    if osz.notes:
        info["oszicar_notes"] = osz.notes
    info.update(extra_info or {})
    stress = None if vr.stress_kbar is None else stress_kbar_to_ase_ev_per_a3(vr.stress_kbar)
    return Evaluation(
        energy_ev=vr.e0_ev - step.e_p_ev,
        forces_ev_per_a=vr.forces_ev_per_a,
        fields_ev_per_mub=fields,
        stress_ev_per_a3=stress,
        moments_mub=np.linalg.norm(step.m_int, axis=1),
        info=info,
    )
