"""bcc Fe: ferromagnet with a shifted-force Morse lattice and Ma–Dudarev exchange.

Structure: Im-3m, a = 2.8665 Å (experiment), 2 atoms per cubic cell; nearest neighbours at 2.482 Å
(8), 2.866 Å (6), 4.054 Å (12).
"""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from sld_workflows.engines.model.presets._base import OrderParameter, Preset
from sld_workflows.engines.model.terms import Exchange, MorsePair, Term
from sld_workflows.state import SLDState

#: experimental lattice constant (Å); the Morse below is at equilibrium slightly above it, so the
#: cell is under a small compressive stress at T = 0 (docs/model_engine.md)
LATTICE_A = 2.8665

#: moment per Fe (μB)
MOMENT_FE_MUB = 2.2

# Lattice: the Morse fit of Girifalco & Weizer, Phys. Rev. 114, 687 (1959) for Fe. A cutoff of
# 8 Å with the shifted-force correction keeps energy and force continuous; shorter cutoffs (5–6 Å)
# jump as whole shells cross them.
MORSE_D0_EV = 0.4174
MORSE_ALPHA_PER_A = 1.3885
MORSE_R0_A = 2.845
MORSE_RCUT_A = 8.0

# Exchange: the Ma–Dudarev/SPILADY shape J(r) = J₀(1 − r/r_c)³. SPILADY's J₀ = 0.870 eV is for
# spins of length 1.1, i.e. × S² = 1.21 for our unit spins, and is scaled by 0.88 to bring the
# classical T_c near the target: J₀ = 0.93 eV (J₁ = 35.9 meV, J₂ = 12.2 meV).
EXCHANGE_J0_EV = 0.93
EXCHANGE_RCUT_A = 3.75
#: energy referenced to the ferromagnetic state (s·s − 1), so the lattice constant is that of the
#: Morse term in the ordered state
EXCHANGE_OFFSET = 1.0


def structure() -> Structure:
    return Structure.from_spacegroup("Im-3m", Lattice.cubic(LATTICE_A), ["Fe"], [[0, 0, 0]])


def terms(state: SLDState) -> list[Term]:
    return [
        MorsePair("Fe", "Fe", d0_ev=MORSE_D0_EV, alpha_per_a=MORSE_ALPHA_PER_A, r0_a=MORSE_R0_A, rcut_a=MORSE_RCUT_A),
        Exchange("Fe", "Fe", "ma_dudarev", {"j0_ev": EXCHANGE_J0_EV}, rcut_a=EXCHANGE_RCUT_A, offset=EXCHANGE_OFFSET),
    ]


PRESETS = (
    Preset(
        name="bcc_fe",
        structure=structure,
        moments_mub={"Fe": MOMENT_FE_MUB},
        terms=terms,
        order_parameters=(OrderParameter.MAGNETISATION_VECTOR,),
        description="bcc Fe ferromagnet, 2 atoms per cubic cell",
    ),
)
