"""Training-data benchmark for spin-aware ML potentials (the seed paper's Fig. 3) as a tool.

- :mod:`.generate` — a small campaign on the model engine (arms ``sld``, ``reference``, ``test``) written in
  the export format (extxyz, MACE-style ``REF_*`` keys, ``manifest.json``); for development, tests and
  users without a campaign store;
- :mod:`.frames` — :func:`~.frames.load_arm_frames` (the one adapter to the data source) and
  :class:`~.frames.FrameSet` (arrays of one arm);
- :mod:`.protocols` — fixed count, fixed budget, strided SLD training sets, split by initial structure;
- :mod:`.trainers` — the trainer registry: ``ridge``, ``spinnet`` (PyTorch), ``deepmd`` (DeePMD-kit ``dp``);
- :mod:`.benchmark` — the whole benchmark: train × seeds, evaluate on the test trajectories, JSON + figure.
"""

from sld_workflows.errors import SLDError


class BenchmarkError(SLDError, ValueError):
    """Bad input to the benchmark (missing arm, budget larger than the data, unknown trainer, ...)."""
