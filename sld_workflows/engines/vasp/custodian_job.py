"""The Custodian job that runs one constrained static SCF in a prepared directory.

``VaspJob(auto_gamma=False)``: with the default ``auto_gamma=True`` Custodian swaps to a
``.gamma`` executable whenever KPOINTS is Γ-only, without checking LNONCOLLINEAR, i.e. it would run
vasp_gam on a noncollinear job (reference §6). ``backup`` only when a POTCAR exists (Custodian's
backup copies INCAR/POSCAR/POTCAR/KPOINTS and fails without a POTCAR; with ``POTCAR.spec`` the
``.orig`` copies are skipped).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from custodian import Custodian
from custodian.custodian import CustodianError
from custodian.vasp.jobs import VaspJob

from sld_workflows.engines.file_engine import EngineRunError
from sld_workflows.engines.vasp.handlers import (
    DEFAULT_MAX_ANGLE_DEG,
    DEFAULT_MAX_LAMBDA,
    ConstraintBlockValidator,
    ConstraintDeviationHandler,
    GuardedStdErrHandler,
    GuardedUnconvergedErrorHandler,
    GuardedVaspErrorHandler,
    StaticFrozenJobHandler,
)

#: INCAR tags / files whose change by a correction resets the WAVECAR/CHGCAR restart chain.
CHAIN_FILES = ("WAVECAR", "CHGCAR")


class VaspRunError(EngineRunError):
    """A VASP run could not be completed; ``directory`` is left in place for inspection/restart."""

    code = "VASP"


@dataclasses.dataclass
class CustodianSettings:
    """Knobs of the Custodian run (seconds). Defaults suit production; tests shorten them."""

    max_errors: int = 5
    frozen_timeout_s: float = 21_600.0
    polling_time_step_s: float = 10.0
    monitor_freq: int = 30
    max_angle_deg: float = DEFAULT_MAX_ANGLE_DEG
    max_lambda: float = DEFAULT_MAX_LAMBDA

    @classmethod
    def from_spec(cls, section: dict[str, Any]) -> CustodianSettings:
        """From an engine spec section: every field is an optional key of the same name, converted to
        the field's type; other keys are ignored (the engine checks for unknown ones)."""
        convert = {"int": int, "float": float}  # the annotations, as strings (postponed evaluation)
        return cls(**{f.name: convert[f.type](section[f.name]) for f in dataclasses.fields(cls) if f.name in section})


def make_handlers(settings: CustodianSettings) -> list:
    return [
        GuardedVaspErrorHandler(),
        GuardedStdErrHandler(),
        StaticFrozenJobHandler(timeout=settings.frozen_timeout_s),
        GuardedUnconvergedErrorHandler(),
        ConstraintDeviationHandler(max_angle_deg=settings.max_angle_deg, max_lambda=settings.max_lambda),
    ]


def chain_breaks(run_log: list[dict]) -> list[dict]:
    """Corrections that dropped or reset the WAVECAR/CHGCAR chain (file deletions/moves of those
    files, or ISTART = 0 / ICHARG ≥ 2 set by a handler)."""
    out = []
    for job in run_log or []:
        for corr in job.get("corrections", []):
            for action in corr.get("actions") or []:
                what = action.get("action", {})
                if action.get("file") in CHAIN_FILES and any(k in what for k in ("_file_delete", "_file_move")):
                    out.append({"errors": list(corr.get("errors", [])), "action": action})
                sets = what.get("_set", {}) if action.get("dict") == "INCAR" else {}
                if sets.get("ISTART", 1) == 0 or sets.get("ICHARG", 0) >= 2:
                    out.append({"errors": list(corr.get("errors", [])), "action": action})
    return out


def corrections_summary(run_log: list[dict]) -> list[dict]:
    """JSON-able list of {handler, errors, actions} from a Custodian run log."""
    out = []
    for job in run_log or []:
        for corr in job.get("corrections", []):
            handler = corr.get("handler")
            out.append({
                "handler": type(handler).__name__ if handler is not None and not isinstance(handler, dict)
                else (handler or {}).get("@class"),
                "errors": [str(e) for e in corr.get("errors", [])],
                "actions": corr.get("actions"),
            })
    return out


def run_constrained_static(directory: str | Path, vasp_cmd: list[str], settings: CustodianSettings) -> list[dict]:
    """Run Custodian in ``directory``; return its run log. Raises :class:`VaspRunError` (naming the
    reason and the directory) when Custodian gives up."""
    directory = Path(directory)
    job = VaspJob(list(vasp_cmd), auto_gamma=False, backup=(directory / "POTCAR").is_file(), final=True)
    validator = ConstraintBlockValidator()
    c = Custodian(
        make_handlers(settings), [job], validators=[validator], max_errors=settings.max_errors,
        polling_time_step=settings.polling_time_step_s, monitor_freq=settings.monitor_freq,
        directory=str(directory),
    )
    try:
        return c.run()
    except CustodianError as exc:
        reason = str(getattr(exc, "message", exc))
        if getattr(exc, "validator", None) is validator or "ConstraintBlockValidator" in reason:
            reason = f"{reason}: {validator.reason}"
        handler = getattr(exc, "handler", None)
        if handler is not None:
            reason = reason.replace(repr(handler), type(handler).__name__)
        history = [f"{type(corr.get('handler')).__name__}: {', '.join(map(str, corr.get('errors', [])))}"
                   for job in c.run_log for corr in job.get("corrections", [])]
        if history:
            reason = f"{reason} [corrections: {'; '.join(history)}]"
        raise VaspRunError(f"{type(exc).__name__}: {reason}", directory) from exc
    except OSError as exc:  # e.g. the VASP command does not exist
        raise VaspRunError(f"cannot run {vasp_cmd}: {exc}", directory) from exc


def describe(settings: CustodianSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)
