"""BiFeO3: G-type antiferromagnet with a weak ferromagnetic canting from DMI.

Structure: R3c, hexagonal setting a = 5.5876 Å, c = 13.867 Å with the coordinates of Kubel & Schmid
(1990), reduced to the 10-atom rhombohedral primitive cell (Bi₂Fe₂O₆, one up and one down Fe:
G-type is commensurate). Fe–Fe 3.968 Å (6), 5.588 Å (6), 5.637 Å (6). ``bifeo3_2x2x2`` is the same
material in the paper's 80-atom 2×2×2 supercell (16 Fe). The 62 nm cycloid does not fit in such cells
and is left out.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from sld_workflows.engines.model.presets._base import OrderParameter, Preset
from sld_workflows.engines.model.presets._network import morse_network
from sld_workflows.engines.model.terms import DMI, Exchange, SingleIon, Term
from sld_workflows.geometry import g_type_signs, magnetic_sites, nn_graph
from sld_workflows.state import SLDState

HEX_A, HEX_C = 5.5876, 13.867
BI_2A_Z = 0.0
FE_2A_Z = 0.2212
O_6B_XYZ = (0.443, 0.012, 0.9543)

#: moment per Fe (μB), Fe³⁺ S = 5/2
MOMENT_FE_MUB = 4.1

#: Morse network (cutoff Å, stiffness eV/Å²)
BONDS = {
    ("Fe", "O"): (2.5, 10.0), ("Bi", "O"): (2.7, 6.0), ("O", "O"): (3.0, 3.0),
    ("Fe", "Fe"): (4.3, 2.0), ("Bi", "Bi"): (4.3, 2.0), ("Bi", "Fe"): (3.7, 2.0),
}

# Exchange from inelastic neutron scattering, Jeong et al., PRL 108, 077202 (2012): J₁ = 4.38 meV,
# J₂ = 0.15 meV (AFM, S = 5/2); times S² for unit spins. One exponential J(r) = J₁ e^{−β(r − r₁)}
# passes through both: β fixed so that J at the mean second-neighbour distance is J₂.
J1_EV = -27.4e-3
J2_EV = -0.94e-3
#: first-neighbour distance and the two second-neighbour distances of the reference (Å)
R1_A, R2A_A, R2B_A = 3.968, 5.588, 5.637
#: taper of J after the second shell (Å)
TAPER_ON_A, TAPER_CUT_A = 6.0, 6.4

# Weak ferromagnetism: D_ij = D₀ ĉ_hex for i in sublattice A, j in B (D_ji = −D_ij) on the
# nearest-neighbour bonds, the antiphase-rotation staggering of the G-type cell. D₀ is chosen for a
# canting of 0.5–1° per sublattice (net moment ≈ 0.03–0.07 μB/Fe): D₀ = 0.75 meV turns the two
# sublattices atan(D₀/|J₁|) = 1.57° from antiparallel, 0.78° each, |M| = 0.056 μB/Fe.
DMI_D0_EV = 0.75e-3
# Easy-plane anisotropy ⊥ ĉ_hex (K < 0 in E = −K Σ (s·ĉ)²), K_ep ~ 0.01–0.1 meV, so that L ⊥ D
EASY_PLANE_K_EV = -0.05e-3
C_HEX = (0.0, 0.0, 1.0)


def structure() -> Structure:
    hexa = Structure.from_spacegroup(
        "R3c", Lattice.hexagonal(HEX_A, HEX_C), ["Bi", "Fe", "O"],
        [[0, 0, BI_2A_Z], [0, 0, FE_2A_Z], list(O_6B_XYZ)],
    )
    return hexa.get_primitive_structure()


def exchange_decay_per_a() -> float:
    """β of J(r) = J₁ e^{−β(r − r₁)} with J(mean second-neighbour distance) = J₂."""
    return np.log(J1_EV / J2_EV) / (0.5 * (R2A_A + R2B_A) - R1_A)


def terms(state: SLDState) -> list[Term]:
    n = state.n_sites
    species = np.asarray(state.species)
    sign = g_type_signs(state)
    i, j, d = nn_graph(state.positions, state.cell, magnetic_sites(state))
    c_hex = np.array(C_HEX)
    return [
        morse_network(state, BONDS),
        Exchange(
            "Fe", "Fe", "exponential", {"j0_ev": J1_EV, "r0_a": R1_A, "beta_per_a": exchange_decay_per_a()},
            rcut_a=TAPER_CUT_A, r_on_a=TAPER_ON_A, offset=0.0,
        ),
        DMI(i=i, j=j, frac_ref=d @ np.linalg.inv(state.cell), d_ev=(DMI_D0_EV * sign[i])[:, None] * c_hex,
            r0_a=np.linalg.norm(d, axis=1)),
        SingleIon(k_ev=np.where(species == "Fe", EASY_PLANE_K_EV, 0.0), axes=np.tile(c_hex, (n, 1))),
    ]


_COMMON = dict(
    structure=structure, moments_mub={"Fe": MOMENT_FE_MUB}, terms=terms, order_parameters=(OrderParameter.NEEL,),
)

PRESETS = (
    Preset(name="bifeo3", description="BiFeO3 G-type antiferromagnet, 10-atom primitive cell", **_COMMON),
    Preset(name="bifeo3_2x2x2", base_supercell=(2, 2, 2),
           description="BiFeO3 in the paper's 80-atom 2x2x2 cell", **_COMMON),
)
