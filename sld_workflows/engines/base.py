"""Re-export of the engine protocol; it lives in :mod:`sld_workflows.evaluation` so that the
dynamics layer can use ``Evaluation`` without importing any engine."""

from sld_workflows.evaluation import Engine, Evaluation, perpendicular_part

__all__ = ["Engine", "Evaluation", "perpendicular_part"]
