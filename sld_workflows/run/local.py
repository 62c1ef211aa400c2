"""The in-process driver behind ``sld run``: evaluate, loop :func:`dynamics.step.advance`, write outputs.

Files in ``out_dir``:

- ``trajectory.extxyz`` — frame 0 and every ``output.every`` steps (see :mod:`.output` for the layout);
- ``final_state.json`` — the last state (``SLDState.as_dict``, exact floats) to continue from;
- ``summary.json`` — spec, settings, engine provenance, steps, wall time, final values, versions;
- ``overview.png`` — energy, temperatures and order parameters against time.

Ctrl-C (SIGINT) or SIGTERM stops after the step in progress; the frames written so far, the summary (marked
``interrupted``) and the plot are kept. A second Ctrl-C aborts at once. If the engine fails during a
step, the outputs up to the last completed step are written (summary ``error``) and the exception is
re-raised.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sld_workflows.dynamics.lattice import kinetic_temperature_k
from sld_workflows.dynamics.step import advance
from sld_workflows.evaluation import Evaluation
from sld_workflows.run.output import (
    TrajectoryWriter,
    frame_atoms,
    frame_record,
    plot_run,
    spin_temperature_of,
    write_summary,
)
from sld_workflows.run.spec import RunSpec
from sld_workflows.state import SLDState

TRAJECTORY_NAME = "trajectory.extxyz"
SUMMARY_NAME = "summary.json"
PLOT_NAME = "overview.png"
FINAL_STATE_NAME = "final_state.json"
OUTPUT_NAMES = (TRAJECTORY_NAME, SUMMARY_NAME, PLOT_NAME, FINAL_STATE_NAME)


@dataclasses.dataclass
class RunResult:
    """What :func:`run_local` did."""

    out_dir: Path
    trajectory_path: Path
    summary_path: Path
    plot_path: Path | None
    final_state_path: Path
    steps_requested: int
    steps_completed: int
    frames_written: int
    interrupted: bool
    wall_time_s: float
    final_state: SLDState
    final_evaluation: Evaluation
    engine_calls: int


def order_parameter_function(preset: str | None):
    """``state -> {name: value}`` for a preset's order parameters, or ``None`` when unavailable
    (no preset, or the analysis module is not installed)."""
    if preset is None:
        return None
    try:
        from sld_workflows.analysis.order import order_parameters
    except ImportError:
        return None

    def compute(state: SLDState) -> dict[str, float]:
        # temperatures (T_*) are already frame columns of their own (temperature_lattice_k, ...)
        values = order_parameters(preset, state)
        return {str(k): float(v) for k, v in values.items() if not str(k).startswith("T_")}

    return compute


class _InterruptFlag:
    """SIGINT/SIGTERM handler for the duration of a run: the first signal sets a flag checked between
    steps, a second one raises KeyboardInterrupt. Only installed in the main thread."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.set = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        name = signal.Signals(signum).name
        print(f"\n{name}: finishing the current step, then writing outputs (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _progress_bar(total: int, enabled: bool, name: str):
    from tqdm import tqdm

    disable = not (enabled and sys.stderr.isatty())
    return tqdm(total=total, desc=name, unit="step", file=sys.stderr, disable=disable, dynamic_ncols=True)


def run_local(
    spec: RunSpec | str | os.PathLike | Mapping[str, Any], out_dir: str | os.PathLike, progress: bool = True
) -> RunResult:
    """Run ``spec`` in this process and write its outputs to ``out_dir`` (created if needed).

    The spec is validated fully before ``out_dir`` is touched. Existing output files of a previous
    run in ``out_dir`` are replaced (the CLI refuses a non-empty directory unless ``--force``).
    """
    if not isinstance(spec, RunSpec):
        spec = RunSpec.from_dict(spec) if isinstance(spec, Mapping) else RunSpec.from_file(spec)
    state = spec.build_initial_state()
    engine = spec.build_engine()
    settings = spec.settings
    steps, every = spec.steps, spec.output_every
    orders = order_parameter_function(spec.preset)

    engine_calls = 0

    def evaluate(s: SLDState) -> Evaluation:
        nonlocal engine_calls
        engine_calls += 1
        return engine.evaluate(s)

    records: list[dict[str, float]] = []

    def extra_info(s: SLDState) -> dict[str, Any]:
        info: dict[str, Any] = {"temperature_bath_k": settings.temperature(s.time_fs),
                                "spin_scheme": settings.spin_scheme}
        if orders is not None:
            info.update({f"order_{k}": v for k, v in orders(s).items()})
        return info

    started = time.perf_counter()
    evaluation = evaluate(state)  # before creating out_dir: an engine that cannot start writes nothing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in OUTPUT_NAMES}
    for name in (PLOT_NAME, SUMMARY_NAME, FINAL_STATE_NAME):
        paths[name].unlink(missing_ok=True)
    interrupted = False
    error: Exception | None = None
    completed = 0
    with TrajectoryWriter(paths[TRAJECTORY_NAME]) as writer, _InterruptFlag() as flag, \
            _progress_bar(steps, progress, spec.name) as bar:
        atoms = frame_atoms(state, evaluation, extra_info(state))
        writer.write(atoms)
        records.append(frame_record(atoms))
        try:
            for n in range(1, steps + 1):
                if flag.set:
                    interrupted = True
                    break
                state, evaluation = advance(state, evaluation, settings, evaluate)
                completed = n
                if n % every == 0:
                    atoms = frame_atoms(state, evaluation, extra_info(state))
                    writer.write(atoms)
                    records.append(frame_record(atoms))
                    bar.set_postfix(E=f"{evaluation.energy_ev:.4f}",
                                    T=f"{records[-1]['temperature_lattice_k']:.0f}K", refresh=False)
                bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # engine failure: keep what is written, record it, then re-raise
            error = exc
    wall = time.perf_counter() - started

    paths[FINAL_STATE_NAME].write_text(json.dumps(state.as_dict()) + "\n")
    final: dict[str, Any] = {
        "step": state.step,
        "time_fs": state.time_fs,
        "energy_ev": evaluation.energy_ev,
        "energy_per_site_ev": evaluation.energy_ev / state.n_sites,
        "temperature_lattice_k": kinetic_temperature_k(state.velocities, state.masses_amu),
        "temperature_spin_k": spin_temperature_of(state, evaluation),
    }
    if orders is not None:
        final["order_parameters"] = orders(state)
    plot_path: Path | None = paths[PLOT_NAME]
    try:
        plot_run(records, plot_path, title=spec.name)
    except Exception as exc:  # a failed plot must not lose the run's summary
        print(f"warning: could not write {plot_path}: {exc}", file=sys.stderr)
        plot_path = None
    write_summary(
        paths[SUMMARY_NAME],
        name=spec.name,
        spec=spec.spec,
        settings=settings,
        engine=engine,
        engine_kind=spec.engine_kind,
        steps_requested=steps,
        steps_completed=completed,
        frames_written=writer.frames_written,
        output_every=every,
        interrupted=interrupted,
        wall_time_s=wall,
        steps_per_s=completed / wall if wall > 0 else None,
        engine_calls=engine_calls,
        order_parameters_available=orders is not None,
        final=final,
        error=None if error is None else f"{type(error).__name__}: {error}",
        files={name: name for name in OUTPUT_NAMES if name != PLOT_NAME or plot_path is not None},
    )
    if error is not None:
        print(f"run failed after {completed} of {steps} steps: wrote {writer.frames_written} frames, "
              f"summary and plot to {out}", file=sys.stderr)
        raise error
    if interrupted:
        print(f"interrupted after {completed} of {steps} steps: wrote {writer.frames_written} frames, "
              f"summary and plot to {out}", file=sys.stderr)
    elif progress:
        rate = f"{completed / wall:.1f} steps/s" if wall > 0 and completed else "no steps"
        print(f"{spec.name}: {completed} steps in {wall:.1f} s ({rate}); {writer.frames_written} frames "
              f"in {paths[TRAJECTORY_NAME]}", file=sys.stderr)
    return RunResult(
        out_dir=out,
        trajectory_path=paths[TRAJECTORY_NAME],
        summary_path=paths[SUMMARY_NAME],
        plot_path=plot_path,
        final_state_path=paths[FINAL_STATE_NAME],
        steps_requested=steps,
        steps_completed=completed,
        frames_written=writer.frames_written,
        interrupted=interrupted,
        wall_time_s=wall,
        final_state=state,
        final_evaluation=evaluation,
        engine_calls=engine_calls,
    )
