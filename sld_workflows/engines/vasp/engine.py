"""``VaspEngine``: one constrained static VASP SCF (under Custodian) per ``evaluate(state)``.

Run directories: ``<run_root>/step_<step:06d>`` for a state with unit spins, ``..._mid`` for a SIB
midpoint state (``unit_spins=False``; VASP can only impose the *direction* s̄/|s̄| of the midpoint
spin, so the midpoint field is that of the normalised direction). If the directory already exists
(a rerun after a failure) it is moved aside to ``<name>.prev-<k>`` and the step is run afresh.

Restart chain: WAVECAR/CHGCAR of the previous call's directory (in this process; after a restart
the most recent finished directory of the step before) are copied in and ``ISTART``/``ICHARG`` set;
``info["restart_chain"]`` records the source, and any Custodian correction that deleted or reset
them.

Failures raise :class:`~sld_workflows.engines.vasp.custodian_job.VaspRunError` naming the reason and
the directory, which is left as it is.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from monty.json import MSONable

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
class VaspEngine(MSONable):
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
        self._last_dir: Path | None = None

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

    # ------------------------------------------------------------------ directories
    @staticmethod
    def run_dir_name(state: SLDState) -> str:
        return f"step_{state.step:06d}" + ("" if state.unit_spins else "_mid")

    def _previous_dir(self, state: SLDState) -> Path | None:
        if self._last_dir is not None and (self._last_dir / "WAVECAR").is_file():
            return self._last_dir
        root = Path(self.run_root)
        if state.unit_spins:
            names = [f"step_{state.step - 1:06d}_mid", f"step_{state.step - 1:06d}"] if state.step > 0 else []
        else:
            names = [f"step_{state.step:06d}"]
        for name in names:
            d = root / name
            if (d / "WAVECAR").is_file() and (d / "sld_evaluation.json").is_file():
                return d
        return None

    # ------------------------------------------------------------------ Engine
    def evaluate(self, state: SLDState) -> Evaluation:
        t0 = time.time()
        root = Path(self.run_root)
        run_dir = root / self.run_dir_name(state)
        prev = self._previous_dir(state)
        if run_dir.exists():
            k = 1
            while run_dir.with_name(f"{run_dir.name}.prev-{k}").exists():
                k += 1
            moved = run_dir.with_name(f"{run_dir.name}.prev-{k}")
            run_dir.rename(moved)
            if prev is not None and prev.resolve() == run_dir.resolve():
                prev = moved  # the same state evaluated again: seed from its own earlier run
        run_dir.mkdir(parents=True)
        copied = []
        if prev is not None:
            for name in ("WAVECAR", "CHGCAR"):
                if (prev / name).is_file():
                    shutil.copy2(prev / name, run_dir / name)
                    copied.append(name)
        written = self.input_set.write(state, run_dir, wavecar="WAVECAR" in copied, chgcar="CHGCAR" in copied)
        run_log = run_constrained_static(run_dir, list(self.command), self.custodian)
        breaks = chain_breaks(run_log)
        try:
            evaluation = evaluation_from_run(
                run_dir, state, written["m_constr"], self.input_set.i_constrained_m, self.moment_convention,
                extra_info={
                    "restart_chain": {"seeded_from": None if prev is None else str(prev), "copied": copied,
                                      "broken_by": breaks, "intact": bool(copied) and not breaks},
                    "corrections": corrections_summary(run_log),
                    "potcar_file": written["potcar_file"],
                },
            )
        except SLDError as exc:
            raise VaspRunError(f"outputs unusable: {exc}", run_dir) from exc
        evaluation.check_matches(state)
        info = dict(evaluation.info)
        info["wall_time_s"] = time.time() - t0
        evaluation = dataclasses.replace(evaluation, info=info)
        (run_dir / "sld_evaluation.json").write_text(evaluation.to_json())
        self._last_dir = run_dir
        return evaluation
