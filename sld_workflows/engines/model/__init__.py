"""Embedded spin-lattice model engine and material presets (docs/model_engine.md)."""

from sld_workflows.engines.model.engine import ModelEngine

__all__ = ["ModelEngine"]
