"""Outputs of a run: extended-XYZ frames, the JSON summary and an overview plot.

Frame layout (one ``ase.Atoms`` per stored step, written with ``ase.io.write(format="extxyz")``):

- per-atom columns: ``pos`` (Å), ``forces`` (eV/Å) and ``magmoms`` (μB, vectors = spin × moment)
  through a ``SinglePointCalculator`` (the keys ASE, NequIP and MACE importers read), plus the
  custom arrays ``spins`` (unit vectors), ``moments_mub`` (moment sizes), ``fields_ev_per_mub``
  (effective field, the part perpendicular to the spin), ``velocities_a_per_fs``, and
  ``field_parallel_ev_per_mub`` when the engine reports it; ``masses`` (amu) and ``momenta`` (ASE units),
  so that after ``ase.io.read`` the usual accessors work: ``atoms.get_temperature()``,
  ``atoms.get_velocities()``, ``atoms.calc.results`` / ``atoms.get_potential_energy()``,
  ``atoms.get_forces()``, ``atoms.calc.results["magmoms"]`` (N, 3);
- header (``info``): ``energy`` (eV, via the calculator), ``stress`` if any, ``time_fs``, ``step``,
  ``temperature_lattice_k``, ``temperature_spin_k`` (Nowak estimator, only when the engine gives the
  parallel field), plus whatever the driver passes in ``extra_info`` (``run_local``: bath temperature,
  ``spin_scheme``, ``order_<name>`` order parameters).

Precision: ASE writes per-atom float columns with ``%16.8f`` (8 decimals) and header scalars with
Python's ``repr`` (exact). ``final_state.json`` next to the trajectory keeps the last state exactly.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.dynamics.lattice import kinetic_temperature_k
from sld_workflows.dynamics.spin import state_spin_temperature_k
from sld_workflows.evaluation import Evaluation
from sld_workflows.jsonable import jsonable
from sld_workflows.state import SLDState

#: Frame header keys that are time series (plotted, and copied into records).
RECORD_KEYS = (
    "step", "time_fs", "energy_ev", "temperature_lattice_k", "temperature_spin_k", "temperature_bath_k",
)


#: order parameters not plotted (an axis index), and those drawn on a separate right-hand axis
_NOT_PLOTTED = ("order_c_axis",)
_OWN_AXIS = ("order_c_over_a",)


def spin_temperature_of(state: SLDState, evaluation: Evaluation) -> float | None:
    """The spin temperature (K) of :func:`~sld_workflows.dynamics.spin.state_spin_temperature_k`,
    ``None`` (JSON null) where that is undefined (NaN)."""
    t = state_spin_temperature_k(state, evaluation)
    return None if not math.isfinite(t) else t


def frame_atoms(state: SLDState, evaluation: Evaluation, extra_info: Mapping[str, Any] | None = None):
    """An ``ase.Atoms`` holding one frame (see the module docstring for the layout)."""
    from ase import Atoms, units
    from ase.calculators.singlepoint import SinglePointCalculator

    evaluation.check_matches(state)
    atoms = Atoms(symbols=list(state.species), positions=state.positions, cell=state.cell, pbc=state.pbc)
    atoms.new_array("spins", np.array(state.spins, dtype=float))
    atoms.new_array("moments_mub", np.array(state.moments, dtype=float))
    atoms.new_array("fields_ev_per_mub", np.array(evaluation.fields_ev_per_mub, dtype=float))
    if evaluation.field_parallel_ev_per_mub is not None:
        parallel = np.array(evaluation.field_parallel_ev_per_mub, dtype=float)
        atoms.new_array("field_parallel_ev_per_mub", parallel)
    atoms.new_array("velocities_a_per_fs", np.array(state.velocities, dtype=float))
    # masses and momenta (ASE units) make atoms.get_temperature()/get_velocities() work after ase.io.read
    atoms.set_masses(np.array(state.masses_amu, dtype=float))
    atoms.set_velocities(np.array(state.velocities, dtype=float) / units.fs)
    info: dict[str, Any] = {
        "step": int(state.step),
        "time_fs": float(state.time_fs),
        "temperature_lattice_k": kinetic_temperature_k(state.velocities, state.masses_amu),
    }
    t_spin = spin_temperature_of(state, evaluation)
    if t_spin is not None:
        info["temperature_spin_k"] = t_spin
    for key, value in (extra_info or {}).items():
        info[str(key)] = value
    atoms.info.update(info)
    results: dict[str, Any] = {
        "energy": evaluation.energy_ev,
        "forces": np.array(evaluation.forces_ev_per_a, dtype=float),
        "magmoms": state.spins * state.moments[:, None],
    }
    if evaluation.stress_ev_per_a3 is not None:
        results["stress"] = np.array(evaluation.stress_ev_per_a3, dtype=float)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


class TrajectoryWriter:
    """Appends frames to an extxyz file; each frame is flushed to disk as soon as it is written.

    ``mode="w"`` (default) starts a new file, ``"a"`` appends to an existing one. Use as a context
    manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w") -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        self.path = Path(path)
        self._fh = open(self.path, mode)  # noqa: SIM115 - closed in close()
        self.frames_written = 0

    def write(self, atoms) -> None:
        import ase.io

        ase.io.write(self._fh, atoms, format="extxyz")
        self._fh.flush()
        self.frames_written += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    return jsonable(value, non_finite="null", objects="as_dict")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of Python and the packages a run depends on (plus ``extra`` distributions)."""
    from importlib import metadata

    import sld_workflows

    versions = {"python": platform.python_version(), "sld_workflows": sld_workflows.__version__}
    for dist in ("numpy", "scipy", "pymatgen", "ase", "monty", "matplotlib", "numba", *extra):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def write_summary(path: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Write a JSON summary (atomically: temp file + rename) and return what was written.

    Conventional fields (all optional): ``spec`` (normalised run spec), ``settings``
    (``DynamicsSettings``), ``engine`` (an engine: its class and ``as_dict`` are stored), ``steps_requested``,
    ``steps_completed``, ``wall_time_s``, ``interrupted``, ``final`` (energies, temperatures, order
    parameters), ``files``. Package versions, host and command line are always added.
    """
    summary: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "engine" and value is not None and not isinstance(value, Mapping):
            engine_dict = value.as_dict() if hasattr(value, "as_dict") else None
            value = {"class": f"{type(value).__module__}.{type(value).__name__}", "as_dict": engine_dict}
        summary[key] = value
    settings = fields.get("settings")
    if settings is not None and hasattr(settings, "spin_scheme"):
        summary.setdefault("spin_scheme", settings.spin_scheme)
        summary.setdefault("engine_calls_per_step", settings.evaluations_per_step)
    summary["versions"] = package_versions()
    summary["host"] = platform.node()
    summary["command"] = sys.argv
    summary = _jsonable(summary)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return summary


