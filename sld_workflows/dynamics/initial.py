"""Initial conditions: Maxwell–Boltzmann velocities and starting spin directions (pure functions).

Randomness uses the ``INITIAL`` stream of :mod:`sld_workflows.dynamics.rng` keyed by the trajectory
seed: counter block :data:`BLOCK_SPINS` draws random spins, :data:`BLOCK_VELOCITIES` velocities, so
the two never share numbers and each is a function of the seed alone.

Spin directions are returned as drawn or given (not normalised): :class:`~sld_workflows.state.SLDState`
normalises them on construction, once, so the stored unit spins are bit-identical to what a state built
from the same directions holds. Non-magnetic sites get the zero vector (:func:`mask_nonmagnetic`).
"""

from __future__ import annotations

import numpy as np

from sld_workflows.dynamics.rng import Stream, generator
from sld_workflows.units import EV_PER_A_AMU_TO_A_PER_FS2, K_B_EV_PER_K

#: counter blocks of the INITIAL stream (the ``step`` argument of :func:`rng.generator`)
BLOCK_SPINS = 0
BLOCK_VELOCITIES = 1


def maxwell_boltzmann_velocities_a_per_fs(masses_amu: np.ndarray, temperature_k: float, seed: int) -> np.ndarray:
    """(N, 3) velocities (Å/fs) drawn from Maxwell–Boltzmann at ``temperature_k``, with the
    centre-of-mass drift removed (the expected kinetic temperature is then T·(N−1)/N)."""
    masses_amu = np.asarray(masses_amu, dtype=float)
    xi = generator(seed, BLOCK_VELOCITIES, Stream.INITIAL).standard_normal((len(masses_amu), 3))
    sigma = np.sqrt(K_B_EV_PER_K * temperature_k * EV_PER_A_AMU_TO_A_PER_FS2 / masses_amu)
    v = sigma[:, None] * xi
    v -= (masses_amu @ v) / masses_amu.sum()
    return v


def random_spin_directions(n_sites: int, seed: int) -> np.ndarray:
    """(N, 3) isotropic random directions (Gaussian vectors, not normalised) from the seed."""
    return generator(seed, BLOCK_SPINS, Stream.INITIAL).standard_normal((n_sites, 3))


def aligned_spin_directions(n_sites: int, direction: np.ndarray) -> np.ndarray:
    """(N, 3): every site along ``direction`` (ferromagnetic start)."""
    return np.tile(np.asarray(direction, dtype=float), (n_sites, 1))


def given_spin_directions(values: np.ndarray, magnetic: np.ndarray) -> np.ndarray:
    """(N, 3) from rows given either for every site or for the magnetic sites only (in site order).

    Raises ValueError (one line) on a wrong number of rows or a zero vector on a magnetic site.
    """
    values = np.asarray(values, dtype=float)
    n_sites, n_mag = len(magnetic), int(np.count_nonzero(magnetic))
    if values.shape[0] == n_sites:
        spins = values
    elif values.shape[0] == n_mag:
        spins = np.zeros((n_sites, 3))
        spins[magnetic] = values
    else:
        also = f" or {n_mag} rows (one per magnetic site)" if n_mag != n_sites else ""
        raise ValueError(f"expected {n_sites} rows of [x, y, z] (one per site){also}, got {values.shape[0]} rows")
    zero = magnetic & (np.linalg.norm(spins, axis=1) == 0)
    if np.any(zero):
        raise ValueError(f"zero vector on magnetic site(s) {np.flatnonzero(zero)[:10].tolist()}")
    return spins


def mask_nonmagnetic(spins: np.ndarray, magnetic: np.ndarray) -> np.ndarray:
    """``spins`` with the rows of non-magnetic sites set to zero."""
    return np.where(np.asarray(magnetic)[:, None], spins, 0.0)
