"""The embedded model engine: a sum of analytic spin-lattice terms (see :mod:`.terms`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from monty.json import MSONable

from sld_workflows.engines.analytic import split_field
from sld_workflows.engines.model.terms import Accumulator, Context, Term, term_from_dict
from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState


class ModelEngine(MSONable):
    """E(r, cell, s) = Σ terms; analytic forces, fields (perpendicular part and parallel component)
    and stress (σ = (1/V)∂E/∂ε, ASE sign).

    - ``terms``: list of :class:`~.terms.Term` (or their dicts);
    - ``n_sites``: number of sites the engine was built for (fixed-bond terms index sites), or None;
    - ``skin_a``: Verlet skin (Å); lists are rebuilt when an atom moved more than skin/2 or the cell
      changed;
    - ``label``: free text (the preset name and overrides).
    """

    def __init__(
        self, terms: list[Term | dict], n_sites: int | None = None, skin_a: float = 0.5, label: str = ""
    ) -> None:
        self.terms = [t if isinstance(t, Term) else term_from_dict(t) for t in terms]
        self.n_sites = None if n_sites is None else int(n_sites)
        self.skin_a = float(skin_a)
        self.label = str(label)
        self._cache: dict[Any, Any] = {"skin_a": self.skin_a}

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, state: SLDState) -> Evaluation:
        if self.n_sites is not None and state.n_sites != self.n_sites:
            raise ValueError(
                f"ModelEngine '{self.label}' was built for {self.n_sites} sites, state has {state.n_sites}"
            )
        ctx = Context(state.positions, state.cell, state.pbc, state.spins, state.moments, state.species)
        acc = Accumulator(state.n_sites)
        for term in self.terms:
            term.add(ctx, acc, self._cache)
        mu = state.moments
        magnetic = mu > 0
        safe_mu = np.where(magnetic, mu, 1.0)
        full = np.where(magnetic[:, None], -acc.grad_s / safe_mu[:, None], 0.0)
        perp, par = split_field(full, state.spins)
        stress = acc.virial / state.volume_a3
        return Evaluation(
            energy_ev=acc.energy,
            forces_ev_per_a=-acc.grad_r,
            fields_ev_per_mub=perp,
            stress_ev_per_a3=0.5 * (stress + stress.T),
            field_parallel_ev_per_mub=par,
            info={"engine": "model", "label": self.label},
        )

    def term_energies(self, state: SLDState) -> dict[str, float]:
        """Energy of each term (eV), keyed ``<index>:<kind>`` (diagnostics)."""
        ctx = Context(state.positions, state.cell, state.pbc, state.spins, state.moments, state.species)
        out = {}
        for k, term in enumerate(self.terms):
            acc = Accumulator(state.n_sites)
            term.add(ctx, acc, self._cache)
            out[f"{k}:{term.kind}"] = acc.energy
        return out

    # ---------------------------------------------------------------- serialisation
    def as_dict(self) -> dict[str, Any]:
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "terms": [t.as_dict() for t in self.terms],
            "n_sites": self.n_sites,
            "skin_a": self.skin_a,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEngine:
        return cls(
            terms=[term_from_dict(t) for t in d["terms"]],
            n_sites=d.get("n_sites"),
            skin_a=d.get("skin_a", 0.5),
            label=d.get("label", ""),
        )
