"""Run-time overrides of a preset's terms: switch a term group off or rescale it.

``overrides`` maps a term group to a mapping of keys:

- groups: ``pair`` (Morse / Morse network), ``exchange`` (Heisenberg J(r)), ``xxz`` (anisotropic
  exchange λJ), ``dmi``, ``anisotropy`` (single-ion), ``zeeman``;
- keys for every group: ``enabled`` (bool), ``scale`` (number multiplying the term's energy);
  ``exchange`` also takes ``slope_scale`` (multiplies dJ/dr of the ``linear`` form and β of the
  ``exponential`` form, nothing for ``constant``: 0 removes the spin-lattice coupling while keeping
  J at r₀; the Ma–Dudarev and Bethe–Slater forms reject it).

Unknown groups or keys, or bad values, raise ``SpecError(key, reason)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sld_workflows.engines.model.terms import Exchange, Term
from sld_workflows.errors import SpecError

#: term groups and the override keys each accepts
OVERRIDE_KEYS: dict[str, tuple[str, ...]] = {
    "pair": ("enabled", "scale"),
    "exchange": ("enabled", "scale", "slope_scale"),
    "xxz": ("enabled", "scale"),
    "dmi": ("enabled", "scale"),
    "anisotropy": ("enabled", "scale"),
    "zeeman": ("enabled", "scale"),
}

#: the override group of each term kind
GROUP_OF_KIND = {
    "morse": "pair", "morse_network": "pair", "exchange": "exchange", "dmi": "dmi",
    "single_ion": "anisotropy", "zeeman": "zeeman",
}


def check_overrides(overrides: dict | None) -> dict[str, dict[str, Any]]:
    """Validated copy of ``overrides`` (``{}`` for None)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise SpecError("overrides", f"must be a mapping of term groups, got {type(overrides).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for group, keys in overrides.items():
        if group not in OVERRIDE_KEYS:
            raise SpecError(f"overrides.{group}", f"unknown term group; known: {', '.join(OVERRIDE_KEYS)}")
        if not isinstance(keys, dict):
            raise SpecError(f"overrides.{group}", "must be a mapping such as {enabled: false} or {scale: 0.5}")
        for key, value in keys.items():
            where = f"overrides.{group}.{key}"
            if key not in OVERRIDE_KEYS[group]:
                raise SpecError(where, f"unknown key; known: {', '.join(OVERRIDE_KEYS[group])}")
            if key == "enabled":
                if not isinstance(value, bool):
                    raise SpecError(where, f"must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise SpecError(where, f"must be a finite number, got {value!r}")
        out[group] = dict(keys)
    return out


def _scale_slope(term: Exchange, factor: float) -> None:
    if term.form == "linear":
        term.params["slope_ev_per_a"] *= factor
    elif term.form == "exponential":
        term.params["beta_per_a"] *= factor
    elif term.form != "constant":
        raise SpecError(
            "overrides.exchange.slope_scale",
            f"only for the linear and exponential J(r) forms, this preset uses {term.form!r}",
        )


def apply_overrides(terms: list[Term], overrides: dict[str, dict[str, Any]]) -> list[Term]:
    """Switch off / rescale ``terms`` (modified in place; the disabled ones are left out)."""
    out = []
    for term in terms:
        ov = overrides.get(GROUP_OF_KIND[term.kind], {})
        if ov.get("enabled", True) is False:
            continue
        term.scale = term.scale * float(ov.get("scale", 1.0))
        if isinstance(term, Exchange):
            xov = overrides.get("xxz", {})
            if xov.get("enabled", True) is False:
                term.xxz_ratio = 0.0
            term.xxz_scale = term.xxz_scale * float(xov.get("scale", 1.0))
            if "slope_scale" in ov:
                _scale_slope(term, float(ov["slope_scale"]))
        out.append(term)
    return out
