"""Crystal geometry shared by the model presets (engines layer) and the order parameters (analysis
layer), so that neither reaches into the other: periodic pair lists, reference bonds, G-type
sublattices (two-colouring of the nearest-neighbour graph) and pyrochlore local <111> axes.

It sits in the bottom layer with :mod:`sld_workflows.state` and uses pymatgen's neighbour search
(``find_points_in_spheres``, compiled), the library the state is built on. Every function returns
its pairs in one canonical order, so a result never depends on how or when a list was built.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

if TYPE_CHECKING:
    from sld_workflows.state import SLDState

#: the four local <111> axes of the pyrochlore "up" tetrahedron at (0,0,0), (¼,¼,0), (¼,0,¼), (0,¼,¼)
#: of the Fd-3m origin-2 cubic cell, in that order (unnormalised); index = sublattice number
PYROCHLORE_UP_AXES = np.array([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]], dtype=float)


def half_list(
    positions: np.ndarray, cell: np.ndarray, pbc: tuple[bool, bool, bool], cutoff_a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, shifts) of all pairs closer than ``cutoff_a`` (strictly), each unordered pair once.

    ``shifts`` are integer cell translations: d = r_j − r_i + shifts @ cell. Self-images (i == j)
    are kept once, with the lexicographically positive shift.
    """
    pos = np.ascontiguousarray(positions, dtype=float)
    lattice = np.ascontiguousarray(cell, dtype=float)
    i, j, s, _ = find_points_in_spheres(
        pos, pos, float(cutoff_a), np.array(pbc, dtype=np.int64), lattice, tol=1e-8
    )
    i = i.astype(np.intp)
    j = j.astype(np.intp)
    s = s.astype(float)
    d = pos[j] - pos[i] + s @ lattice
    inside = np.einsum("ij,ij->i", d, d) < float(cutoff_a) ** 2
    sx, sy, sz = s[:, 0], s[:, 1], s[:, 2]
    positive = (sx > 0) | ((sx == 0) & ((sy > 0) | ((sy == 0) & (sz > 0))))
    keep = inside & ((i < j) | ((i == j) & positive))
    i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))
    return i[order], j[order], s[order]


