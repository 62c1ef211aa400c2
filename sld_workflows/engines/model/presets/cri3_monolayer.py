"""CrI3 monolayer: honeycomb ferromagnet with its easy axis out of the plane (XXZ exchange).

Structure: P-31m (No. 162), bulk a = 6.867 Å, 20 Å of vacuum along c; Cr 2c, I 6k (x, 0, z) with
x = 0.6416 (from a PBE POSCAR) and the I planes at ±1.56 Å: Cr₂I₆, Cr–Cr 3.965 Å (3 neighbours),
Cr–I 2.703 Å.
"""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from sld_workflows.engines.model.presets._base import OrderParameter, Preset
from sld_workflows.engines.model.presets._network import morse_network
from sld_workflows.engines.model.terms import Exchange, Term
from sld_workflows.state import SLDState

LATTICE_A = 6.867
VACUUM_C_A = 20.0
IODINE_X = 0.6416
IODINE_HEIGHT_A = 1.56

#: moment per Cr (μB), S = 3/2
MOMENT_CR_MUB = 3.0

#: Morse network (cutoff Å, stiffness eV/Å²): Cr–I first shell, I–I and Cr–Cr springs
BONDS = {("Cr", "I"): (3.2, 8.0), ("I", "I"): (4.1, 2.0), ("Cr", "Cr"): (4.2, 2.0)}

# Exchange: Lado & Fernández-Rossier, 2D Mater. 4, 035002 (2017), J = 2.2 meV and the anisotropic
# (XXZ) exchange Λ = 0.09 meV for S = 3/2; times S² = 9/4 for unit spins.
J1_EV = 4.95e-3
XXZ_LAMBDA_EV = 0.2025e-3
#: the nearest-neighbour Cr–Cr distance of the reference, where J(r) = J₁
J1_R0_A = 3.965
#: dJ/dr: DFT does not agree on its sign under strain, so the preset has none
J1_SLOPE_EV_PER_A = 0.0
#: J is tapered to zero between these radii (Å): after the first shell, before the second (6.87 Å)
TAPER_ON_A, TAPER_CUT_A = 4.6, 5.2
#: energy referenced to the ferromagnetic state
EXCHANGE_OFFSET = 1.0


def structure() -> Structure:
    return Structure.from_spacegroup(
        162, Lattice.hexagonal(LATTICE_A, VACUUM_C_A), ["Cr", "I"],
        [[1 / 3, 2 / 3, 0.0], [IODINE_X, 0.0, IODINE_HEIGHT_A / VACUUM_C_A]],
    )


def terms(state: SLDState) -> list[Term]:
    return [
        morse_network(state, BONDS),
        Exchange(
            "Cr", "Cr", "linear", {"j0_ev": J1_EV, "r0_a": J1_R0_A, "slope_ev_per_a": J1_SLOPE_EV_PER_A},
            rcut_a=TAPER_CUT_A, r_on_a=TAPER_ON_A, offset=EXCHANGE_OFFSET,
            xxz_ratio=XXZ_LAMBDA_EV / J1_EV, xxz_axis=(0.0, 0.0, 1.0),
        ),
    ]


PRESETS = (
    Preset(
        name="cri3_monolayer",
        structure=structure,
        moments_mub={"Cr": MOMENT_CR_MUB},
        terms=terms,
        order_parameters=(OrderParameter.MAGNETISATION_Z,),
        description="CrI3 monolayer, out-of-plane honeycomb ferromagnet",
    ),
)
