"""Writers of VASP output files in VASP's own fixed-width layouts (for ``sld-fake-vasp``).

Layouts follow the real VASP 6.6.0 files in ``tests/data/vasp/`` and the Fortran formats of VASP's
write statements: the OSZICAR ``F=`` line
``(I4,' F= ',E14.8,' E0= ',E14.8,'  d E =',E12.6,'  mag=',3F11.4)``, per-SCF-step constraint blocks
``(/A7,E12.5,A11,E10.3)``, ``(A7,E12.5)`` ×2, MW rows ``(I3,3F7.3,F9.3,2F7.3)``, and the
end-of-step field rows ``(I3,A2,E12.5,A2,E12.5,A2,E12.5)``. Fortran E-format quirks are emulated:
the leading ``0`` is dropped when the field is too narrow (``-.12480456E+03``), the ``E`` is
dropped for 3-digit exponents (``0.12345-100``) and ``I3`` overflows to ``***``.
"""

from __future__ import annotations

import math

import numpy as np


def _e_parts(x: float, digits: int) -> tuple[str, str, int]:
    """(sign, mantissa "0.ddd", exponent) of x in Fortran ``Ew.d`` (gfortran/ifort style)."""
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return "", "0." + "0" * digits, 0
    exp = math.floor(math.log10(abs(x))) + 1
    m = round(abs(x) / 10.0**exp, digits)
    if m >= 1.0:  # rounding carried (0.99999 -> 1.0000)
        m /= 10.0
        exp += 1
    return ("-" if x < 0 else ""), f"{m:.{digits}f}", exp


def fortran_e(x: float, width: int, digits: int) -> str:
    """Fortran ``Ew.d`` (gfortran/ifort style mantissa 0.ddd)."""
    sign, mant, exp = _e_parts(x, digits)
    esign = "+" if exp >= 0 else "-"
    exp_str = f"E{esign}{abs(exp):02d}" if abs(exp) < 100 else f"{esign}{abs(exp):03d}"
    s = f"{sign}{mant}{exp_str}"
    if len(s) > width:
        s = f"{sign}{mant[1:]}{exp_str}"  # drop the optional leading zero
    if len(s) > width:
        return "*" * width
    return s.rjust(width)


def fortran_e_value(x: float, digits: int) -> float:
    """The number a reader gets back from ``fortran_e(x, w, digits)``: x rounded to ``digits``
    significant digits (the decimal mantissa·10^exp, correctly rounded to binary). The stand-in
    computes what it prints from this, never by reading its own text back."""
    sign, mant, exp = _e_parts(x, digits)
    return float(f"{sign}{mant}E{exp}")


def fortran_f(x: float, width: int, decimals: int) -> str:
    s = f"{float(x):{width}.{decimals}f}"
    if s.strip() in (f"-{0:.{decimals}f}",):
        s = s  # gfortran prints -0.000 for small negatives, as VASP does
    return s if len(s) <= width else "*" * width


def fortran_i(n: int, width: int) -> str:
    s = f"{int(n):{width}d}"
    return s if len(s) <= width else "*" * width


def mw_row(ion: int, mw: np.ndarray, m_int: np.ndarray) -> str:
    """``(I3,3F7.3,F9.3,2F7.3)``."""
    return (fortran_i(ion, 3) + "".join(fortran_f(v, 7, 3) for v in mw) + fortran_f(m_int[0], 9, 3)
            + fortran_f(m_int[1], 7, 3) + fortran_f(m_int[2], 7, 3))


def field_row(ion: int, p: np.ndarray, digits: int = 5) -> str:
    """``(I3,A2,E12.5,A2,E12.5,A2,E12.5)``; ``digits`` > 5 widens the E field (stand-in option)."""
    w = digits + 7
    return fortran_i(ion, 3) + "".join("  " + fortran_e(v, w, digits) for v in p)


def scf_constraint_block(e_p: float, lam: float, lvp: float, dbl: float, mw: np.ndarray, m_int: np.ndarray) -> str:
    lines = ["", " E_p = " + fortran_e(e_p, 12, 5) + "  lambda = " + fortran_e(lam, 10, 3),
             "<lVp>=" + " " + fortran_e(lvp, 12, 5), " DBL = " + fortran_e(dbl, 12, 5),
             " ion        MW_int                 M_int"]
    lines += [mw_row(i + 1, mw[i], m_int[i]) for i in range(len(mw))]
    return "\n".join(lines) + "\n"


def dav_line(n: int, energy: float, de: float, deps: float, ncg: int, rms: float) -> str:
    return ("DAV:" + fortran_i(n, 4) + "   " + fortran_e(energy, 20, 12) + "   " + fortran_e(de, 12, 5) + "   "
            + fortran_e(deps, 12, 5) + fortran_i(ncg, 6) + "   " + fortran_e(rms, 9, 3) + "\n")


def f_line(step: int, f: float, e0: float, de: float, mag: np.ndarray) -> str:
    return (fortran_i(step, 4) + " F= " + fortran_e(f, 14, 8) + " E0= " + fortran_e(e0, 14, 8) + "  d E ="
            + fortran_e(de, 12, 6) + "  mag=" + "".join(fortran_f(m, 11, 4) for m in mag) + "\n")


def end_of_step_block(e_p: float, lam: float, rows: list[tuple[int, np.ndarray]], digits: int = 5) -> str:
    out = ["", " E_p = " + fortran_e(e_p, 12, 5) + "  lambda = " + fortran_e(lam, 10, 3),
           " ion             lambda*MW_perp"]
    out += [field_row(ion, p, digits) for ion, p in rows]
    return "\n".join(out) + "\n"
