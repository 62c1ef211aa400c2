"""Order parameters and temperatures: pure functions of arrays or states.

- :func:`magnetisation` — m = (1/N_mag) Σ s_i (vector) and |m|;
- :func:`neel_vector` — L = (1/N) Σ ε_i s_i with G-type signs ε_i = ±1 from :func:`g_type_signs`
  (two-colouring of the magnetic nearest-neighbour graph);
- :func:`aiao_order` — m_s = (1/N) Σ s_i·n_i with local <111> axes from
  :func:`pyrochlore_axes` (+1 all-in, −1 all-out on the "up" tetrahedra);
- :func:`sublattice_order_eq6` — the paper's Eq. (6): m_s² = (4/N²) Σ_a |Σ_{i∈a} s_i|² over the
  four pyrochlore sublattices (1 for any q = 0 state with collinear sublattices);
- :func:`collinearity` — largest eigenvalue of Q = (3⟨s⊗s⟩ − 1)/2 (1 collinear, 0 isotropic);
- :func:`conventional_c_over_a` — c/a of a cubic conventional (super)cell: the cell length that
  differs most from the mean of the other two, divided by that mean;
- :func:`lattice_temperature_k`, :func:`spin_temperature_k`;
- :func:`order_parameters` — the relevant ones per preset, as a dict of floats.
"""

from __future__ import annotations

import numpy as np

from sld_workflows.dynamics import lattice, spin
from sld_workflows.engines.model.geometry import pyrochlore_local_axes, two_colouring
from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState

#: atoms per conventional cubic cell of the presets whose c/a is reported
CONVENTIONAL_ATOMS = {"mgcr2o4": 56, "cd2os2o7": 88}


