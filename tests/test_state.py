"""SLDState and Evaluation: construction from pymatgen, lossless JSON round trips, validation."""

import json

import numpy as np
import pytest
from monty.json import MontyDecoder, MontyEncoder
from pymatgen.core import Lattice, Structure

from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState


def fe_oxide_state(seed=0):
    structure = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.3), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rng = np.random.default_rng(seed)
    n = len(structure)
    return SLDState.from_structure(
        structure,
        spins=rng.normal(size=(n, 3)),
        moments={"Fe": 4.1},
        velocities=rng.normal(scale=1e-3, size=(n, 3)),
        time_fs=12.5,
        step=25,
    )


def test_from_structure_normalises_spins_and_zeros_nonmagnetic_sites():
    state = fe_oxide_state()
    magnetic = state.magnetic
    assert magnetic.sum() == 4 and (~magnetic).sum() == 4
    np.testing.assert_allclose(np.linalg.norm(state.spins[magnetic], axis=1), 1.0, atol=1e-15)
    assert np.all(state.spins[~magnetic] == 0.0)
    np.testing.assert_allclose(state.masses_amu[magnetic], 55.845)


def test_json_round_trip_is_bit_exact():
    state = fe_oxide_state()
    text = json.dumps(state, cls=MontyEncoder)
    back = json.loads(text, cls=MontyDecoder)
    assert isinstance(back, SLDState)
    assert back.same_as(state)


def test_structure_view_carries_vector_magmoms():
    state = fe_oxide_state()
    structure = state.structure
    np.testing.assert_allclose(structure.cart_coords, state.positions)
    magmom = np.array(structure.site_properties["magmom"])
    np.testing.assert_allclose(np.linalg.norm(magmom, axis=1), state.moments)
    again = SLDState.from_structure(structure)
    np.testing.assert_allclose(again.spins, state.spins, atol=1e-15)


def test_evaluation_round_trip_and_shape_checks():
    rng = np.random.default_rng(2)
    ev = Evaluation(-3.5, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(3, 3)),
                    moments_mub=np.ones(4), info={"scf_iterations": 12})
    back = Evaluation.from_dict(json.loads(json.dumps(ev.as_dict())))
    assert back.energy_ev == ev.energy_ev and back.info == ev.info
    assert np.array_equal(back.forces_ev_per_a, ev.forces_ev_per_a)
    with pytest.raises(ValueError, match="fields_ev_per_mub"):
        Evaluation(0.0, np.zeros((4, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="stress_ev_per_a3"):
        Evaluation(0.0, np.zeros((4, 3)), np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="not finite"):
        Evaluation(float("nan"), np.zeros((4, 3)), np.zeros((4, 3)))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"spins": np.zeros((8, 3))}, "zero-length spin"),
        ({"spins": np.zeros((7, 3))}, r"spins must have shape \(8, 3\)"),
        ({"velocities": np.zeros((8, 2))}, r"velocities must have shape \(8, 3\)"),
        ({"positions": np.zeros((9, 3))}, r"positions must have shape \(8, 3\)"),
        ({"moments": -np.ones(8)}, "moments must be >= 0"),
        ({"moments": np.ones(3)}, r"moments must have shape \(8,\)"),
        ({"cell": np.zeros((3, 3))}, "cell is singular"),
        ({"step": -1}, "step must be a non-negative integer"),
        ({"species": ("Fe",) * 7 + ("Xx",)}, "unknown element symbol 'Xx'"),
    ],
)
def test_bad_state_input_names_the_parameter(change, match):
    state = fe_oxide_state()
    with pytest.raises(ValueError, match=match):
        state.replace(**change)


def test_midpoint_states_keep_their_spin_lengths():
    state = fe_oxide_state()
    half = state.replace(spins=0.5 * state.spins, unit_spins=False)
    np.testing.assert_allclose(np.linalg.norm(half.spins[half.magnetic], axis=1), 0.5)
