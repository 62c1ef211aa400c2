"""Descriptors shared by the trainers: neighbour lists and a smooth radial basis (numpy).

g_k(r) = exp(−((r − μ_k)/σ)²)·f_c(r) with f_c(r) = (1 + cos(πr/r_c))/2, μ_k evenly spaced on
[r_min, r_c − σ/2]: smooth to zero at r_c, so energies, forces and magnetic forces are continuous.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sld_workflows.mlbench.frames import FrameSet


@dataclasses.dataclass(frozen=True)
class RadialBasis:
    n_basis: int = 8
    r_min_a: float = 1.6
    r_cut_a: float = 6.2

    @property
    def centres_a(self) -> np.ndarray:
        return np.linspace(self.r_min_a, self.r_cut_a - 0.5 * self.width_a, self.n_basis)

    @property
    def width_a(self) -> float:
        return (self.r_cut_a - self.r_min_a) / self.n_basis

    def values(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(g, dg/dr), each (len(r), n_basis)."""
        r = np.asarray(r, dtype=float)[:, None]
        x = (r - self.centres_a) / self.width_a
        gauss = np.exp(-x * x)
        dgauss = -2.0 * x / self.width_a * gauss
        fc = 0.5 * (1.0 + np.cos(np.pi * r / self.r_cut_a))
        dfc = -0.5 * np.pi / self.r_cut_a * np.sin(np.pi * r / self.r_cut_a)
        return gauss * fc, dgauss * fc + gauss * dfc


def neighbours(fs: FrameSet, f: int, cutoff_a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list (i, j, D) of frame ``f``: D = r_j − r_i + image shift (Å), both directions.

    Brute force over the images that can reach ``cutoff_a`` (dense numpy): for the ~100-atom cells of a
    training set this is ~20× faster than ASE's general-purpose list, which dominated the fit time."""
    cell, pos = fs.cells[f], fs.positions[f]
    inv = np.linalg.inv(cell)
    frac = pos @ inv
    spacing = 1.0 / np.linalg.norm(inv, axis=0)  # distances between lattice planes
    reach = np.ceil(cutoff_a / spacing + 0.5).astype(int)
    shifts = np.array(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")).reshape(3, -1).T
    dfrac = frac[None, :, :] - frac[:, None, :]
    dfrac -= np.round(dfrac)
    d = (dfrac[:, :, None, :] + shifts[None, None, :, :]) @ cell  # (N, N, S, 3)
    r2 = np.einsum("ijsk,ijsk->ijs", d, d)
    keep = (r2 < cutoff_a**2) & (r2 > 1e-12)
    i, j, s = np.nonzero(keep)
    return i, j, d[i, j, s]


def half_pairs(fs: FrameSet, f: int, cutoff_a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pair within ``cutoff_a`` once: (i, j, n) with D = r_j − r_i + n·cell, n the integer image
    (int16/int8 arrays: small enough to keep for thousands of frames)."""
    cell, pos = fs.cells[f], fs.positions[f]
    i, j, d = neighbours(fs, f, cutoff_a)
    n = np.rint((d - (pos[j] - pos[i])) @ np.linalg.inv(cell)).astype(np.int8)
    first = np.where(n[:, 0] != 0, n[:, 0], np.where(n[:, 1] != 0, n[:, 1], n[:, 2]))
    keep = (i < j) | ((i == j) & (first > 0))
    return i[keep].astype(np.int16), j[keep].astype(np.int16), n[keep]


def neighbour_shifts(fs: FrameSet, f: int, cutoff_a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, shift) with D = r_j − r_i + shift: the image shift in Å, for models that differentiate D."""
    i, j, d = neighbours(fs, f, cutoff_a)
    return i, j, d - (fs.positions[f][j] - fs.positions[f][i])


def unit_spins(magmom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ŝ, |M|) per row; zero rows stay zero with |M| = 0."""
    mu = np.linalg.norm(magmom, axis=-1)
    s = np.divide(magmom, mu[..., None], out=np.zeros_like(magmom), where=mu[..., None] > 0)
    return s, mu
