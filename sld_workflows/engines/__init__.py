"""Engines evaluate a state: energy, forces, effective fields, stress.

Every engine fulfils :class:`~sld_workflows.engines.base.Engine` (one method, ``evaluate``).
Engines know nothing of FireWorks or MongoDB.
"""

from sld_workflows.evaluation import Engine, Evaluation

__all__ = ["Engine", "Evaluation"]
