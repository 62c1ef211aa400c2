"""Our own constrained-OSZICAR parser, a line reader with one function per block.

pymatgen's ``Oszicar`` misparses constrained runs (every ``E_p``/table line becomes a bogus ionic
step, ``final_energy`` raises ``KeyError: 'E0'``, ``mag`` keeps only x), and nothing upstream reads
the ``lambda*MW_perp`` block, so this one is written here, in pymatgen's style: a cursor over the
lines and a reader per block (``MW_int/M_int`` table, electronic-step line, ``F=`` line, ``E_p`` line,
field block). It reads the fixed-width Fortran layouts of VASP 5.4.4–6.6 (``(I3,3F7.3,F9.3,2F7.3)``
MW/M rows, ``(I3,A2,E12.5,A2,E12.5,A2,E12.5)`` field rows), ``***`` ion indices (≥ 1000 ions),
mantissas without a leading zero (``-.36715064E+02``) and exponents printed without ``E``
(``0.12345-100``). A file cut off mid-block raises :class:`OszicarParseError`; it never returns a
partial number.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.engines.vasp.conventions import dft_energy_ev, penalty_energy_ev
from sld_workflows.errors import SLDError


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
        return dft_energy_ev(self.e0_ev, self.e_p_ev)


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


class _Lines:
    """The file as lines and a cursor ``i``, pymatgen-style: each block reader starts at its first
    line and leaves the cursor on the first line after the block. Errors name the 1-based line."""

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.lines = text.splitlines()
        self.i = 0

    @property
    def at_end(self) -> bool:
        return self.i >= len(self.lines)

    @property
    def line(self) -> str:
        return self.lines[self.i]

    def fail(self, lineno: int, reason: str) -> OszicarParseError:
        return OszicarParseError(f"{self.name}, line {lineno + 1}: {reason}")

    def rows(self, parse, what: str) -> list[tuple[int, Any]]:
        """(line index, ``parse(line)``) of the table rows from the cursor on (``I3`` index first)."""
        out = []
        while not self.at_end and _is_row(self.line):
            try:
                out.append((self.i, parse(self.line)))
            except ValueError as exc:
                raise self.fail(self.i, what.format(exc=exc, row=self.line)) from exc
            self.i += 1
        return out


def _read_source(source: str | Path) -> tuple[str, str]:
    """(name for messages, text) of a path or of the OSZICAR text itself."""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        try:
            return str(source), Path(source).read_text()
        except OSError as exc:
            raise OszicarParseError(f"{source}: cannot read ({exc})") from exc
    return "OSZICAR", source


def _read_mw_table(r: _Lines, n_ions: int | None, previous: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``ion MW_int M_int`` table of one SCF step: (MW (N, 3), M_int (N, 3)) in μB."""
    header = r.i
    r.i += 1
    rows = r.rows(_parse_mw_row, "malformed MW_int/M_int row ({exc}): {row!r}")
    if n_ions is not None and len(rows) != n_ions:
        raise r.fail(header, f"MW_int/M_int table has {len(rows)} rows, expected {n_ions} ions (truncated?)")
    if n_ions is None and previous is not None and len(rows) != len(previous):
        raise r.fail(header, f"MW_int/M_int table has {len(rows)} rows, earlier tables {len(previous)} (truncated?)")
    if r.at_end:
        raise r.fail(r.i - 1, "file ends inside an MW_int/M_int table (truncated)")
    mw = np.array([row[1] for _, row in rows]).reshape(-1, 3)
    m_int = np.array([row[2] for _, row in rows]).reshape(-1, 3)
    return mw, m_int


def _read_f_line(r: _Lines, fm: re.Match) -> tuple[float, float, float, np.ndarray]:
    """``N F= ... E0= ... d E = ... mag= ...``: (F, E0, dE in eV, mag (3,) μB; NaN if not printed)."""
    try:
        f_ev, e0, de = (fortran_float(fm.group(k)) for k in (2, 3, 4))
        mag = np.array([fortran_float(t) for t in (fm.group(5) or "").split()] or [np.nan] * 3)
    except ValueError as exc:
        raise r.fail(r.i, f"malformed F= line ({exc})") from exc
    r.i += 1
    return f_ev, e0, de, mag


def _read_penalty_line(r: _Lines, f_line: int) -> tuple[float, float]:
    """The end-of-step ``E_p = ... lambda = ...`` line after the ``F=`` line (blank lines skipped)."""
    while not r.at_end and not r.line.strip():
        r.i += 1
    if r.at_end:
        raise r.fail(f_line, "file ends after the F= line: end-of-step E_p / lambda*MW_perp block missing (truncated)")
    em = _EP_LINE.match(r.line)
    if not em:
        raise r.fail(r.i, f"expected the end-of-step 'E_p = ... lambda = ...' line, got {r.line!r}")
    try:
        e_p, lam = fortran_float(em.group(1)), fortran_float(em.group(2))
    except ValueError as exc:
        raise r.fail(r.i, f"malformed E_p / lambda line (cut off? {exc})") from exc
    r.i += 1
    return e_p, lam


