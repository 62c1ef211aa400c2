"""Physical constants and unit conversions (CODATA 2018).

Internal units: Å, fs, eV, μB, K, amu. Magnetic fields are energies per Bohr magneton (eV/μB),
so that the Zeeman energy of a moment μ (in μB) along unit spin s is ``E = -μ s·B``.
"""

from __future__ import annotations

#: Bohr magneton in eV/T.
MU_B_EV_PER_T = 5.7883818060e-5
#: Reduced Planck constant in eV·fs.
HBAR_EV_FS = 0.6582119569
#: Boltzmann constant in eV/K.
K_B_EV_PER_K = 8.617333262e-5
#: Free-electron g factor.
G_ELECTRON = 2.00231930436
#: 1 eV/(Å·amu) expressed in Å/fs² (acceleration of 1 amu under 1 eV/Å).
EV_PER_A_AMU_TO_A_PER_FS2 = 9.64853322e-3
#: 1 eV/Å³ in kBar (VASP prints stress in kBar; 1 eV/Å³ = 160.21766208 GPa).
EV_PER_A3_TO_KBAR = 1602.1766208
#: 1 kBar in eV/Å³.
KBAR_TO_EV_PER_A3 = 1.0 / EV_PER_A3_TO_KBAR
#: 1 GPa in eV/Å³.
GPA_TO_EV_PER_A3 = 1.0 / 160.21766208


def gyromagnetic_ratio_rad_per_fs_per_ev_per_mub(g: float = G_ELECTRON) -> float:
    """γ = g/ħ: angular frequency in rad/fs produced by a field of 1 eV/μB (≈ 3.042 for g = gₑ)."""
    if g <= 0:
        raise ValueError(f"g factor must be positive, got g={g!r}")
    return g / HBAR_EV_FS


def tesla_to_ev_per_mub(field_t: float) -> float:
    """Convert a field in tesla to eV/μB (1 eV/μB ≙ 17 276 T)."""
    return field_t * MU_B_EV_PER_T


def ev_per_mub_to_tesla(field_ev_per_mub: float) -> float:
    """Convert a field in eV/μB to tesla."""
    return field_ev_per_mub / MU_B_EV_PER_T
