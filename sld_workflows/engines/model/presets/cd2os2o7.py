"""Cd2Os2O7: pyrochlore antiferromagnet of Os with all-in-all-out (AIAO) order.

Structure: Fd-3m origin choice 2 (``"Fd-3m:2"``; plain ``"Fd-3m"`` is origin 1), a = 10.17 Å;
Os 16c, Cd 16d, O 48f (x, ⅛, ⅛) with x = 0.319, O' 8b: Os₁₆Cd₁₆O₅₆ (88 atoms), Os–Os 3.596 Å.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from sld_workflows.engines.model.presets._base import OrderParameter, Preset
from sld_workflows.engines.model.presets._network import morse_network
from sld_workflows.engines.model.terms import DMI, Exchange, SingleIon, Term
from sld_workflows.geometry import magnetic_sites, nn_graph, pyrochlore_axes
from sld_workflows.state import SLDState

LATTICE_A = 10.17
O48F_X = 0.319

#: moment per Os (μB): the ordered moment from neutrons, Calder et al., Nat. Commun. 7, 11651 (2016)
#: (nominal S = 3/2 would be 3 μB); it sets the time scales of the dynamics
MOMENT_OS_MUB = 0.6

#: Morse network (cutoff Å, stiffness eV/Å²)
BONDS = {
    ("Os", "O"): (2.3, 12.0), ("Cd", "O"): (2.8, 6.0), ("O", "O"): (3.0, 3.0),
    ("Os", "Os"): (4.0, 3.0), ("Cd", "Cd"): (4.0, 2.0), ("Cd", "Os"): (4.0, 2.0),
}

# Exchange and anisotropy: Bogdanov et al., PRL 110, 127206 (2013), quantum chemistry: AFM J = 6.4 meV
# and an easy-axis zero-field splitting D = −6.8 meV along the local <111> axes, for S = 3/2; times
# S² for unit spins: J₁ = −14.4 meV, K = +15.3 meV in E = −K Σ (s·n)². AFM J₁ with a local easy axis
# alone selects AIAO.
J1_EV = -14.4e-3
LOCAL_AXIS_K_EV = 15.3e-3
#: Os–Os nearest-neighbour distance of the reference (Å)
J1_R0_A = 3.596
#: dJ/dr (eV/Å): an order-of-magnitude choice (no literature value), a modest spin-lattice coupling
J1_SLOPE_EV_PER_A = 0.030
#: taper of J between the first (3.60 Å) and second (6.23 Å) Os shells (Å)
TAPER_ON_A, TAPER_CUT_A = 4.4, 5.0
#: energy referenced to the pyrochlore ground manifold: Σ (s·s + 1/3) = 0 on every 2-up-2-down tetrahedron
EXCHANGE_OFFSET = -1.0 / 3.0

#: |D|/|J₁| of the Moriya-rule DMI; |D|/J ≈ 0.1–0.3 is the plausible range, 0.2 is our choice
DMI_OVER_J = 0.2


def structure() -> Structure:
    return Structure.from_spacegroup(
        "Fd-3m:2", Lattice.cubic(LATTICE_A), ["Os", "Cd", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [O48F_X, 0.125, 0.125], [0.375, 0.375, 0.375]],
    )


def pyrochlore_dmi(state: SLDState, d_ev: float) -> DMI:
    """Moriya-rule DMI on pyrochlore bonds: D_ij ∥ (r_j − r_i) × (c − m) ∥ opposite edge, with
    c the tetrahedron centre and m the bond midpoint; the overall sign is chosen so that the DMI
    energy of the all-in-all-out state is negative ("direct" DMI, Elhajal et al., PRB 71, 094420
    (2005))."""
    sites = magnetic_sites(state)
    i, j, d = nn_graph(state.positions, state.cell, sites)
    # neighbour vectors per site, to find the two common neighbours (the rest of the tetrahedron)
    nb: dict[int, list[tuple[int, np.ndarray]]] = {int(s): [] for s in sites}
    for a, b, v in zip(i, j, d, strict=True):
        nb[int(a)].append((int(b), v))
        nb[int(b)].append((int(a), -v))
    vecs = np.zeros((len(i), 3))
    for k, (a, v) in enumerate(zip(i, d, strict=True)):
        bond = np.linalg.norm(v)
        # tetrahedron mates of the bond a->b: neighbours of a at one bond length from b
        mates = [w for _, w in nb[int(a)] if abs(np.linalg.norm(w - v) - bond) < 0.2 * bond and np.linalg.norm(w) > 0]
        if len(mates) != 2:
            raise ValueError("pyrochlore DMI: could not identify the tetrahedron of a bond")
        centre = 0.25 * (v + mates[0] + mates[1])  # relative to a
        dvec = np.cross(v, centre - 0.5 * v)
        vecs[k] = dvec / np.linalg.norm(dvec)
    frac_ref = d @ np.linalg.inv(state.cell)
    r0 = np.linalg.norm(d, axis=1)
    term = DMI(i=i, j=j, frac_ref=frac_ref, d_ev=d_ev * vecs, r0_a=r0)
    s = pyrochlore_axes(state)
    e_aiao = float(np.sum(np.einsum("ij,ij->i", term.d_ev, np.cross(s[i], s[j]))))
    if e_aiao > 0:
        term.d_ev = -term.d_ev
    return term


def terms(state: SLDState) -> list[Term]:
    species = np.asarray(state.species)
    return [
        morse_network(state, BONDS),
        Exchange(
            "Os", "Os", "linear", {"j0_ev": J1_EV, "r0_a": J1_R0_A, "slope_ev_per_a": J1_SLOPE_EV_PER_A},
            rcut_a=TAPER_CUT_A, r_on_a=TAPER_ON_A, offset=EXCHANGE_OFFSET,
        ),
        SingleIon(k_ev=np.where(species == "Os", LOCAL_AXIS_K_EV, 0.0), axes=pyrochlore_axes(state)),
        pyrochlore_dmi(state, DMI_OVER_J * abs(J1_EV)),
    ]


PRESETS = (
    Preset(
        name="cd2os2o7",
        structure=structure,
        moments_mub={"Os": MOMENT_OS_MUB},
        terms=terms,
        order_parameters=(OrderParameter.SUBLATTICE_EQ6, OrderParameter.AIAO),
        conventional_cell_atoms=88,
        description="Cd2Os2O7 pyrochlore, all-in-all-out antiferromagnet (conventional cell, 88 atoms)",
    ),
)
