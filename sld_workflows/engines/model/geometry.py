"""Geometry helpers shared by the presets and the order parameters: reference bonds, G-type
sublattices (two-colouring of the nearest-neighbour graph) and pyrochlore local <111> axes."""

from __future__ import annotations

from collections import deque

import numpy as np

from sld_workflows.engines.model.neighbors import half_list


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
    the site is one of (1,1,1), (−1,−1,1), (−1,1,−1), (1,−1,−1) (sign product +1) in the Cartesian
    frame of the cubic cell (as in the Fd-3m:2 setting of §3.3, tetrahedron at (0,0,0), (¼,¼,0), ...).
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
