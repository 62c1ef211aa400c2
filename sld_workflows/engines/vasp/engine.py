"""``VaspEngine``: one constrained static VASP SCF (under Custodian) per ``evaluate(state)``.

Run directories: ``<run_root>/step_<step:06d>`` for a state with unit spins, ``..._mid`` for a SIB
midpoint state (``unit_spins=False``; VASP can only impose the *direction* s̄/|s̄| of the midpoint
spin, so the midpoint field is that of the normalised direction). If the directory already exists
(a rerun after a failure) it is moved aside to ``<name>.prev-<k>`` and the step is run afresh.

On the file-engine protocol (:mod:`sld_workflows.engines.file_engine`): ``run(state, run_dir,
previous_dir)`` for a given directory; ``evaluate(state)`` under ``run_root``.

Restart chain: WAVECAR/CHGCAR of the previous run directory (given by the caller; for ``evaluate``
the latest finished directory under ``run_root``, by name) are copied in and ``ISTART``/``ICHARG`` set;
``info["restart_chain"]`` records the source, and any Custodian correction that deleted or reset
them.

Failures raise :class:`~sld_workflows.engines.vasp.custodian_job.VaspRunError` naming the reason and
the directory, which is left as it is.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from monty.json import MSONable

from sld_workflows.engines.file_engine import FileEngine
from sld_workflows.engines.vasp.custodian_job import (
    CustodianSettings,
    VaspRunError,
    chain_breaks,
    corrections_summary,
    run_constrained_static,
)
from sld_workflows.engines.vasp.inputs import ConstrainedStaticSet
from sld_workflows.engines.vasp.parsers import MOMENT_CONVENTIONS, evaluation_from_run
from sld_workflows.errors import SLDError, SpecError
from sld_workflows.evaluation import Evaluation, Property
from sld_workflows.state import SLDState

DEFAULT_COMMAND = ("vasp_ncl",)
SPEC_KEYS = {
    "incar", "kpoints", "kpoints_style", "rwigs", "lambda", "i_constrained_m", "constraint_size", "command",
    "potcar", "potcar_symbols", "potcar_functional", "scratch_dir", "run_dir", "max_errors",
    "moment_convention", "frozen_timeout_s", "polling_time_step_s", "monitor_freq", "max_angle_deg", "max_lambda",
    "smearing", "spin_orbit", "isym",
}


@dataclasses.dataclass
class VaspEngine(FileEngine, MSONable):
    """Engine running ``command`` (e.g. ``["mpirun", "vasp_ncl"]`` or ``["sld-fake-vasp"]``)."""

    implemented_properties = frozenset(set(Property) - {Property.FIELD_PARALLEL})  # no parallel field in cDFT

    input_set: ConstrainedStaticSet
    command: tuple[str, ...] = DEFAULT_COMMAND
    run_root: str = "vasp_runs"
    moment_convention: str = "state"
    custodian: CustodianSettings = dataclasses.field(default_factory=CustodianSettings)

    def __post_init__(self) -> None:
        if isinstance(self.command, str):
            self.command = tuple(self.command.split())
        self.command = tuple(self.command)
        if not self.command:
            raise SpecError("command", "empty VASP command")
        if self.moment_convention not in MOMENT_CONVENTIONS:
            raise SpecError("moment_convention", f"must be one of {MOMENT_CONVENTIONS}, got {self.moment_convention!r}")
        if isinstance(self.custodian, dict):
            self.custodian = CustodianSettings(**self.custodian)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_spec(cls, engine_section: dict[str, Any]) -> VaspEngine:
        """Build from the ``engine`` section of a run spec (``type``/``kind``/``name`` keys are ignored).

        Keys: ``rwigs`` ({species: Å}, required), ``lambda``, ``i_constrained_m``, ``constraint_size``,
        ``incar`` (overrides), ``kpoints`` ([n1, n2, n3]), ``kpoints_style``, ``command`` (str or list),
        ``potcar`` ("auto" | "pymatgen" | "spec"), ``potcar_symbols``, ``potcar_functional``,
        ``scratch_dir``/``run_dir`` (root of the run directories), ``max_errors``,
        ``moment_convention`` ("state" | "M_int" | "MW"), ``frozen_timeout_s``, ``polling_time_step_s``,
        ``monitor_freq``, ``max_angle_deg``, ``max_lambda``.
        """
        section = {k: v for k, v in dict(engine_section).items() if k not in ("type", "kind", "name")}
        unknown = sorted(set(section) - SPEC_KEYS)
        if unknown:
            raise SpecError("engine", f"unknown keys {unknown} for the vasp engine (known: {sorted(SPEC_KEYS)})")
        if "rwigs" not in section:
            raise SpecError("engine.rwigs", "required: {species: radius in Å} for every magnetic species")
        input_set = ConstrainedStaticSet.from_spec(section)
        custodian = CustodianSettings.from_spec(section)
        return cls(
            input_set=input_set,
            command=section.get("command", DEFAULT_COMMAND),
            # absolute now: later calls (other processes, other working directories) must find the
            # previous step's WAVECAR/CHGCAR under the same root
            run_root=str(Path(section.get("run_dir", section.get("scratch_dir", "vasp_runs"))).resolve()),
            moment_convention=str(section.get("moment_convention", "state")),
            custodian=custodian,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "@module": type(self).__module__, "@class": type(self).__name__,
            "input_set": self.input_set.as_dict(), "command": list(self.command), "run_root": self.run_root,
            "moment_convention": self.moment_convention, "custodian": dataclasses.asdict(self.custodian),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VaspEngine:
        input_set = d["input_set"]
        if isinstance(input_set, dict):
            input_set = ConstrainedStaticSet.from_dict(input_set)
        return cls(input_set=input_set, command=tuple(d.get("command", DEFAULT_COMMAND)),
                   run_root=d.get("run_root", "vasp_runs"), moment_convention=d.get("moment_convention", "state"),
                   custodian=CustodianSettings(**d.get("custodian", {})))

    # ------------------------------------------------------------------ FileEngine
    def has_restart_files(self, run_dir: Path) -> bool:
        return (run_dir / "WAVECAR").is_file()

    def write_inputs(self, state: SLDState, run_dir: Path, previous_dir: Path | None = None) -> dict[str, Any]:
        copied = []
        if previous_dir is not None:
            for name in ("WAVECAR", "CHGCAR"):
                if (previous_dir / name).is_file():
                    shutil.copy2(previous_dir / name, run_dir / name)
                    copied.append(name)
        written = self.input_set.write(state, run_dir, wavecar="WAVECAR" in copied, chgcar="CHGCAR" in copied)
        return {**written, "seeded_from": None if previous_dir is None else str(previous_dir), "copied": copied}

    def execute(self, run_dir: Path, written: dict[str, Any]) -> dict[str, Any]:
        return {"custodian": run_constrained_static(run_dir, list(self.command), self.custodian)}

    def read_results(self, run_dir: Path, state: SLDState, written: dict[str, Any],
                     log: dict[str, Any]) -> Evaluation:
        run_log = log["custodian"]
        breaks = chain_breaks(run_log)
        copied = written["copied"]
        try:
            return evaluation_from_run(
                run_dir, state, written["m_constr"], self.input_set.i_constrained_m, self.moment_convention,
                extra_info={
                    "restart_chain": {"seeded_from": written["seeded_from"], "copied": copied,
                                      "broken_by": breaks, "intact": bool(copied) and not breaks},
                    "corrections": corrections_summary(run_log),
                    "potcar_file": written["potcar_file"],
                },
            )
        except SLDError as exc:
            raise VaspRunError(f"outputs unusable: {exc}", run_dir) from exc
