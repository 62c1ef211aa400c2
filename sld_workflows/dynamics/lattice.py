"""Lattice integrator pieces: velocity-Verlet kicks and drifts, the exact Ornstein-Uhlenbeck
("O") step of BAOAB Langevin (Leimkuhler & Matthews 2013), and stochastic cell rescaling
(Bernetti & Bussi, JCP 153, 114107 (2020); anisotropic form: Del Tatto et al., Appl. Sci. 12, 1139 (2022)).

Units: positions Å, velocities Å/fs, forces eV/Å, masses amu, stress eV/Å³ (ASE sign).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from sld_workflows.units import EV_PER_A_AMU_TO_A_PER_FS2, K_B_EV_PER_K

CELL_DOFS = ("isotropic", "orthorhombic", "full")


def kinetic_energy_ev(velocities_a_per_fs: np.ndarray, masses_amu: np.ndarray) -> float:
    """½ Σ m v² in eV."""
    return float(0.5 * np.sum(masses_amu[:, None] * velocities_a_per_fs**2) / EV_PER_A_AMU_TO_A_PER_FS2)


def kinetic_temperature_k(velocities_a_per_fs: np.ndarray, masses_amu: np.ndarray) -> float:
    """2 KE / (3 N k_B): 3N degrees of freedom (Langevin does not conserve momentum)."""
    return 2.0 * kinetic_energy_ev(velocities_a_per_fs, masses_amu) / (3 * len(masses_amu) * K_B_EV_PER_K)


def kick(velocities: np.ndarray, forces_ev_per_a: np.ndarray, masses_amu: np.ndarray, dt_fs: float) -> np.ndarray:
    """v + Δt F/m."""
    return velocities + (dt_fs * EV_PER_A_AMU_TO_A_PER_FS2) * forces_ev_per_a / masses_amu[:, None]


def drift(positions: np.ndarray, velocities: np.ndarray, dt_fs: float) -> np.ndarray:
    """r + Δt v."""
    return positions + dt_fs * velocities


def ornstein_uhlenbeck(
    velocities: np.ndarray,
    masses_amu: np.ndarray,
    temperature_k: float,
    friction_per_fs: float,
    dt_fs: float,
    xi: np.ndarray,
) -> np.ndarray:
    """Exact OU update v ← c v + √((1−c²) k_B T/m) ξ with c = exp(−γΔt) (BAOAB's O step)."""
    c = np.exp(-friction_per_fs * dt_fs)
    sigma = np.sqrt((1.0 - c * c) * K_B_EV_PER_K * temperature_k * EV_PER_A_AMU_TO_A_PER_FS2 / masses_amu)
    return c * velocities + sigma[:, None] * xi


def kinetic_pressure_tensor_ev_per_a3(velocities: np.ndarray, masses_amu: np.ndarray, volume_a3: float) -> np.ndarray:
    """Σ m v⊗v / V in eV/Å³."""
    mv = masses_amu[:, None] * velocities
    return (mv.T @ velocities) / (EV_PER_A_AMU_TO_A_PER_FS2 * volume_a3)


def _symmetric_noise(xi6: np.ndarray) -> np.ndarray:
    """Symmetric Gaussian matrix with diagonal variance 1 and off-diagonal variance ½ (isotropic
    in the space of symmetric matrices)."""
    m = np.diag(xi6[:3])
    off = xi6[3:] / np.sqrt(2.0)
    m[0, 1] = m[1, 0] = off[0]
    m[0, 2] = m[2, 0] = off[1]
    m[1, 2] = m[2, 1] = off[2]
    return m


def cell_rescaling_strain(
    pressure_tensor_ev_per_a3: np.ndarray,
    target_pressure_ev_per_a3: float,
    volume_a3: float,
    temperature_k: float,
    compressibility_a3_per_ev: float,
    tau_p_fs: float,
    dt_fs: float,
    cell_dof: str,
    xi6: np.ndarray,
) -> np.ndarray:
    """One Euler step of stochastic cell rescaling; returns the symmetric strain ε (cell → h·exp(ε)).

    Volume (Bernetti & Bussi 2020): d ln V = (β/τ)(P − P₀ + k_BT/V) dt + √(2 k_BT β/(V τ)) dW.
    ``pressure_tensor_ev_per_a3`` is the internal pressure tensor (kinetic − stress), P its trace/3.
    ``cell_dof`` limits the deformation: ``isotropic`` (volume only), ``orthorhombic`` (diagonal
    strain) or ``full`` (symmetric strain, no rotation). The anisotropic forms use
    dε_ab = (β/3τ)(P_ab − (P₀ − k_BT/V) δ_ab) dt + √(2 k_BT β dt/(3Vτ)) N_ab, whose trace obeys the
    volume equation above exactly (drift and variance), so volume fluctuations are those of NpT to
    first order in Δt/τ while the shape relaxes towards an isotropic stress.
    """
    if cell_dof not in CELL_DOFS:
        raise ValueError(f"cell_dof must be one of {CELL_DOFS}, got {cell_dof!r}")
    kt = K_B_EV_PER_K * temperature_k
    beta_over_tau = compressibility_a3_per_ev / tau_p_fs
    if cell_dof == "isotropic":
        p = np.trace(pressure_tensor_ev_per_a3) / 3.0
        d_ln_v = beta_over_tau * (p - target_pressure_ev_per_a3 + kt / volume_a3) * dt_fs + np.sqrt(
            2.0 * kt * beta_over_tau * dt_fs / volume_a3
        ) * xi6[0]
        return (d_ln_v / 3.0) * np.eye(3)
    drive = 0.5 * (pressure_tensor_ev_per_a3 + pressure_tensor_ev_per_a3.T)
    drive = drive - (target_pressure_ev_per_a3 - kt / volume_a3) * np.eye(3)
    noise = _symmetric_noise(xi6)
    if cell_dof == "orthorhombic":
        drive = np.diag(np.diag(drive))
        noise = np.diag(np.diag(noise))
    return (beta_over_tau / 3.0) * drive * dt_fs + np.sqrt(2.0 * kt * beta_over_tau * dt_fs / (3.0 * volume_a3)) * noise


def apply_strain(
    positions: np.ndarray, cell: np.ndarray, velocities: np.ndarray, strain: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deform by M = exp(ε): rows r → r Mᵀ, cell rows h → h Mᵀ, velocities v → v M⁻ᵀ."""
    m = expm(strain)
    return positions @ m.T, cell @ m.T, velocities @ np.linalg.inv(m).T