def _unit(spins: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(spins, axis=1)
    return np.divide(spins, n[:, None], out=np.zeros_like(spins), where=n[:, None] > 0)


def magnetisation(spins: np.ndarray, magnetic: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(m vector, |m|) averaged over magnetic sites (nonzero spins if ``magnetic`` is None)."""
    spins = np.asarray(spins, dtype=float)
    if magnetic is None:
        magnetic = np.linalg.norm(spins, axis=1) > 0
    m = _unit(spins[magnetic]).mean(axis=0)
    return m, float(np.linalg.norm(m))


def g_type_signs(state: SLDState) -> np.ndarray:
    """ε_i = ±1 on magnetic sites (0 elsewhere), opposite on nearest neighbours."""
    sites = np.flatnonzero(state.magnetic)
    eps = np.zeros(state.n_sites)
    eps[sites] = two_colouring(state.positions, state.cell, sites)
    return eps


def neel_vector(spins: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, float]:
    """(L, |L|) with L = (1/N) Σ ε_i s_i over sites with ε_i ≠ 0."""
    mask = signs != 0
    vec = (signs[mask, None] * _unit(np.asarray(spins, dtype=float)[mask])).mean(axis=0)
    return vec, float(np.linalg.norm(vec))


def pyrochlore_axes(state: SLDState) -> np.ndarray:
    """(N, 3) local <111> axes on magnetic sites (zero elsewhere); see
    :func:`sld_workflows.engines.model.geometry.pyrochlore_local_axes`."""
    sites = np.flatnonzero(state.magnetic)
    axes = np.zeros((state.n_sites, 3))
    axes[sites] = pyrochlore_local_axes(state.positions, state.cell, sites)
    return axes


def aiao_order(spins: np.ndarray, axes: np.ndarray) -> float:
    """m_s = (1/N) Σ s_i·n_i over sites with an axis: +1 all-in, −1 all-out (either is AIAO order)."""
    mask = np.linalg.norm(axes, axis=1) > 0
    return float(np.mean(np.einsum("ij,ij->i", _unit(np.asarray(spins, dtype=float)[mask]), axes[mask])))


def pyrochlore_sublattices(axes: np.ndarray) -> np.ndarray:
    """Sublattice index 0..3 per site from its local axis (−1 where there is none)."""
    ref = np.array([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]]) / np.sqrt(3.0)
    mask = np.linalg.norm(axes, axis=1) > 0
    out = np.full(len(axes), -1)
    out[mask] = np.argmax(axes[mask] @ ref.T, axis=1)
    return out


def sublattice_order_eq6(spins: np.ndarray, sublattice: np.ndarray) -> float:
    """Paper Eq. (6): m_s = sqrt((4/N²) Σ_a |Σ_{i∈a} s_i|²) over the four sublattices."""
    s = _unit(np.asarray(spins, dtype=float))
    mask = sublattice >= 0
    n = int(mask.sum())
    total = sum(float(np.sum(np.linalg.norm(s[sublattice == a].sum(axis=0)) ** 2)) for a in range(4))
    return float(np.sqrt(4.0 * total / n**2))


def collinearity(spins: np.ndarray, magnetic: np.ndarray | None = None) -> float:
    """Largest eigenvalue of the nematic tensor Q = (3⟨s⊗s⟩ − 1)/2: 1 for collinear spins (any
    up/down pattern), 0 for isotropic ones, ≈ 1/√N-sized for N random spins."""
    spins = np.asarray(spins, dtype=float)
    if magnetic is None:
        magnetic = np.linalg.norm(spins, axis=1) > 0
    s = _unit(spins[magnetic])
    q = 1.5 * (s.T @ s) / len(s) - 0.5 * np.eye(3)
    return float(np.linalg.eigvalsh(q)[-1])


def conventional_c_over_a(cell: np.ndarray, repeats: tuple[int, int, int] = (1, 1, 1)) -> tuple[float, int]:
    """(c/a, axis index) of a cubic conventional (super)cell with ``repeats`` cells along each vector.

    Lengths ℓ_k = |cell_k|/repeats_k; c is the ℓ_k farthest from the mean a of the other two, so a
    flattened tetragonal cell (c < a) gives c/a < 1 and an elongated one c/a > 1.
    """
    lengths = np.linalg.norm(np.asarray(cell, dtype=float), axis=1) / np.asarray(repeats, dtype=float)
    best, axis = 1.0, 0
    for k in range(3):
        others = np.delete(lengths, k).mean()
        ratio = lengths[k] / others
        if abs(ratio - 1.0) > abs(best - 1.0):
            best, axis = float(ratio), k
    return best, axis


def conventional_repeats(state: SLDState, atoms_per_cell: int) -> tuple[int, int, int]:
    """Supercell repeats of a cubic conventional cell, inferred from the volume and cell lengths."""
    a = (state.volume_a3 * atoms_per_cell / state.n_sites) ** (1.0 / 3.0)
    reps = np.rint(np.linalg.norm(state.cell, axis=1) / a).astype(int)
    return tuple(int(max(r, 1)) for r in reps)


def lattice_temperature_k(state: SLDState) -> float:
    """2 KE/(3 N k_B) from the velocities."""
    return lattice.kinetic_temperature_k(state.velocities, state.masses_amu)


def spin_temperature_k(state: SLDState, evaluation: Evaluation) -> float:
    """Nowak's estimator with the full field B⊥ + B∥ ŝ (NaN if the engine gives no parallel part)."""
    if evaluation.field_parallel_ev_per_mub is None:
        return float("nan")
    s = _unit(state.spins)
    full = evaluation.fields_ev_per_mub + evaluation.field_parallel_ev_per_mub[:, None] * s
    mask = state.magnetic
    return spin.spin_temperature_k(s[mask], full[mask], state.moments[mask])


def order_parameters(preset_name: str, state: SLDState, evaluation: Evaluation | None = None) -> dict[str, float]:
    """The order parameters relevant to ``preset_name`` (plus temperatures), as plain floats.

    All presets: ``m`` (|m|), ``T_lattice_K`` and, given an evaluation, ``T_spin_K``.
    bcc_fe: ``m_x, m_y, m_z``; cri3_monolayer: ``m_z``; cd2os2o7: ``m_s`` (signed AIAO projection)
    and ``m_s_eq6`` (paper Eq. 6); mgcr2o4: ``c_over_a`` (conventional cell), ``c_axis``,
    ``collinearity``, ``m_s_eq6``; bifeo3*: ``neel`` (|L|), ``L_x, L_y, L_z``.
    """
    m_vec, m_abs = magnetisation(state.spins, state.magnetic)
    out: dict[str, float] = {"m": m_abs, "T_lattice_K": lattice_temperature_k(state)}
    if evaluation is not None:
        out["T_spin_K"] = spin_temperature_k(state, evaluation)
    if preset_name == "bcc_fe":
        out.update(m_x=float(m_vec[0]), m_y=float(m_vec[1]), m_z=float(m_vec[2]))
    elif preset_name == "cri3_monolayer":
        out["m_z"] = float(m_vec[2])
    elif preset_name in ("cd2os2o7", "mgcr2o4"):
        axes = pyrochlore_axes(state)
        out["m_s_eq6"] = sublattice_order_eq6(state.spins, pyrochlore_sublattices(axes))
        if preset_name == "cd2os2o7":
            out["m_s"] = aiao_order(state.spins, axes)
        else:
            ca, axis = conventional_c_over_a(state.cell, conventional_repeats(state, CONVENTIONAL_ATOMS[preset_name]))
            out.update(c_over_a=ca, c_axis=float(axis), collinearity=collinearity(state.spins, state.magnetic))
    elif preset_name in ("bifeo3", "bifeo3_2x2x2"):
        vec, mag = neel_vector(state.spins, g_type_signs(state))
        out.update(neel=mag, L_x=float(vec[0]), L_y=float(vec[1]), L_z=float(vec[2]))
    else:
        raise ValueError(f"order_parameters: unknown preset {preset_name!r}")
    return out
