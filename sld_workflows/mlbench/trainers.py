"""The trainer registry: ``name -> class`` with ``fit(train, validation, seed) -> model`` and
``model.predict(frames) -> (energy (F,), forces (F, N, 3), magnetic forces (F, N, 3))`` in eV, eV/Å, eV/μB.

| name | what | runs on |
|---|---|---|
| ``ridge`` | linear pair + s·s radial features (:mod:`.ridge`) | numpy, seconds |
| ``spinnet`` | compact spin-aware network, ~18k parameters (:mod:`.spinnet`) | PyTorch CPU, 1 thread, minutes |
| ``deepmd`` | DeePMD-kit spin model through ``dp`` (:mod:`.deepmd`) | DeePMD-kit; hours per model on CPU |
"""

from __future__ import annotations

from collections.abc import Callable

from sld_workflows.mlbench import BenchmarkError


def _ridge():
    from sld_workflows.mlbench.ridge import RidgeTrainer

    return RidgeTrainer


def _spinnet():
    from sld_workflows.mlbench.spinnet import SpinNetTrainer

    return SpinNetTrainer


def _deepmd():
    from sld_workflows.mlbench.deepmd import DeepMDTrainer

    return DeepMDTrainer


class TrainerRegistry:
    """Names to (lazily imported) trainer classes; :meth:`create` builds one with options."""

    def __init__(self) -> None:
        self._loaders: dict[str, Callable[[], type]] = {}

    def register(self, name: str, loader: Callable[[], type]) -> None:
        self._loaders[name] = loader

    def names(self) -> tuple[str, ...]:
        return tuple(self._loaders)

    def create(self, name: str, **options):
        if name not in self._loaders:
            raise BenchmarkError(f"unknown trainer {name!r} (known: {', '.join(self.names())})")
        return self._loaders[name]()(**options)


TRAINERS = TrainerRegistry()
TRAINERS.register("ridge", _ridge)
TRAINERS.register("spinnet", _spinnet)
TRAINERS.register("deepmd", _deepmd)
