"""Run specification: one YAML file (or mapping) describing a spin-lattice dynamics run.

``RunSpec.from_file(path)`` (or ``RunSpec.from_dict(mapping)``) validates the whole specification,
builds the initial state and the engine once (so every error is found before anything is written),
and returns a frozen :class:`RunSpec`. Errors are :class:`~sld_workflows.errors.SpecError` with a
dotted key (``dynamics.dt_fs``) and a one-line reason. The schema is documented in ``docs/run_spec.md``.

Modules, by job: :mod:`sld_workflows.schema` (the value checks, shared with the engine sections),
:mod:`.structure` and :mod:`.sections` (spins, velocities, dynamics, output), the engine sections of
:mod:`sld_workflows.engines.registry` (one registration per engine kind), :mod:`.runspec` (the
spec and its builder) and :mod:`.loading` (the YAML file). Initial conditions (random spins,
Maxwell–Boltzmann velocities) are pure functions of :mod:`sld_workflows.dynamics.initial`.

``RunSpec.as_dict()`` holds the *normalised* specification (defaults filled in, file paths made
absolute), so ``RunSpec.from_dict(spec.as_dict()).as_dict() == spec.as_dict()`` and FireWorks can
store it.
"""

from sld_workflows.run.spec.runspec import TOP_KEYS, RunSpec

__all__ = ["TOP_KEYS", "RunSpec"]
