"""The VASP constrained-moment conventions, written once for the engine (parsers, input set,
handlers) and the ``sld-fake-vasp`` stand-in (DESIGN.md §3, ``docs/vasp_engine.md``).

- ``M_CONSTR``: an ion is constrained when any component satisfies |m| ≥ 1e-5 (VASP's test);
  ions with ``M_CONSTR = 0 0 0`` are left out of the ``lambda*MW_perp`` block.
- Constraining field: VASP prints ``P = LAMBDA·MW⊥``; the field conjugate to the smoothed moment
  MW is ``B_eff = c·P⊥`` with c = 2 for ``I_CONSTRAINED_M`` = 1, 2 (derived) and 1 for 4 (assumed);
  the field in the LLG of a site of moment μ is ``B = (|MW|/μ)·c·P⊥``; the stand-in inverts it,
  ``P = μ·B⊥/(c·|MW|)``.
- Penalty: ``E_p = Σ|P|²/λ`` for modes 1, 2 (E_p = λ|MW⊥|²); printed energies include it, so
  ``E_DFT = E0 − E_p``.
- Stress: VASP prints kBar with the opposite sign to ASE's (positive = compressive).
- Sign guard: the printed P = λ·MW⊥ must point along MW⊥ = MW − ê(ê·MW) computed from the printed
  MW table and the constraint direction ê (mode 4: P = λ(M̂ − ê), the same direction to first order);
  :func:`field_direction_cosines` gives the cosines where MW⊥ is resolvable at MW's printed precision.

Light on purpose (numpy only): the stand-in imports it at every start.
"""

from __future__ import annotations

import numpy as np

from sld_workflows.errors import SLDError
from sld_workflows.units import EV_PER_A3_TO_KBAR, KBAR_TO_EV_PER_A3

#: VASP's own test for a constrained ion: any |M_CONSTR component| ≥ this.
M_CONSTR_ZERO_TOL = 1e-5
#: ``I_CONSTRAINED_M`` modes the engine and the stand-in support.
CONSTRAINED_MODES = (1, 2, 4)
#: Which μ divides |MW| in the LLG field: the state's moment, |M_int| of the sphere, or |MW|.
MOMENT_CONVENTIONS = ("state", "M_int", "MW")
#: VASP's defaults for tags an INCAR may leave out (VASP wiki: NELM, ISTART without WAVECAR, ICHARG).
VASP_DEFAULTS = {"NELM": 60, "ISTART": 0, "ICHARG": 2}


#: MW_int is printed F7.3: each component is within half a unit of the third decimal.
MW_PRINTED_HALF_UNIT = 5e-4
#: |MW⊥| from which the guard trusts its direction: 4× the largest rounding error of the vector
#: (√3 × half a unit), so rounding turns it by at most ~14° and a correct field has cos > 0.97.
MW_PERP_RESOLVABLE = 4 * np.sqrt(3) * MW_PRINTED_HALF_UNIT
#: A printed field whose cosine with MW⊥ is below this is not the λ·MW⊥ this engine assumes.
FIELD_DIRECTION_MIN_COS = 0.5


def field_direction_cosines(printed_fields: np.ndarray, mw: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """cos(P, MW⊥) for every ion whose MW⊥ is resolvable (|MW⊥| > :data:`MW_PERP_RESOLVABLE`) and whose
    printed field is non-zero; NaN for the others (nothing to check at printed precision)."""
    p = np.asarray(printed_fields, dtype=float)
    mw = np.asarray(mw, dtype=float)
    d = np.asarray(directions, dtype=float)
    norms = np.linalg.norm(d, axis=1)
    e = np.divide(d, norms[:, None], out=np.zeros_like(d), where=norms[:, None] > 0)
    mw_perp = mw - e * np.sum(e * mw, axis=1)[:, None]
    perp_size, p_size = np.linalg.norm(mw_perp, axis=1), np.linalg.norm(p, axis=1)
    ok = (perp_size > MW_PERP_RESOLVABLE) & (p_size > 0) & (norms > 0)
    cos = np.full(len(p), np.nan)
    cos[ok] = np.sum(p[ok] * mw_perp[ok], axis=1) / (p_size[ok] * perp_size[ok])
    return cos


def constrained_mask(m_constr: np.ndarray) -> np.ndarray:
    """(N,) bool from (N, 3) ``M_CONSTR``: the ions VASP constrains (and lists in the field block)."""
    return np.any(np.abs(np.asarray(m_constr, dtype=float)) >= M_CONSTR_ZERO_TOL, axis=1)


def field_factor(i_constrained_m: int) -> float:
    """c in B_eff = c·P⊥: 2 for modes 1 and 2 (derived, reference §4.2), 1 for mode 4 (assumed)."""
    if i_constrained_m in (1, 2):
        return 2.0
    if i_constrained_m == 4:
        return 1.0
    raise SLDError(f"I_CONSTRAINED_M={i_constrained_m} is not supported (use 1, 2 or 4)")


def llg_fields_ev_per_mub(p_perp: np.ndarray, mw_mub: np.ndarray, mu_mub: np.ndarray, c: float) -> np.ndarray:
    """B = (|MW|/μ)·c·P⊥ per row (eV/μB): the printed field turned into the field of the LLG."""
    return (mw_mub / mu_mub)[:, None] * c * p_perp


def printed_field_ev_per_mub(field_ev_per_mub: np.ndarray, mw_mub: float, mu_mub: float, c: float) -> np.ndarray:
    """P = μ·B/(c·|MW|): the ``lambda*MW_perp`` row VASP would print for the LLG field B (the inverse
    of :func:`llg_fields_ev_per_mub`; B is already perpendicular to the spin)."""
    return mu_mub * np.asarray(field_ev_per_mub) / (c * mw_mub)


def penalty_energy_ev(printed_fields: np.ndarray, lambda_: float) -> float:
    """Σ|P|²/λ: the penalty energy E_p of modes 1, 2 from the printed fields P = λ·MW⊥."""
    return float(np.sum(printed_fields**2) / lambda_)


def dft_energy_ev(e0_ev: float, e_p_ev: float) -> float:
    """E_DFT = E0 − E_p: VASP's printed energies include the penalty."""
    return e0_ev - e_p_ev


def printed_e0_ev(e_dft_ev: float, e_p_ev: float) -> float:
    """E0 = E_DFT + E_p: the energy VASP prints for a penalty E_p (inverse of :func:`dft_energy_ev`)."""
    return e_dft_ev + e_p_ev


def stress_kbar_to_ase_ev_per_a3(stress_kbar: np.ndarray) -> np.ndarray:
    """VASP kBar (positive = compressive, the cell wants to expand) → eV/Å³ with ASE's sign."""
    return -np.asarray(stress_kbar, dtype=float) * KBAR_TO_EV_PER_A3


def ase_ev_per_a3_to_stress_kbar(stress_ev_per_a3: np.ndarray) -> np.ndarray:
    """eV/Å³ with ASE's sign → kBar as VASP prints it (inverse of :func:`stress_kbar_to_ase_ev_per_a3`)."""
    return -np.asarray(stress_ev_per_a3) * EV_PER_A3_TO_KBAR
