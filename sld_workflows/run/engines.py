"""Engines the run spec can build directly from the ``analytic`` engine section.

:class:`SumEngine` adds the evaluations of several engines (energies, forces, fields, stress), so a
spec can combine the analytic terms of :mod:`sld_workflows.engines.analytic` (Heisenberg exchange,
Zeeman field, harmonic springs) into one small spin-lattice system with forces *and* fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from monty.json import MontyDecoder, MSONable

from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState


@dataclasses.dataclass(frozen=True)
class SumEngine(MSONable):
    """E = Σ_k E_k; forces, perpendicular fields and parallel field components add term by term.

    Stress is the sum when every term returns one, else ``None`` (e.g. the harmonic term has none).
    """

    terms: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("SumEngine needs at least one term")
        object.__setattr__(self, "terms", tuple(self.terms))

    @property
    def has_stress(self) -> bool:
        from sld_workflows.engines.analytic import HarmonicEngine

        return not any(isinstance(t, HarmonicEngine) for t in self.terms)

    def evaluate(self, state: SLDState) -> Evaluation:
        evaluations = [term.evaluate(state) for term in self.terms]
        energy = sum(e.energy_ev for e in evaluations)
        forces = np.sum([e.forces_ev_per_a for e in evaluations], axis=0)
        fields = np.sum([e.fields_ev_per_mub for e in evaluations], axis=0)
        stresses = [e.stress_ev_per_a3 for e in evaluations]
        stress = None if any(s is None for s in stresses) else np.sum(stresses, axis=0)
        parallels = [e.field_parallel_ev_per_mub for e in evaluations]
        # a term without a parallel component (harmonic: no magnetism) contributes zero to it
        magnetic_terms = [p for p, e in zip(parallels, evaluations, strict=True)
                          if p is not None or np.any(e.fields_ev_per_mub)]
        parallel = None if any(p is None for p in magnetic_terms) or not magnetic_terms else np.sum(
            magnetic_terms, axis=0)
        return Evaluation(energy, forces, fields, stress, field_parallel_ev_per_mub=parallel,
                          info={"terms": [type(t).__name__ for t in self.terms]})

    def as_dict(self) -> dict[str, Any]:
        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "terms": [t.as_dict() for t in self.terms]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SumEngine:
        decoder = MontyDecoder()
        return cls(tuple(decoder.process_decoded(t) for t in d["terms"]))
