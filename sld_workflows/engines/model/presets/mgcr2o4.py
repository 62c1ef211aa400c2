"""MgCr2O4: pyrochlore (spinel B-site) Cr antiferromagnet with a spin-Jahn–Teller distortion.

Structure: Fd-3m origin choice 2, a = 8.333 Å; Mg 8a, Cr 16d, O 32e (u, u, u) with u = 0.2612:
Mg₈Cr₁₆O₃₂ (56 atoms); Cr–Cr 2.946 Å (6, the pyrochlore bonds), 5.103 Å (12), 5.892 Å (12, J₃a + J₃b).
The mechanism (Tchernyshyov, Moessner & Sondhi, PRL 88, 067203 (2002)): in a collinear state the
antiparallel bonds of each tetrahedron shorten and the parallel ones lengthen, which flattens the
cubic cell (c < a) when dJ/dr couples the spins to the lattice.
"""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from sld_workflows.engines.model.presets._base import OrderParameter, Preset
from sld_workflows.engines.model.presets._network import morse_network
from sld_workflows.engines.model.terms import Exchange, Term
from sld_workflows.state import SLDState

LATTICE_A = 8.333
O32E_U = 0.2612

#: moment per Cr (μB), Cr³⁺ S = 3/2
MOMENT_CR_MUB = 3.0

#: Morse network (cutoff Å, stiffness eV/Å²). The bending springs (O–O, Cr–Cr, k = 1) are calibrated
#: soft, so that the distortion stands out of the thermal c/a noise of a 56-atom cell at 5 K
BONDS = {
    ("Cr", "O"): (2.5, 10.0), ("Mg", "O"): (2.5, 10.0), ("O", "O"): (3.3, 1.0),
    ("Cr", "Cr"): (3.2, 1.0), ("Cr", "Mg"): (4.0, 1.0), ("Mg", "Mg"): (4.0, 1.0),
}

# Nearest-neighbour exchange J₁(r) = J₁ + J′(r − r₀): J₁ from the Curie–Weiss temperature
# θ_CW ≈ −370 K with z = 6; J′ from the collapse of θ_CW from ZnCr2O4 (Cr–Cr 2.94 Å, −390 K) to
# CdCr2O4 (3.04 Å, −70 K). J′ > 0 here means |J₁| grows as the bond shortens.
J1_EV = -15.9e-3
J1_R0_A = 2.946
J1_SLOPE_EV_PER_A = 0.140
#: taper of J₁ between the first (2.95 Å) and second (5.10 Å) Cr shells (Å)
J1_TAPER_ON_A, J1_TAPER_CUT_A = 3.6, 4.2
#: energy referenced to the pyrochlore ground manifold (every 2-up-2-down tetrahedron has
#: Σ (s·s + 1/3) = 0), so collinear states carry no volume magnetostriction, only the tetragonal one
EXCHANGE_OFFSET = -1.0 / 3.0

# Third-neighbour exchange: CALIBRATED here, not a literature value. A ferromagnetic J₃ of 3 % of |J₁|
# on the 5.89 Å bonds makes q = 0 the lowest lattice-relaxed collinear state of the conventional cell
# (the only one with all its third-neighbour bonds parallel), as the paper's DFT finds; without it
# annealed runs end in other collinear states (docs/model_engine.md, "MgCr2O4 calibration").
J3_EV = 0.5e-3
#: shell window of J₃ (Å): switched on from 5.3 to 5.6 Å, off from 6.1 to 6.4 Å, around 5.89 Å
J3_RMIN_A, J3_RMIN_ON_A, J3_TAPER_ON_A, J3_TAPER_CUT_A = 5.3, 5.6, 6.1, 6.4


def structure() -> Structure:
    return Structure.from_spacegroup(
        "Fd-3m:2", Lattice.cubic(LATTICE_A), ["Mg", "Cr", "O"],
        [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [O32E_U, O32E_U, O32E_U]],
    )


def terms(state: SLDState) -> list[Term]:
    return [
        morse_network(state, BONDS),
        Exchange(
            "Cr", "Cr", "linear", {"j0_ev": J1_EV, "r0_a": J1_R0_A, "slope_ev_per_a": J1_SLOPE_EV_PER_A},
            rcut_a=J1_TAPER_CUT_A, r_on_a=J1_TAPER_ON_A, offset=EXCHANGE_OFFSET,
        ),
        Exchange(
            "Cr", "Cr", "constant", {"j0_ev": J3_EV}, rcut_a=J3_TAPER_CUT_A, r_on_a=J3_TAPER_ON_A,
            rmin_a=J3_RMIN_A, rmin_on_a=J3_RMIN_ON_A,
        ),
    ]


PRESETS = (
    Preset(
        name="mgcr2o4",
        structure=structure,
        moments_mub={"Cr": MOMENT_CR_MUB},
        terms=terms,
        order_parameters=(OrderParameter.SUBLATTICE_EQ6, OrderParameter.C_OVER_A, OrderParameter.COLLINEARITY),
        conventional_cell_atoms=56,
        description="MgCr2O4 spinel, spin-Jahn-Teller antiferromagnet (conventional cell, 56 atoms)",
    ),
)
