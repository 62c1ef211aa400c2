"""The engine of a campaign's in-process trajectories, stored by its recipe.

A model engine's ``as_dict`` is ~70 KB of nested lists (terms, pair tables) for the 80-atom BiFeO3
cell. Stored in each of the paper campaign's 1,201 trajectory documents it makes every update of a
trajectory document (``steps_done`` after each step) cost ~9 ms on the local server, which decodes and
re-encodes the whole document, against ~1 ms for a small one. :class:`SpecEngine` stores instead the
run-spec sections that build the engine (``structure`` + ``engine``) and rebuilds it on load — the
same engine bit for bit (checked when a campaign is created). Everything that rebuilds a trajectory's
engine from its document (``sld extend``/``restart``, the step tasks) works unchanged.
DFT engines keep their own (small) ``as_dict``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from monty.json import MSONable

_BUILT: dict[str, Any] = {}


def _build(recipe: dict[str, Any]) -> Any:
    key = json.dumps(recipe, sort_keys=True, default=str)
    engine = _BUILT.get(key)
    if engine is None:
        from sld_workflows.run.spec import RunSpec

        spec = RunSpec.from_dict({"name": "engine", "structure": recipe["structure"], "engine": recipe["engine"],
                                  "spins": {"init": "ferro"},
                                  "dynamics": {"dt_fs": 1.0, "steps": 1, "temperature": 0.0, "seed": 0}})
        engine = spec.build_engine()
        if len(_BUILT) > 8:
            _BUILT.clear()
        _BUILT[key] = engine
    return copy.deepcopy(engine)  # no state shared between trajectories


class SpecEngine(MSONable):
    """Delegates to the engine built from ``recipe`` = {structure, engine} run-spec sections."""

    def __init__(self, recipe: dict[str, Any]) -> None:
        self.recipe = {"structure": dict(recipe["structure"]), "engine": dict(recipe["engine"])}
        self.engine = _build(self.recipe)

    @property
    def implemented_properties(self):
        return getattr(self.engine, "implemented_properties", frozenset())

    def evaluate(self, state):
        return self.engine.evaluate(state)

    def as_dict(self) -> dict[str, Any]:
        return {"@module": type(self).__module__, "@class": type(self).__name__, "recipe": self.recipe}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpecEngine:
        return cls(d["recipe"])
