"""The coupled step: phase contract, bit-for-bit replay from (seed, step), ensembles, errors."""

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.dynamics.step import advance, complete, midpoint_state, propagate
from sld_workflows.engines.analytic import HarmonicEngine, HeisenbergEngine
from sld_workflows.engines.composite import CompositeEngine
from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState


def coupled_system():
    fe = Structure.from_spacegroup("Im-3m", Lattice.cubic(2.8665), ["Fe"], [[0, 0, 0]])
    fe.make_supercell([3, 3, 3])
    rng = np.random.default_rng(0)
    state = SLDState.from_structure(fe, spins=rng.normal(size=(54, 3)), moments={"Fe": 2.2},
                                    velocities=rng.normal(scale=3e-3, size=(54, 3)))
    engine = CompositeEngine((HeisenbergEngine.from_cutoff(state, 0.04, 2.6),
                              HarmonicEngine(tuple(map(tuple, state.positions)), 5.0)))
    return state, engine


@pytest.mark.parametrize("scheme", ["sib", "sib-fixed-field"])
@pytest.mark.parametrize("ensemble", ["nve", "nvt", "spin-only"])
def test_replaying_any_step_from_stored_data_is_bit_identical(scheme, ensemble):
    """Run 25 steps; then recompute every step k from the JSON of state k-1 and its evaluation
    (as a resumed workflow would): identical bits, including the noise drawn from (seed, k)."""
    state, engine = coupled_system()
    settings = DynamicsSettings(dt_fs=0.5, alpha=0.3, temperature=500.0, ensemble=ensemble, spin_scheme=scheme, seed=99)
    ev = engine.evaluate(state)
    history = [(state, ev)]
    for _ in range(25):
        state, ev = advance(state, ev, settings, engine.evaluate)
        history.append((state, ev))
    for k in (1, 7, 25):
        prev_state = SLDState.from_dict(json.loads(json.dumps(history[k - 1][0].as_dict())))
        prev_eval = Evaluation.from_dict(json.loads(json.dumps(history[k - 1][1].as_dict())))
        replayed, _ = advance(prev_state, prev_eval, settings, engine.evaluate)
        assert replayed.same_as(history[k][0])
    if ensemble == "spin-only":
        assert np.array_equal(history[-1][0].positions, history[0][0].positions)
    else:
        assert not np.array_equal(history[-1][0].positions, history[0][0].positions)


def test_phases_compose_to_advance_and_count_engine_calls():
    state, engine = coupled_system()
    calls = []

    def counting(s):
        calls.append(s.unit_spins)
        return engine.evaluate(s)

    ev = engine.evaluate(state)
    for scheme, expected in (("sib", [False, True]), ("sib-fixed-field", [True])):
        settings = DynamicsSettings(dt_fs=0.5, alpha=0.1, temperature=100.0, spin_scheme=scheme, seed=1)
        calls.clear()
        via_advance, _ = advance(state, ev, settings, counting)
        assert calls == expected  # midpoint state (non-unit spins) first, then the new state
        mid = midpoint_state(state, ev, settings)
        provisional = propagate(state, ev, settings, engine.evaluate(mid) if mid is not None else None)
        by_phases = complete(provisional, engine.evaluate(provisional), settings)
        assert by_phases.same_as(via_advance)
        assert via_advance.step == state.step + 1 and via_advance.time_fs == state.time_fs + 0.5


def test_step_errors_are_clear():
    state, engine = coupled_system()
    ev = engine.evaluate(state)
    settings = DynamicsSettings(dt_fs=0.5, spin_scheme="sib")
    with pytest.raises(ValueError, match="needs the evaluation of the midpoint state"):
        propagate(state, ev, settings, None)
    with pytest.raises(ValueError, match="needs an engine that returns stress"):
        propagate(state, ev, settings.replace(ensemble="npt", spin_scheme="sib-fixed-field"))
    midpoint = state.replace(spins=0.9 * state.spins, unit_spins=False)
    with pytest.raises(ValueError, match="must start from a state with unit spins"):
        propagate(midpoint, ev, settings, ev)
    small = Evaluation(0.0, np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="engine returned 3 sites for a state of 54 sites"):
        propagate(state, small, settings.replace(spin_scheme="sib-fixed-field"))
