"""Pair lists for the model engine.

- :class:`VerletList` — periodic half neighbour list (ASE ``neighbor_list``) built with a skin and
  reused until some atom has moved more than half the skin or the cell has changed (NpT).
- :func:`bond_vectors` — fixed bonds (topology frozen at the reference structure) whose periodic
  image is re-chosen at every call from the reference fractional bond vector, so the bonds survive
  wrapped or unwrapped positions and any displacement smaller than half a cell.

Both return, per pair (i, j), the Cartesian vector d = r_j − r_i (Å) of the chosen image.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list


def half_list(
    positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff_a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, shifts) of all pairs closer than ``cutoff_a``, each unordered pair once.

    ``shifts`` are integer cell translations: d = r_j − r_i + shifts @ cell.
    """
    atoms = Atoms(numbers=np.ones(len(positions), dtype=int), positions=positions, cell=cell, pbc=pbc)
    i, j, s = neighbor_list("ijS", atoms, float(cutoff_a), self_interaction=False)
    # keep i < j, and for self-images (i == j) the lexicographically positive shift
    sx, sy, sz = s[:, 0], s[:, 1], s[:, 2]
    positive = (sx > 0) | ((sx == 0) & ((sy > 0) | ((sy == 0) & (sz > 0))))
    keep = (i < j) | ((i == j) & positive)
    i, j, s = i[keep], j[keep], s[keep]
    # canonical order, so that results do not depend on when the list was built
    order = np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))
    return i[order].astype(np.intp), j[order].astype(np.intp), s[order].astype(float)


class VerletList:
    """Half neighbour list with a skin, rebuilt on demand (not serialised: a cache)."""

    def __init__(self, cutoff_a: float, skin_a: float) -> None:
        self.cutoff_a = float(cutoff_a)
        self.skin_a = float(skin_a)
        self._positions: np.ndarray | None = None
        self._cell: np.ndarray | None = None
        self._pbc: tuple[bool, bool, bool] | None = None
        self.i = self.j = np.zeros(0, dtype=np.intp)
        self.shifts = np.zeros((0, 3))
        self.builds = 0

    def _needs_rebuild(self, positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool]) -> bool:
        if self._positions is None or self._positions.shape != positions.shape or pbc != self._pbc:
            return True
        if not np.array_equal(cell, self._cell):
            return True
        disp2 = np.max(np.einsum("ij,ij->i", positions - self._positions, positions - self._positions))
        return bool(disp2 > (0.5 * self.skin_a) ** 2)

    def pairs(
        self, positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, d) for pairs within cutoff + skin (callers mask by their own cutoff)."""
        if self._needs_rebuild(positions, cell, pbc):
            self.i, self.j, self.shifts = half_list(positions, cell, pbc, self.cutoff_a + self.skin_a)
            self._positions = positions.copy()
            self._cell = cell.copy()
            self._pbc = pbc
            self.builds += 1
            self._shift_cart = self.shifts @ cell
        d = positions[self.j] - positions[self.i] + self._shift_cart
        return self.i, self.j, d


def bond_vectors(
    i: np.ndarray, j: np.ndarray, frac_ref: np.ndarray, positions: np.ndarray, cell: np.ndarray
) -> np.ndarray:
    """Cartesian d = r_j − r_i for fixed bonds, image chosen closest to the reference fractional vector."""
    frac = positions @ np.linalg.inv(cell)
    f = frac[j] - frac[i]
    f = f + np.rint(frac_ref - f)
    return f @ cell
