"""Row-wise vector helpers shared by every layer (the one home of the unit-direction convention)."""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its length; a zero row (a non-magnetic site's spin) stays the zero vector.

    Spins, M_CONSTR directions and anisotropy axes all use this one rule, so that "the direction
    of a zero spin" means the same (zero) everywhere."""
    v = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(v, axis=1)
    return np.divide(v, norms[:, None], out=np.zeros_like(v), where=norms[:, None] > 0)
