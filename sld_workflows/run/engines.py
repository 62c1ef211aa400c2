"""Where stored dicts of the former ``SumEngine`` (``@module: sld_workflows.run.engines``) are decoded.

The sum of engines is :class:`~sld_workflows.engines.composite.CompositeEngine`; this shim only keeps
old trajectories and stores loadable (their dicts hold the parts under ``terms``).
"""

from __future__ import annotations

from typing import Any

from sld_workflows.engines.composite import CompositeEngine


class SumEngine:
    """Decoder of a stored ``SumEngine`` dict: ``SumEngine.from_dict(d)`` is a :class:`CompositeEngine`."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompositeEngine:
        return CompositeEngine.from_dict(d)
