"""The sum of several engines: E = Σ_k E_k, and every result adds part by part.

What the sum computes is derived from what its parts declare (``implemented_properties``, see
:class:`~sld_workflows.evaluation.Property`):

- ``energy``, ``forces``, ``fields``: always summed (a part that does not declare forces or fields
  returns zeros for them, so it contributes nothing);
- ``stress``: the sum if every part declares it (and returned one), else ``None`` — a harmonic
  Einstein crystal has no stress, so neither has a sum that contains one;
- ``field_parallel``: the sum over the parts that depend on the spins (declare ``fields``); declared
  when each of them declares ``field_parallel``. A spin-independent part (harmonic springs) has a
  zero parallel component and contributes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from monty.json import MontyDecoder, MSONable

from sld_workflows.evaluation import Evaluation, Property, implemented_properties
from sld_workflows.state import SLDState


def _sum(arrays: list[np.ndarray]) -> np.ndarray:
    # np.sum over a stacked axis adds in part order, as the run spec's former SumEngine did (bit-identical)
    return np.sum(arrays, axis=0)


@dataclasses.dataclass(frozen=True)
class CompositeEngine(MSONable):
    """Sum of ``engines`` (each an engine with ``evaluate``; MSONable parts make the sum MSONable)."""

    engines: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "engines", tuple(self.engines))
        if not self.engines:
            raise ValueError("CompositeEngine needs at least one engine")

    @property
    def implemented_properties(self) -> frozenset[Property]:
        parts = [implemented_properties(e) for e in self.engines]
        declared = {Property.ENERGY} | (set().union(*parts) & {Property.FORCES, Property.FIELDS})
        if all(Property.STRESS in p for p in parts):
            declared.add(Property.STRESS)
        spin_parts = [p for p in parts if Property.FIELDS in p]
        if spin_parts and all(Property.FIELD_PARALLEL in p for p in spin_parts):
            declared.add(Property.FIELD_PARALLEL)
        return frozenset(declared)

    def evaluate(self, state: SLDState) -> Evaluation:
        evaluations = [engine.evaluate(state) for engine in self.engines]
        declared = self.implemented_properties
        stresses = [e.stress_ev_per_a3 for e in evaluations]
        stress = _sum(stresses) if Property.STRESS in declared and all(s is not None for s in stresses) else None
        parallels = [e.field_parallel_ev_per_mub for e, engine in zip(evaluations, self.engines, strict=True)
                     if Property.FIELDS in implemented_properties(engine)]
        parallel = (_sum(parallels) if Property.FIELD_PARALLEL in declared and all(p is not None for p in parallels)
                    else None)
        return Evaluation(
            sum(e.energy_ev for e in evaluations),
            _sum([e.forces_ev_per_a for e in evaluations]),
            _sum([e.fields_ev_per_mub for e in evaluations]),
            stress,
            field_parallel_ev_per_mub=parallel,
            info={"terms": [type(engine).__name__ for engine in self.engines]},
        )

    def as_dict(self) -> dict[str, Any]:
        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "engines": [e.as_dict() for e in self.engines]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompositeEngine:
        # "terms": the key of the run spec's former SumEngine (sld_workflows.run.engines), in stored dicts
        parts = d["engines"] if "engines" in d else d["terms"]
        decoder = MontyDecoder()
        return cls(tuple(decoder.process_decoded(p) for p in parts))