def _place_rows_by_mask(r: _Lines, rows: list, constrained: np.ndarray, n: int, f_line: int) -> list[int]:
    """Ion of each field row from the ``M_CONSTR`` mask: the block lists exactly the constrained ions,
    in order (so ``***`` rows are placed too, and a block cut at a row boundary is detected)."""
    if constrained.size != n:
        raise r.fail(f_line, f"M_CONSTR names {constrained.size} ions, the OSZICAR tables {n}")
    expected = np.flatnonzero(constrained)
    if len(rows) != expected.size:
        raise r.fail(r.i - 1, f"lambda*MW_perp block has {len(rows)} rows, expected {expected.size} "
                              "constrained ions (truncated block?)")
    for (lineno, (idx, _)), ion in zip(rows, expected, strict=True):
        if idx.isdigit() and int(idx) - 1 != ion:
            raise r.fail(lineno, f"row for ion {idx}, expected ion {ion + 1} (M_CONSTR does not match this OSZICAR)")
    return [int(ion) for ion in expected]


def _place_rows_by_index(r: _Lines, rows: list, n: int) -> list[int]:
    """Ion of each field row from its printed index (impossible for ``***``)."""
    ions: list[int] = []
    for lineno, (idx, _) in rows:
        if not idx.isdigit():
            raise r.fail(lineno, "ion index '***' (>999 ions): pass the constrained mask (from M_CONSTR) to place "
                                 "rows by order")
        ion = int(idx) - 1
        if not 0 <= ion < n or ion in ions:
            raise r.fail(lineno, f"bad or repeated ion index {idx}")
        ions.append(ion)
    if not rows:
        raise r.fail(r.i, "empty lambda*MW_perp block (truncated)")
    return ions


def _read_field_block(r: _Lines, constrained: np.ndarray | None, n: int, f_line: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``ion lambda*MW_perp`` header and rows: (fields (n, 3) eV/μB, in_block (n,) bool)."""
    if r.at_end or "lambda*MW_perp" not in r.line:
        raise r.fail(r.i, "end-of-step 'ion lambda*MW_perp' header missing (truncated)")
    r.i += 1
    rows = r.rows(_parse_field_row, "malformed lambda*MW_perp row (cut off?): {row!r}")
    if constrained is not None:
        ions = _place_rows_by_mask(r, rows, constrained, n, f_line)
    else:
        ions = _place_rows_by_index(r, rows, n)
    if r.at_end and not r.text.endswith("\n"):
        raise r.fail(r.i - 1, "file ends without a newline inside the lambda*MW_perp block (truncated)")
    fields = np.zeros((n, 3))
    in_block = np.zeros(n, dtype=bool)
    for ion, (_, (_, vec)) in zip(ions, rows, strict=True):
        fields[ion] = vec
        in_block[ion] = True
    return fields, in_block


def parse_constrained_oszicar(
    source: str | Path,
    constrained: np.ndarray | None = None,
    n_ions: int | None = None,
) -> ConstrainedOszicar:
    """Parse a constrained OSZICAR (path or text).

    ``constrained``: (N,) bool mask of ions with a non-zero ``M_CONSTR`` (see
    :func:`~sld_workflows.engines.vasp.conventions.constrained_mask`). With it, the end-of-step block
    must list exactly those ions (rows for ``M_CONSTR = 0 0 0`` ions are omitted by VASP), ``***``
    indices are mapped by order, and a block cut short is detected; without it, only numeric indices
    can be placed and a block cut exactly at a row boundary cannot be told from a complete one.
    Raises :class:`OszicarParseError` for any incomplete or inconsistent block.

    Blocks, one reader each: ``#`` notes, the per-SCF-step ``MW_int/M_int`` table, electronic-step
    lines (``DAV:`` ...), and the ionic step: ``F=`` line, ``E_p``/``lambda`` line, field block.
    """
    name, text = _read_source(source)
    r = _Lines(text, name)
    if constrained is not None:
        constrained = np.asarray(constrained, dtype=bool)
        n_ions = constrained.size if n_ions is None else n_ions
    steps: list[IonicStep] = []
    notes: list[str] = []
    table: tuple[np.ndarray, np.ndarray] | None = None
    n_scf = 0
    while not r.at_end:
        line = r.line
        scf, f_match = _SCF_LINE.match(line), _F_LINE.match(line)
        if line.lstrip().startswith("#"):
            notes.append(line.strip())
            r.i += 1
        elif "MW_int" in line and "M_int" in line:
            table = _read_mw_table(r, n_ions, None if table is None else table[0])
        elif scf:
            # the printed step number (with ALGO=All not every step is printed); I4 overflow: count
            n_scf = int(scf.group(2)) if scf.group(2).isdigit() else n_scf + 1
            r.i += 1
        elif f_match:
            f_line = r.i
            f_ev, e0, de, mag = _read_f_line(r, f_match)
            if table is None:
                raise r.fail(f_line, "ionic step without any MW_int/M_int table: not a constrained-moment OSZICAR")
            e_p, lam = _read_penalty_line(r, f_line)
            fields, in_block = _read_field_block(r, constrained, table[0].shape[0], f_line)
            index = int(f_match.group(1)) if f_match.group(1).isdigit() else len(steps) + 1
            steps.append(IonicStep(index, f_ev, e0, de, mag, *table, fields, in_block, e_p, lam, n_scf))
            n_scf = 0
        else:
            r.i += 1
    if not steps:
        raise OszicarParseError(f"{name}: no completed ionic step (no 'F=' line): the run did not finish")
    return ConstrainedOszicar(steps, notes)


def penalty_identity(step: IonicStep) -> tuple[float, float]:
    """(printed E_p, Σ|P|²/λ). Equal for ``I_CONSTRAINED_M`` = 1, 2 (E_p = λ|MW⊥|², P = λ MW⊥)."""
    return step.e_p_ev, penalty_energy_ev(step.fields, step.lambda_)


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
