"""Stochastic Landau-Lifshitz-Gilbert dynamics with the SIB scheme (Mentink et al., JPCM 22, 176001 (2010)).

Equation (Gilbert form written as a rotation, fields in eV/μB, time in fs)::

    ds/dt = ω × s,   ω = γ' [(B + b) + α s × (B + b)],   γ' = γ/(1+α²),   γ = g/ħ

with white noise ⟨b_a(t) b_b(t')⟩ = 2D δ_ab δ(t−t') and, for *this* form, D = α k_B T/(γ μ)
(fluctuation-dissipation; the (1+α²) of the pure Landau-Lifshitz form does not belong here).
Over one step the noise enters as ΔW = √(2DΔt) ξ, drawn once and used in predictor and corrector.

All functions act on arrays of shape (N, 3); a zero spin (non-magnetic site) stays zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sld_workflows.units import K_B_EV_PER_K, gyromagnetic_ratio_rad_per_fs_per_ev_per_mub

if TYPE_CHECKING:
    from sld_workflows.evaluation import Evaluation
    from sld_workflows.state import SLDState


def cayley_rotate(a_rad: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Cay(A)s = [(1 − |A|²/4)s + A×s + ½(A·s)A] / (1 + |A|²/4).

    The implicit-midpoint solution of s' = s + A × (s + s')/2: an exact rotation about Â by
    2·atan(|A|/2), so |s'| = |s| to round-off.
    """
    a2 = np.einsum("ij,ij->i", a_rad, a_rad)[:, None]
    a_dot_s = np.einsum("ij,ij->i", a_rad, s)[:, None]
    return ((1.0 - 0.25 * a2) * s + np.cross(a_rad, s) + 0.5 * a_dot_s * a_rad) / (1.0 + 0.25 * a2)


def noise_increment_ev_fs_per_mub(
    xi: np.ndarray,
    moments_mub: np.ndarray,
    alpha: float,
    temperature_k: float,
    dt_fs: float,
    g_factor: float,
) -> np.ndarray:
    """ΔW = √(2DΔt) ξ with D = α k_B T/(γ μ), in (eV/μB)·fs; zero on non-magnetic sites.

    ``xi`` are standard normal deviates, shape (N, 3).
    """
    gamma = gyromagnetic_ratio_rad_per_fs_per_ev_per_mub(g_factor)
    if alpha == 0.0 or temperature_k == 0.0:
        return np.zeros_like(xi)
    safe_mu = np.where(moments_mub > 0, moments_mub, 1.0)
    d = alpha * K_B_EV_PER_K * temperature_k / (gamma * safe_mu)
    return np.where((moments_mub > 0)[:, None], np.sqrt(2.0 * d * dt_fs)[:, None] * xi, 0.0)


def rotation_vector_rad(
    x: np.ndarray,
    field_ev_per_mub: np.ndarray,
    dw: np.ndarray,
    alpha: float,
    dt_fs: float,
    g_factor: float,
) -> np.ndarray:
    """A(x) = γ' [(B + α x×B)Δt + (ΔW + α x×ΔW)]; ``x`` is the spin used in the damping products."""
    gamma_p = gyromagnetic_ratio_rad_per_fs_per_ev_per_mub(g_factor) / (1.0 + alpha * alpha)
    h = field_ev_per_mub * dt_fs + dw
    if alpha == 0.0:
        return gamma_p * h
    return gamma_p * (h + alpha * np.cross(x, h))


def sib_predict(
    spins: np.ndarray,
    field_ev_per_mub: np.ndarray,
    dw: np.ndarray,
    alpha: float,
    dt_fs: float,
    g_factor: float,
) -> np.ndarray:
    """SIB predictor: s̃ = Cay(A(sₙ)) sₙ; returns the midpoint s̄ = (sₙ + s̃)/2, *not* renormalised."""
    s_tilde = cayley_rotate(rotation_vector_rad(spins, field_ev_per_mub, dw, alpha, dt_fs, g_factor), spins)
    return 0.5 * (spins + s_tilde)


def sib_correct(
    spins: np.ndarray,
    spins_mid: np.ndarray,
    field_mid_ev_per_mub: np.ndarray,
    dw: np.ndarray,
    alpha: float,
    dt_fs: float,
    g_factor: float,
) -> np.ndarray:
    """SIB corrector: sₙ₊₁ = Cay(A(s̄; B̄)) sₙ with the same ΔW as the predictor.

    Full SIB passes B̄ = B(s̄) (a second engine call). The one-call variant passes the step's
    starting field B(sₙ) as ``field_mid_ev_per_mub`` while damping and noise still use s̄.
    """
    a = rotation_vector_rad(spins_mid, field_mid_ev_per_mub, dw, alpha, dt_fs, g_factor)
    return cayley_rotate(a, spins)


def spin_temperature_k(spins: np.ndarray, fields_ev_per_mub: np.ndarray, moments_mub: np.ndarray) -> float:
    """Nowak's spin temperature T_s = Σ|μ s×B|² / (2 k_B Σ μ s·B) (Nowak, Ann. Rev. Comp. Phys. 9, 2001).

    Needs the full field (the parallel part enters the denominator); with perpendicular-only fields
    the estimator is undefined and NaN is returned.
    """
    mb = moments_mub[:, None] * fields_ev_per_mub
    num = np.sum(np.cross(spins, mb) ** 2)
    den = 2.0 * K_B_EV_PER_K * np.sum(spins * mb)
    return float(num / den) if den > 0 else float("nan")


def state_spin_temperature_k(state: SLDState, evaluation: Evaluation) -> float:
    """Nowak's spin temperature (K) of ``state`` from its engine ``evaluation``: the one estimator the
    run output and the order parameters report, with the full field B⊥ + B∥ ŝ.

    Undefined — NaN — when the engine does not report the parallel field component (the estimator's
    denominator needs it), or when Σ μ s·B ≤ 0 (no magnetic site, or spins against their field).
    Writers that cannot store NaN (JSON) store ``null`` for it.
    """
    if evaluation.field_parallel_ev_per_mub is None:
        return float("nan")
    full = evaluation.fields_ev_per_mub + evaluation.field_parallel_ev_per_mub[:, None] * state.spins
    return spin_temperature_k(state.spins, full, state.moments)
