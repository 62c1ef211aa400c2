"""Order parameters: pure functions of arrays or states, and the per-preset report.

- :func:`magnetisation` — m = (1/N_mag) Σ s_i (vector) and |m|;
- :func:`neel_vector` — L = (1/N) Σ ε_i s_i with G-type signs ε_i = ±1 from
  :func:`~sld_workflows.geometry.g_type_signs` (two-colouring of the magnetic nearest-neighbour graph);
- :func:`aiao_order` — m_s = (1/N) Σ s_i·n_i with local <111> axes from
  :func:`~sld_workflows.geometry.pyrochlore_axes` (+1 all-in, −1 all-out on the "up" tetrahedra);
- :func:`sublattice_order_eq6` — the paper's Eq. (6): m_s² = (4/N²) Σ_a |Σ_{i∈a} s_i|² over the
  four pyrochlore sublattices (1 for any q = 0 state with collinear sublattices);
- :func:`collinearity` — largest eigenvalue of Q = (3⟨s⊗s⟩ − 1)/2 (1 collinear, 0 isotropic);
- :func:`conventional_c_over_a` — c/a of a cubic conventional (super)cell: the cell length that
  differs most from the mean of the other two, divided by that mean;
- :func:`order_parameters` — what the preset declares (:class:`~sld_workflows.engines.model.presets.
  OrderParameter`), plus the temperatures, as a dict of floats.

Temperatures have one home each in the dynamics layer: :func:`sld_workflows.dynamics.lattice.
kinetic_temperature_k` and :func:`sld_workflows.dynamics.spin.state_spin_temperature_k`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from sld_workflows.dynamics.lattice import kinetic_temperature_k
from sld_workflows.dynamics.spin import state_spin_temperature_k
from sld_workflows.engines.model.presets import OrderParameter, Preset, get_preset
from sld_workflows.evaluation import Evaluation
from sld_workflows.geometry import g_type_signs, pyrochlore_axes, pyrochlore_sublattices
from sld_workflows.state import SLDState
from sld_workflows.vectors import unit_rows

# re-exported: the geometry the order parameters are defined on
__all__ = [
    "aiao_order", "collinearity", "conventional_c_over_a", "conventional_repeats", "g_type_signs",
    "magnetisation", "neel_vector", "order_parameters", "pyrochlore_axes", "pyrochlore_sublattices",
    "sublattice_order_eq6",
]


def magnetisation(spins: np.ndarray, magnetic: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(m vector, |m|) averaged over magnetic sites (nonzero spins if ``magnetic`` is None)."""
    spins = np.asarray(spins, dtype=float)
    if magnetic is None:
        magnetic = np.linalg.norm(spins, axis=1) > 0
    m = unit_rows(spins[magnetic]).mean(axis=0)
    return m, float(np.linalg.norm(m))


def neel_vector(spins: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, float]:
    """(L, |L|) with L = (1/N) Σ ε_i s_i over sites with ε_i ≠ 0."""
    mask = signs != 0
    vec = (signs[mask, None] * unit_rows(np.asarray(spins, dtype=float)[mask])).mean(axis=0)
    return vec, float(np.linalg.norm(vec))


def aiao_order(spins: np.ndarray, axes: np.ndarray) -> float:
    """m_s = (1/N) Σ s_i·n_i over sites with an axis: +1 all-in, −1 all-out (either is AIAO order)."""
    mask = np.linalg.norm(axes, axis=1) > 0
    return float(np.mean(np.einsum("ij,ij->i", unit_rows(np.asarray(spins, dtype=float)[mask]), axes[mask])))


def sublattice_order_eq6(spins: np.ndarray, sublattice: np.ndarray) -> float:
    """Paper Eq. (6): m_s = sqrt((4/N²) Σ_a |Σ_{i∈a} s_i|²) over the four sublattices."""
    s = unit_rows(np.asarray(spins, dtype=float))
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
    s = unit_rows(spins[magnetic])
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


# ------------------------------------------------------------------ per-preset report
class _Sites:
    """One state's sublattice geometry, computed once per report (two order parameters may share it)."""

    def __init__(self, state: SLDState, preset: Preset) -> None:
        self.state = state
        self.preset = preset

    @functools.cached_property
    def magnetisation(self) -> tuple[np.ndarray, float]:
        return magnetisation(self.state.spins, self.state.magnetic)

    @functools.cached_property
    def pyrochlore_axes(self) -> np.ndarray:
        return pyrochlore_axes(self.state)


def _magnetisation_vector(sites: _Sites) -> dict[str, float]:
    m = sites.magnetisation[0]
    return {"m_x": float(m[0]), "m_y": float(m[1]), "m_z": float(m[2])}


def _magnetisation_z(sites: _Sites) -> dict[str, float]:
    return {"m_z": float(sites.magnetisation[0][2])}


def _sublattice_eq6(sites: _Sites) -> dict[str, float]:
    return {"m_s_eq6": sublattice_order_eq6(sites.state.spins, pyrochlore_sublattices(sites.pyrochlore_axes))}


def _aiao(sites: _Sites) -> dict[str, float]:
    return {"m_s": aiao_order(sites.state.spins, sites.pyrochlore_axes)}


def _c_over_a(sites: _Sites) -> dict[str, float]:
    repeats = conventional_repeats(sites.state, sites.preset.conventional_cell_atoms)
    ratio, axis = conventional_c_over_a(sites.state.cell, repeats)
    return {"c_over_a": ratio, "c_axis": float(axis)}


def _collinearity(sites: _Sites) -> dict[str, float]:
    return {"collinearity": collinearity(sites.state.spins, sites.state.magnetic)}


def _neel(sites: _Sites) -> dict[str, float]:
    vec, mag = neel_vector(sites.state.spins, g_type_signs(sites.state))
    return {"neel": mag, "L_x": float(vec[0]), "L_y": float(vec[1]), "L_z": float(vec[2])}


#: how each order parameter a preset may declare is computed
COMPUTE: dict[OrderParameter, Callable[[_Sites], dict[str, float]]] = {
    OrderParameter.MAGNETISATION_VECTOR: _magnetisation_vector,
    OrderParameter.MAGNETISATION_Z: _magnetisation_z,
    OrderParameter.SUBLATTICE_EQ6: _sublattice_eq6,
    OrderParameter.AIAO: _aiao,
    OrderParameter.C_OVER_A: _c_over_a,
    OrderParameter.COLLINEARITY: _collinearity,
    OrderParameter.NEEL: _neel,
}


def order_parameters(
    preset: str | Preset, state: SLDState, evaluation: Evaluation | None = None
) -> dict[str, float]:
    """The order parameters ``preset`` (a registered name or a :class:`Preset`) declares, as plain floats.

    Always ``m`` (|m|) and ``T_lattice_K``; given an evaluation also ``T_spin_K`` (NaN where the
    estimator is undefined, see :func:`~sld_workflows.dynamics.spin.state_spin_temperature_k`); then
    the keys of each declared :class:`OrderParameter`, in the preset's order.
    """
    if not isinstance(preset, Preset):
        preset = get_preset(preset)
    sites = _Sites(state, preset)
    out: dict[str, float] = {
        "m": sites.magnetisation[1],
        "T_lattice_K": kinetic_temperature_k(state.velocities, state.masses_amu),
    }
    if evaluation is not None:
        out["T_spin_K"] = state_spin_temperature_k(state, evaluation)
    for parameter in preset.order_parameters:
        out.update(COMPUTE[parameter](sites))
    return out