def frame_record(atoms) -> dict[str, float]:
    """The time-series values of one frame (``step``, ``time_fs``, ``energy_ev``, temperatures, orders)."""
    info = atoms.info
    record: dict[str, float] = {}
    for key in RECORD_KEYS:
        if key == "energy_ev":
            energy = info.get("energy")
            if energy is None and atoms.calc is not None:
                energy = atoms.calc.results.get("energy")
            if energy is not None:
                record[key] = float(energy)
        elif key in info:
            record[key] = float(info[key])
    for key, value in info.items():
        if key.startswith("order_"):
            record[key] = float(value)
    return record


def plot_run(frames_or_records: Sequence[Any], png_path: str | os.PathLike, title: str | None = None) -> Path:
    """Energy, lattice/spin/bath temperatures and order parameters against time, as a PNG.

    Accepts ``ase.Atoms`` frames (as written by :func:`frame_atoms`) or record dicts with the keys
    of :data:`RECORD_KEYS` and ``order_<name>``. Uses the Agg canvas directly (no GUI, no global
    backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = [r if isinstance(r, Mapping) else frame_record(r) for r in frames_or_records]
    if not records:
        raise ValueError("plot_run: no frames to plot")
    t = np.array([r.get("time_fs", np.nan) for r in records], dtype=float)

    def series(key: str) -> np.ndarray | None:
        values = [r.get(key) for r in records]
        if all(v is None for v in values):
            return None
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    order_keys = sorted({k for r in records for k in r if k.startswith("order_")} - set(_NOT_PLOTTED)
                        - set(_OWN_AXIS))
    own_axis_keys = sorted({k for r in records for k in r if k in _OWN_AXIS})
    fig = Figure(figsize=(7.5, 8.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax_e, ax_t, ax_o = fig.subplots(3, 1, sharex=True)
    energy = series("energy_ev")
    if energy is not None:
        ax_e.plot(t, energy, color="C0")
    ax_e.set_ylabel("energy (eV)")
    for key, label, style in (
        ("temperature_lattice_k", "lattice", "C1"),
        ("temperature_spin_k", "spin", "C2"),
        ("temperature_bath_k", "bath", "k--"),
    ):
        values = series(key)
        if values is not None:
            ax_t.plot(t, values, style, label=label)
    ax_t.set_ylabel("temperature (K)")
    if ax_t.lines:
        ax_t.legend(loc="best", fontsize="small")
    for i, key in enumerate(order_keys):
        ax_o.plot(t, series(key), color=f"C{i}", label=key.removeprefix("order_"))
    if order_keys:
        ax_o.legend(loc="upper left", fontsize="small")
    if own_axis_keys:
        # quantities near 1 that vary by ~1e-3 (c/a) get their own axis on the right
        twin = ax_o.twinx()
        for j, key in enumerate(own_axis_keys):
            twin.plot(t, series(key), "--", color=f"C{len(order_keys) + j}", label=key.removeprefix("order_"))
        twin.set_ylabel(", ".join(k.removeprefix("order_") for k in own_axis_keys))
        twin.legend(loc="upper right", fontsize="small")
    elif not order_keys:
        ax_o.text(0.5, 0.5, "no order parameter for this system", ha="center", va="center",
                  transform=ax_o.transAxes)
    ax_o.set_ylabel("order parameter")
    ax_o.set_xlabel("time (fs)")
    if title:
        fig.suptitle(title)
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    return png_path
