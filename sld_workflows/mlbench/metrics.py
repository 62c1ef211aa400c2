"""Errors of a model on the test frames, in the units of the paper's Fig. 3."""

from __future__ import annotations

import numpy as np

from sld_workflows.mlbench.frames import FrameSet, transverse


def mae(model, test: FrameSet) -> dict[str, float]:
    """Mean absolute errors: energy (meV/atom), force components (meV/Å), transverse magnetic-force
    components on the magnetic sites (meV/μB; the part ⊥ M is what constrained-moment DFT supervises)."""
    energy, forces, magforces = model.predict(test)
    mag = test.magnetic
    d_m = (transverse(magforces, test.magmom_mub) - transverse(test.magforces_ev_per_mub, test.magmom_mub))[:, mag]
    return {
        "energy_mev_per_atom": float(1e3 * np.mean(np.abs(energy - test.energy_ev)) / test.n_atoms),
        "force_mev_per_a": float(1e3 * np.mean(np.abs(forces - test.forces_ev_per_a))),
        "magforce_mev_per_mub": float(1e3 * np.mean(np.abs(d_m))),
    }


def baseline_mae(test: FrameSet) -> dict[str, float]:
    """Errors of predicting zero forces/magnetic forces and the test mean energy: the scale a model must beat."""
    mag = test.magnetic
    return {
        "energy_mev_per_atom": float(1e3 * np.mean(np.abs(test.energy_ev - test.energy_ev.mean())) / test.n_atoms),
        "force_mev_per_a": float(1e3 * np.mean(np.abs(test.forces_ev_per_a))),
        "magforce_mev_per_mub": float(1e3 * np.mean(np.abs(
            transverse(test.magforces_ev_per_mub, test.magmom_mub)[:, mag]))),
    }
