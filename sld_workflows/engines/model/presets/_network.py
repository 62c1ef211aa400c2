"""The Morse bond network of the oxide and halide presets, tied to the reference structure.

Every pair of the listed species closer than the listed cutoff in the reference becomes a fixed bond
with r₀ = its reference length, so the reference is a force- and stress-free minimum of the lattice
term. This gives stable harmonic phonons about the reference without Ewald sums (a real
Buckingham + Coulomb force field would need long-range electrostatics); the stiffness k = 2D₀α² is
chosen per species pair, of the order of 5–15 eV/Å² for cation–anion bonds.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sld_workflows.engines.model.terms import MorseNetwork
from sld_workflows.geometry import fixed_bonds
from sld_workflows.state import SLDState

#: Morse width of every network bond (Å⁻¹); the well depth follows from the stiffness, D₀ = k/(2α²)
NETWORK_ALPHA_PER_A = 2.0

#: (species a, species b) -> (bond cutoff in the reference, Å; stiffness k = 2D₀α², eV/Å²)
BondTable = Mapping[tuple[str, str], tuple[float, float]]


def morse_network(state: SLDState, bonds: BondTable) -> MorseNetwork:
    """One :class:`MorseNetwork` holding the bonds of every species pair of ``bonds``, in table order."""
    ii, jj, ff, rr, dd, aa = [], [], [], [], [], []
    for (a, b), (rmax, k) in bonds.items():
        i, j, f, r0 = fixed_bonds(state.positions, state.cell, state.species, a, b, rmax)
        ii.append(i)
        jj.append(j)
        ff.append(f)
        rr.append(r0)
        dd.append(np.full(len(i), k / (2.0 * NETWORK_ALPHA_PER_A**2)))
        aa.append(np.full(len(i), NETWORK_ALPHA_PER_A))
    return MorseNetwork(
        i=np.concatenate(ii), j=np.concatenate(jj), frac_ref=np.concatenate(ff),
        d0_ev=np.concatenate(dd), alpha_per_a=np.concatenate(aa), r0_a=np.concatenate(rr),
    )
