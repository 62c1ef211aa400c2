"""One protocol for engines that run an external DFT code in a directory (VASP, ABINIT).

In the style of ASE's ``FileIOCalculator`` and atomate2's makers: an engine is a serialisable
settings object with three steps,

- ``write_inputs(state, run_dir, previous_dir=None) -> dict``: the input files of ``state`` in
  ``run_dir``, seeded from ``previous_dir`` (wavefunctions/density of an earlier calculation) when
  given and usable; returns what was written (e.g. the restart-chain record);
- ``execute(run_dir, written) -> dict``: run the code there (blocking); returns its run log;
- ``read_results(run_dir, state, written, log) -> Evaluation``,

and :meth:`FileEngine.run` chains them for one given directory. Which directory, and which
previous directory, is the caller's business: the workflow layer records each evaluation's run
directory in its stored frame (``engine_run_dir``) and passes it to the next call, so nothing
depends on hidden "last directory" state or on which worker ran the step before.
:meth:`FileEngine.evaluate` stays as the in-process convenience: numbered directories under
``run_root`` (``step_<n:06d>``, ``step_<n:06d>_mid`` for a SIB midpoint state), the previous one
found by name among the finished directories there.

A finished directory holds ``sld_evaluation.json``. A directory that exists when a run starts
(a rerun after a failure) is moved aside to ``<name>.prev-<k>``, never overwritten.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from sld_workflows.errors import SLDError
from sld_workflows.evaluation import Evaluation
from sld_workflows.state import SLDState

#: the file that marks a finished run directory (the evaluation read from it, as JSON)
EVALUATION_FILE = "sld_evaluation.json"


class EngineRunError(SLDError):
    """A calculation could not be completed. ``directory`` is left as it is, for inspection; the
    step can be run again (``restartable``) once the cause is fixed: a rerun starts afresh in a
    new directory of the same name (the failed one is moved aside)."""

    code = "engine"

    def __init__(self, reason: str, directory: str | Path, restartable: bool = True) -> None:
        self.reason = reason
        self.directory = str(directory)
        self.restartable = restartable
        super().__init__(f"{self.code} run failed in {directory}: {reason}")


def move_aside(run_dir: Path) -> Path:
    """Rename an existing ``run_dir`` to the first free ``<name>.prev-<k>``; returns the new path."""
    k = 1
    while run_dir.with_name(f"{run_dir.name}.prev-{k}").exists():
        k += 1
    moved = run_dir.with_name(f"{run_dir.name}.prev-{k}")
    run_dir.rename(moved)
    return moved


class FileEngine:
    """Mixin of the file-based engines. Subclasses are dataclasses with a ``run_root`` field and
    implement ``write_inputs``, ``execute``, ``read_results`` and ``has_restart_files``."""

    run_root: str

    # ------------------------------------------------------------------ to implement
    def write_inputs(self, state: SLDState, run_dir: Path, previous_dir: Path | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, run_dir: Path, written: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def read_results(self, run_dir: Path, state: SLDState, written: dict[str, Any],
                     log: dict[str, Any]) -> Evaluation:
        raise NotImplementedError

    def has_restart_files(self, run_dir: Path) -> bool:
        """Whether ``run_dir`` holds what ``write_inputs`` can seed a new calculation from."""
        raise NotImplementedError

    # ------------------------------------------------------------------ one calculation
    def run(self, state: SLDState, run_dir: str | Path, previous_dir: str | Path | None = None) -> Evaluation:
        """Evaluate ``state`` in ``run_dir`` (created; an existing one is moved aside first), seeded
        from ``previous_dir`` if it is a finished run directory with restart files (otherwise from
        scratch, recorded in ``info["restart_chain"]``)."""
        t0 = time.time()
        run_dir = Path(run_dir)
        previous = None if previous_dir is None else Path(previous_dir)
        if run_dir.exists():
            moved = move_aside(run_dir)
            if previous is not None and previous.resolve() == run_dir.resolve():
                previous = moved  # the same state evaluated again: seed from its own earlier run
        if previous is not None and not self.usable_seed(previous):
            previous = None
        run_dir.mkdir(parents=True)
        written = self.write_inputs(state, run_dir, previous)
        log = self.execute(run_dir, written)
        evaluation = self.read_results(run_dir, state, written, log)
        evaluation.check_matches(state)
        info = dict(evaluation.info)
        info.setdefault("run_dir", str(run_dir))
        info["wall_time_s"] = time.time() - t0
        evaluation = dataclasses.replace(evaluation, info=info)
        (run_dir / EVALUATION_FILE).write_text(evaluation.to_json())
        return evaluation

    def usable_seed(self, run_dir: Path) -> bool:
        return (run_dir / EVALUATION_FILE).is_file() and self.has_restart_files(run_dir)

    # ------------------------------------------------------------------ in-process convenience
    @staticmethod
    def run_dir_name(state: SLDState) -> str:
        return f"step_{state.step:06d}" + ("" if state.unit_spins else "_mid")

    def previous_dir(self, state: SLDState) -> Path | None:
        """The nearest earlier finished directory under ``run_root``, by name: a finished run of the
        same state (a rerun), else the midpoint of the step before / the step's own state (for a
        midpoint), else the step before."""
        root = Path(self.run_root)
        own = self.run_dir_name(state)
        if state.unit_spins:
            names = [own] + ([f"step_{state.step - 1:06d}_mid", f"step_{state.step - 1:06d}"] if state.step > 0 else [])
        else:
            names = [own, f"step_{state.step:06d}"]
        for name in names:
            if self.usable_seed(root / name):
                return root / name
        return None

    def evaluate(self, state: SLDState) -> Evaluation:
        """``run`` in ``<run_root>/<run_dir_name(state)>``, seeded from :meth:`previous_dir`."""
        return self.run(state, Path(self.run_root) / self.run_dir_name(state), self.previous_dir(state))