def fixed_bonds(
    positions: np.ndarray,
    cell: np.ndarray,
    species: tuple[str, ...],
    a: str,
    b: str,
    rmax_a: float,
    pbc=(True, True, True),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bonds between species ``a`` and ``b`` shorter than ``rmax_a`` (each once):
    (i, j, reference fractional vector f_j − f_i + image, reference length r₀ in Å)."""
    i, j, s = half_list(positions, cell, tuple(pbc), rmax_a)
    sp = np.asarray(species)
    keep = ((sp[i] == a) & (sp[j] == b)) | ((sp[i] == b) & (sp[j] == a))
    i, j, s = i[keep], j[keep], s[keep]
    frac = positions @ np.linalg.inv(cell)
    f = frac[j] - frac[i] + s
    r0 = np.linalg.norm(f @ cell, axis=1)
    return i, j, f, r0


def nn_graph(positions: np.ndarray, cell: np.ndarray, sites: np.ndarray, rel_tol: float = 0.15):
    """Nearest-neighbour pairs among ``sites`` (indices): distance within (1 + rel_tol) of the shortest.
    Returns (i, j, d) with d = r_j − r_i (minimum image as found by the list)."""
    sub = positions[sites]
    vol = abs(np.linalg.det(cell))
    guess = 2.0 * (vol / max(len(sites), 1)) ** (1.0 / 3.0)
    i, j, s = half_list(sub, cell, (True, True, True), guess)
    d = sub[j] - sub[i] + s @ cell
    r = np.linalg.norm(d, axis=1)
    if len(r) == 0:
        raise ValueError("no neighbours found among the given sites")
    keep = r < (1.0 + rel_tol) * r.min()
    return sites[i[keep]], sites[j[keep]], d[keep]


def two_colouring(positions: np.ndarray, cell: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """±1 per site of ``sites`` such that nearest neighbours have opposite signs (G-type on a
    pseudo-cubic lattice). Raises ValueError if the nearest-neighbour graph is not bipartite
    (e.g. a supercell incommensurate with G-type order)."""
    i, j, _ = nn_graph(positions, cell, sites)
    index = {int(s): k for k, s in enumerate(sites)}
    adj: list[list[int]] = [[] for _ in sites]
    for a, b in zip(i, j, strict=True):
        adj[index[int(a)]].append(index[int(b)])
        adj[index[int(b)]].append(index[int(a)])
    colour = np.zeros(len(sites), dtype=int)
    for start in range(len(sites)):
        if colour[start]:
            continue
        colour[start] = 1
        queue = deque([start])
        while queue:
            u = queue.popleft()
            for v in adj[u]:
                if colour[v] == 0:
                    colour[v] = -colour[u]
                    queue.append(v)
                elif colour[v] == colour[u]:
                    raise ValueError("nearest-neighbour graph is not bipartite: no G-type two-colouring")
    return colour


def pyrochlore_local_axes(positions: np.ndarray, cell: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """Local <111> axes (unit, rows) of pyrochlore sites, pointing from each site to the centre of
    its "up" tetrahedron.

    Each site has 6 nearest neighbours, 3 in each of its two corner-sharing tetrahedra; bond vectors
    within one tetrahedron are one bond length apart. The three bond vectors of one tetrahedron sum
    to 4(c − r_i)·(3/4), parallel to ±n. Of the two tetrahedra, "up" is the one whose direction from
    the site is one of :data:`PYROCHLORE_UP_AXES` (sign product +1) in the Cartesian frame of the
    cubic cell (the Fd-3m:2 setting, tetrahedron at (0,0,0), (¼,¼,0), ...).
    """
    i, j, d = nn_graph(positions, cell, sites)
    bonds: dict[int, list[np.ndarray]] = {int(s): [] for s in sites}
    for a, b, v in zip(i, j, d, strict=True):
        bonds[int(a)].append(v)
        bonds[int(b)].append(-v)
    axes = np.zeros((len(sites), 3))
    for k, s in enumerate(sites):
        vs = np.array(bonds[int(s)])
        if len(vs) != 6:
            raise ValueError(f"site {int(s)} has {len(vs)} nearest neighbours, a pyrochlore site has 6")
        bond = np.linalg.norm(vs[0])
        same = np.linalg.norm(vs - vs[0], axis=1) < 1.2 * bond  # vs[0] itself and its two tetrahedron mates
        n = vs[same].sum(axis=0)
        n /= np.linalg.norm(n)
        if np.prod(np.sign(n)) < 0:
            n = -n
        axes[k] = n
    return axes


# --------------------------------------------------------------------- per-site views of a state
def magnetic_sites(state: SLDState) -> np.ndarray:
    """Indices of the sites with a moment."""
    return np.flatnonzero(state.magnetic)


def g_type_signs(state: SLDState) -> np.ndarray:
    """ε_i = ±1 on magnetic sites (0 elsewhere), opposite on nearest neighbours (:func:`two_colouring`)."""
    sites = magnetic_sites(state)
    eps = np.zeros(state.n_sites)
    eps[sites] = two_colouring(state.positions, state.cell, sites)
    return eps


def pyrochlore_axes(state: SLDState) -> np.ndarray:
    """(N, 3) local <111> axes on magnetic sites (zero elsewhere), see :func:`pyrochlore_local_axes`."""
    sites = magnetic_sites(state)
    axes = np.zeros((state.n_sites, 3))
    axes[sites] = pyrochlore_local_axes(state.positions, state.cell, sites)
    return axes


def pyrochlore_sublattices(axes: np.ndarray) -> np.ndarray:
    """Sublattice index 0..3 per site from its local axis (−1 where there is none)."""
    ref = PYROCHLORE_UP_AXES / np.sqrt(3.0)
    mask = np.linalg.norm(axes, axis=1) > 0
    out = np.full(len(axes), -1)
    out[mask] = np.argmax(axes[mask] @ ref.T, axis=1)
    return out
