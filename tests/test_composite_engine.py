"""Engines declare what they compute (``implemented_properties``), the composite engine derives its
declaration from its parts and sums everything they give, and engine dicts stored before the two sum
classes were merged still load and evaluate as they did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from monty.json import MontyDecoder

from sld_workflows.engines.analytic import HarmonicEngine, HeisenbergEngine, ZeemanEngine
from sld_workflows.engines.composite import CompositeEngine
from sld_workflows.engines.model.engine import ModelEngine
from sld_workflows.engines.vasp.engine import VaspEngine
from sld_workflows.evaluation import Evaluation, Property, implemented_properties
from sld_workflows.state import SLDState

BEFORE = Path(__file__).parent / "data" / "engines_before_issue8.json"
P = Property


@pytest.fixture()
def parts(small_magnet):
    state = small_magnet
    bonds = tuple((i, (i + 1) % state.n_sites, 0.02) for i in range(state.n_sites))
    return (HeisenbergEngine(bonds, (0.0, 0.01, 0.0)), ZeemanEngine((0.0, 0.0, 0.03)),
            HarmonicEngine(tuple(map(tuple, state.positions.tolist())), 1.5))


@pytest.mark.parametrize("cls", [ZeemanEngine, HeisenbergEngine, HarmonicEngine, ModelEngine, VaspEngine])
def test_every_engine_class_declares_its_properties(cls):
    declared = cls.implemented_properties
    assert isinstance(declared, frozenset) and declared and declared <= set(Property)
    assert P.ENERGY in declared


def assert_declaration_is_kept(engine, state: SLDState) -> Evaluation:
    """What ``engine`` returns matches what it declares (see Property: undeclared forces/fields are
    zeros, undeclared stress/field_parallel are None)."""
    declared = implemented_properties(engine)
    e = engine.evaluate(state)
    assert (e.stress_ev_per_a3 is not None) == (P.STRESS in declared), type(engine).__name__
    assert (e.field_parallel_ev_per_mub is not None) == (P.FIELD_PARALLEL in declared), type(engine).__name__
    if P.FORCES not in declared:
        assert not np.any(e.forces_ev_per_a)
    if P.FIELDS not in declared:
        assert not np.any(e.fields_ev_per_mub)
    return e


def test_analytic_and_model_engines_return_what_they_declare(parts, small_magnet):
    from sld_workflows.engines.model.presets import make_preset

    state = small_magnet.replace(positions=small_magnet.positions + 0.05)
    for engine in parts:
        assert_declaration_is_kept(engine, state)
    preset_state, model = make_preset("bcc_fe", supercell=(2, 2, 2))
    assert_declaration_is_kept(model, preset_state)


def test_composite_sums_everything_its_parts_give(parts, small_magnet):
    state = small_magnet.replace(positions=small_magnet.positions + 0.05)
    heisenberg, zeeman, harmonic = parts
    e = [p.evaluate(state) for p in parts]
    both = CompositeEngine((heisenberg, zeeman))
    assert both.implemented_properties == {P.ENERGY, P.FIELDS, P.FIELD_PARALLEL, P.STRESS}
    s = assert_declaration_is_kept(both, state)
    assert np.array_equal(s.field_parallel_ev_per_mub, e[0].field_parallel_ev_per_mub + e[1].field_parallel_ev_per_mub)
    assert np.array_equal(s.stress_ev_per_a3, e[0].stress_ev_per_a3 + e[1].stress_ev_per_a3)

    total = CompositeEngine(parts)
    # the springs have no stress, so neither has the sum; they do not depend on the spins, so the sum
    # still has the parallel field (the former analytic CompositeEngine dropped it)
    assert total.implemented_properties == {P.ENERGY, P.FORCES, P.FIELDS, P.FIELD_PARALLEL}
    t = assert_declaration_is_kept(total, state)
    assert t.energy_ev == e[0].energy_ev + e[1].energy_ev + e[2].energy_ev
    assert np.array_equal(t.forces_ev_per_a, e[0].forces_ev_per_a + e[1].forces_ev_per_a + e[2].forces_ev_per_a)
    assert np.array_equal(t.fields_ev_per_mub, e[0].fields_ev_per_mub + e[1].fields_ev_per_mub)
    assert np.array_equal(t.field_parallel_ev_per_mub, s.field_parallel_ev_per_mub)
    assert np.any(t.forces_ev_per_a) and np.any(t.field_parallel_ev_per_mub)
    assert t.info["terms"] == ["HeisenbergEngine", "ZeemanEngine", "HarmonicEngine"]
    with pytest.raises(ValueError, match="at least one engine"):
        CompositeEngine(())


class _FieldsWithoutParallel:
    """Like constrained DFT: fields, but no parallel component."""

    implemented_properties = frozenset({P.ENERGY, P.FORCES, P.FIELDS, P.STRESS})

    def evaluate(self, state):
        n = state.n_sites
        return Evaluation(1.0, np.zeros((n, 3)), np.full((n, 3), 1e-3), np.zeros((3, 3)))


def test_a_magnetic_part_without_parallel_field_removes_it_from_the_sum(parts, small_magnet):
    heisenberg, _, harmonic = parts
    mixed = CompositeEngine((heisenberg, _FieldsWithoutParallel()))
    assert mixed.implemented_properties == {P.ENERGY, P.FORCES, P.FIELDS, P.STRESS}
    assert assert_declaration_is_kept(mixed, small_magnet).field_parallel_ev_per_mub is None
    springs_only = CompositeEngine((harmonic,))
    assert springs_only.implemented_properties == {P.ENERGY, P.FORCES}
    assert_declaration_is_kept(springs_only, small_magnet)


def test_composite_round_trips_through_its_dict(parts, small_magnet):
    engine = CompositeEngine(parts)
    again = MontyDecoder().process_decoded(json.loads(json.dumps(engine.as_dict())))
    assert isinstance(again, CompositeEngine) and again.as_dict() == engine.as_dict()
    a, b = engine.evaluate(small_magnet), again.evaluate(small_magnet)
    assert a.energy_ev == b.energy_ev and np.array_equal(a.fields_ev_per_mub, b.fields_ev_per_mub)


def test_engine_dicts_stored_before_the_merge_still_load():
    """Dicts (and evaluations) written by the code before issue 8: the run spec's SumEngine
    (``sld_workflows.run.engines``, parts under ``terms``) and the analytic CompositeEngine."""
    stored = json.loads(BEFORE.read_text())
    state = SLDState.from_dict(stored["state"])
    state = state.replace(positions=state.positions + 0.1)  # as when the evaluations were made
    decoder = MontyDecoder()
    for name in ("SumEngine", "CompositeEngine"):
        engine = decoder.process_decoded(stored[name]["engine"])
        assert isinstance(engine, CompositeEngine), name
        now, then = engine.evaluate(state), Evaluation.from_dict(stored[name]["evaluation"])
        assert now.energy_ev == then.energy_ev, name
        for key in ("forces_ev_per_a", "fields_ev_per_mub"):
            assert np.array_equal(getattr(now, key), getattr(then, key)), (name, key)
        assert now.stress_ev_per_a3 is None and then.stress_ev_per_a3 is None
    # SumEngine summed the parallel field too: bit-identical; CompositeEngine dropped it, now it is the same sum
    sum_then = Evaluation.from_dict(stored["SumEngine"]["evaluation"])
    assert np.array_equal(now.field_parallel_ev_per_mub, sum_then.field_parallel_ev_per_mub)
    assert Evaluation.from_dict(stored["CompositeEngine"]["evaluation"]).field_parallel_ev_per_mub is None
