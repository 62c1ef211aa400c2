"""Pair lists for the model engine.

- :class:`VerletList` — periodic half neighbour list (:func:`sld_workflows.geometry.half_list`,
  pymatgen's compiled neighbour search) built with a skin and
  reused until it could miss a pair: an atom moved more than half the skin, or (NpT) the cell
  deformation together with the non-affine moves used up the skin (criterion in the class).
- :func:`bond_vectors` — fixed bonds (topology frozen at the reference structure) whose periodic
  image is re-chosen at every call from the reference fractional bond vector, so the bonds survive
  wrapped or unwrapped positions and any displacement smaller than half a cell.

Both return, per pair (i, j), the Cartesian vector d = r_j − r_i (Å) of the chosen image.
"""

from __future__ import annotations

import numpy as np

from sld_workflows.geometry import half_list

__all__ = ["VerletList", "bond_vectors", "half_list"]


class VerletList:
    """Half neighbour list with a skin, rebuilt only when it could miss a pair (not serialised: a cache).

    Built at fractional positions f⁰ and cell h⁰ with cutoff r_c + skin. For the current f, h let
    M = h⁰⁻¹h (the cell deformation) and u = max_i |(f_i − f⁰_i) h| (the largest non-affine move).
    A pair absent from the list had |Δf⁰ h⁰| > r_c + skin, so now |Δf h| ≥ σ_min(M)(r_c + skin) − 2u.
    The list is therefore complete while σ_min(M)(r_c + skin) − 2u > r_c; it is rebuilt otherwise.
    With a fixed cell (M = 1) this is the usual "rebuild when an atom moved more than skin/2";
    under NpT a slowly changing cell does not force a rebuild at every step.
    """

    def __init__(self, cutoff_a: float, skin_a: float) -> None:
        self.cutoff_a = float(cutoff_a)
        self.skin_a = float(skin_a)
        self._frac: np.ndarray | None = None
        self._cell: np.ndarray | None = None
        self._cell_inv: np.ndarray | None = None
        self._pbc: tuple[bool, bool, bool] | None = None
        self._shift_cell: np.ndarray | None = None
        self.i = self.j = np.zeros(0, dtype=np.intp)
        self.shifts = np.zeros((0, 3))
        self._shift_cart = np.zeros((0, 3))
        self.builds = 0

    def is_valid(self, positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool]) -> bool:
        """True if the stored list still contains every pair closer than the cutoff."""
        if self._frac is None or self._frac.shape != positions.shape or pbc != self._pbc:
            return False
        moved = positions - self._frac @ cell
        sigma_min = 1.0
        if not np.array_equal(cell, self._cell):
            sigma_min = float(np.linalg.svd(self._cell_inv @ cell, compute_uv=False)[-1])
        u = float(np.sqrt(np.max(np.einsum("ij,ij->i", moved, moved)))) if len(moved) else 0.0
        return sigma_min * (self.cutoff_a + self.skin_a) - 2.0 * u > self.cutoff_a

    def pairs(
        self, positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, d) for pairs within cutoff + skin (callers mask by their own cutoff)."""
        i, j, shift_cart = self.update(positions, cell, pbc)
        return i, j, positions[j] - positions[i] + shift_cart

    def update(
        self, positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, shift vectors in Å) of the valid list, rebuilt if needed: d = r_j − r_i + shift."""
        if not self.is_valid(positions, cell, pbc):
            self.i, self.j, self.shifts = half_list(positions, cell, pbc, self.cutoff_a + self.skin_a)
            self._cell = cell.copy()
            self._cell_inv = np.linalg.inv(cell)
            self._frac = positions @ self._cell_inv
            self._pbc = pbc
            self.builds += 1
            self._shift_cell = None
        if self._shift_cell is None or not np.array_equal(cell, self._shift_cell):
            self._shift_cart = self.shifts @ cell
            self._shift_cell = cell.copy()
        return self.i, self.j, self._shift_cart


def bond_vectors(
    i: np.ndarray, j: np.ndarray, frac_ref: np.ndarray, positions: np.ndarray, cell: np.ndarray
) -> np.ndarray:
    """Cartesian d = r_j − r_i for fixed bonds, image chosen closest to the reference fractional vector."""
    frac = positions @ np.linalg.inv(cell)
    f = frac[j] - frac[i]
    f = f + np.rint(frac_ref - f)
    return f @ cell
