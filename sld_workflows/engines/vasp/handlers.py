"""Custodian handlers and validators for one static constrained-moment SCF (NSW = 0).

Which Custodian handlers apply (read from custodian 2026.10.21 source):

- ``VaspErrorHandler`` (monitor, stdout ``vasp.out``): yes — BRMIX, ZHEGV/EDDDAV, ZPOTRF, subspace
  and reading errors occur in noncollinear runs. Some corrections delete WAVECAR/CHGCAR
  (``coef``, ``edddav``, BRMIX last stage): that breaks the SLD restart chain (only slower, never
  wrong), so the engine records every such action in the step's ``info["restart_chain"]``.
- ``UnconvergedErrorHandler`` (post-run, vasprun.xml ``converged_electronic``): yes — the primary
  check of a static SCF (NELM reached). Its ladder changes ALGO/mixing; the last resort sets
  ``ISTART = 1`` (keeps the WAVECAR).
- ``FrozenJobErrorHandler`` (monitor, stdout mtime): yes, but its correction is "unfixable" for
  NSW = 0 unless ALGO = Fast; :class:`StaticFrozenJobHandler` keeps its check and adds one plain
  retry (a hung node is the common cause), then gives up.
- ``StdErrHandler`` (monitor, ``std_err.txt``): yes (memory, k-point star errors).
- ``NonConvergingErrorHandler``: no — it needs more than ``nionic_steps`` (10) ionic steps, a static
  run has one; it also reads OSZICAR with pymatgen's ``Oszicar``.
- ``PositiveEnergyErrorHandler``, ``PotimErrorHandler``: no — they read OSZICAR with pymatgen's
  ``Oszicar``, which misparses constrained OSZICARs (reference §5/§6), and Potim is for MD/relaxation.

Our own (why: nothing upstream knows the constraint output):

- :class:`ConstraintBlockValidator` — the final OSZICAR must hold a complete end-of-step
  ``E_p``/``lambda*MW_perp`` block with one row per constrained ion, plus the MW table. A validator,
  not a handler: it only runs when no handler found a (correctable) error, so a BRMIX that
  Custodian fixes is not turned into a failure, while a run that ended without the block is
  stopped with the reason.
- :class:`ConstraintDeviationHandler` — after the run, the smoothed moments must sit on their
  targets: the deviation angle θ_i ≈ |P_i|/(λ|MW_i|) (mode 1/2, P = λ MW⊥) must be below
  ``max_angle_deg``; else LAMBDA is raised ×10 (up to ``max_lambda``) and the run repeated from its
  own WAVECAR. The field B = 2P is λ-independent at convergence, so this changes accuracy, not
  convention. The penalty identity E_p = Σ|P|²/λ (modes 1/2) is checked too, loosely
  (``identity_rel_tol`` = 5 %: real VASP output satisfies it only to ~1e-3, 1.4e-3 in the wiki's
  example); a violation beyond that means the OSZICAR is inconsistent (mixed or tampered files) and
  is not correctable. It stays silent while the SCF is unconverged (NELM reached): the deviation of an
  unconverged density means nothing, and raising LAMBDA together with the mixing change of
  ``UnconvergedErrorHandler`` would change two things at once.
- :class:`PhysicsPreservingMixin` on every Custodian handler that edits inputs: a correction that would
  change the physics of the trajectory (KPOINTS, ENCUT, smearing, PREC, LREAL, symmetry, +U, the
  constraint tags, ...) is undone and reported as unrecoverable, so the step fails with that reason
  instead of being accepted with different physics (Custodian's BRMIX ladder turns Γ 4×4×4 into
  Monkhorst 4×4×4 and then Γ 5×5×5). LAMBDA may change (:class:`ConstraintDeviationHandler`); the
  engine records it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from custodian.custodian import ErrorHandler, Validator
from custodian.vasp.handlers import FrozenJobErrorHandler, StdErrHandler, UnconvergedErrorHandler, VaspErrorHandler
from pymatgen.io.vasp.inputs import Incar, Kpoints

from sld_workflows.engines.vasp.conventions import VASP_DEFAULTS, constrained_mask
from sld_workflows.engines.vasp.parsers import (
    OszicarParseError,
    parse_constrained_oszicar,
    penalty_identity,
    penalty_identity_tolerance,
)

#: Largest accepted angle between a smoothed moment and its target, and the LAMBDA ceiling.
DEFAULT_MAX_ANGLE_DEG = 1.0
DEFAULT_MAX_LAMBDA = 1000.0


def constrained_mask_from_incar(directory: str | Path) -> np.ndarray:
    """(N,) bool: ions with a non-zero M_CONSTR in the directory's INCAR (VASP's test)."""
    incar = Incar.from_file(os.path.join(directory, "INCAR"))
    return constrained_mask(np.asarray(incar.get("M_CONSTR", []), dtype=float).reshape(-1, 3))


class ConstraintBlockValidator(Validator):
    """Fails (``check`` → True) when OSZICAR lacks a complete constraint block; ``reason`` says why."""

    def __init__(self, output_filename: str = "OSZICAR") -> None:
        self.output_filename = output_filename
        self.reason = ""

    def check(self, directory: str = "./") -> bool:
        try:
            parse_constrained_oszicar(Path(directory) / self.output_filename,
                                      constrained=constrained_mask_from_incar(directory))
        except (OszicarParseError, OSError, ValueError) as exc:
            self.reason = str(exc)
            return True
        self.reason = ""
        return False


class ConstraintDeviationHandler(ErrorHandler):
    """Post-run: moments off their targets (λ too small) → raise LAMBDA; inconsistent E_p → stop."""

    is_monitor = False

    def __init__(self, max_angle_deg: float = DEFAULT_MAX_ANGLE_DEG, max_lambda: float = DEFAULT_MAX_LAMBDA,
                 factor: float = 10.0,
                 output_filename: str = "OSZICAR", identity_rel_tol: float = 0.05) -> None:
        self.max_angle_deg = max_angle_deg
        self.identity_rel_tol = identity_rel_tol
        self.max_lambda = max_lambda
        self.factor = factor
        self.output_filename = output_filename
        self.problem = ""

    def check(self, directory: str = "./") -> bool:
        self.problem = ""
        try:
            incar = Incar.from_file(os.path.join(directory, "INCAR"))
            if int(incar.get("I_CONSTRAINED_M", 0)) not in (1, 2):
                return False
            step = parse_constrained_oszicar(Path(directory) / self.output_filename,
                                             constrained=constrained_mask_from_incar(directory)).final
        except (OszicarParseError, OSError, ValueError):
            return False  # incomplete output: the validator reports it
        if step.n_scf >= int(incar.get("NELM", VASP_DEFAULTS["NELM"])):
            return False  # SCF not converged: UnconvergedErrorHandler acts first, alone
        e_p, s = penalty_identity(step)
        if abs(e_p - s) > penalty_identity_tolerance(step, rel=self.identity_rel_tol):
            self.problem = f"penalty identity violated: E_p={e_p:.5e} but sum|P|^2/lambda={s:.5e}"
            return True
        mw = np.linalg.norm(step.mw, axis=1)
        ok = step.in_block & (mw > 0)
        theta = np.zeros_like(mw)
        theta[ok] = np.linalg.norm(step.fields[ok], axis=1) / (step.lambda_ * mw[ok])
        worst = float(np.degrees(theta.max())) if theta.size else 0.0
        if worst > self.max_angle_deg:
            self.problem = (f"moment deviates {worst:.3g} deg from its target (> {self.max_angle_deg} deg) "
                            f"at LAMBDA={step.lambda_:g}")
            return True
        return False

    def correct(self, directory: str = "./") -> dict:
        from custodian.vasp.interpreter import VaspModder

        if self.problem.startswith("penalty identity"):
            return {"errors": [self.problem], "actions": None}
        incar = Incar.from_file(os.path.join(directory, "INCAR"))
        lam = float(incar.get("LAMBDA", 0.0))
        new = lam * self.factor
        if new > self.max_lambda:
            return {"errors": [self.problem + f"; LAMBDA would exceed max_lambda={self.max_lambda:g}"], "actions": None}
        # ISTART = 1: continue from this attempt's WAVECAR (the restart chain is kept)
        actions = [{"dict": "INCAR", "action": {"_set": {"LAMBDA": new, "ISTART": 1, "ICHARG": 0}}}]
        VaspModder(directory=directory).apply_actions(actions)
        return {"errors": [self.problem], "actions": actions}


class StaticFrozenJobHandler(FrozenJobErrorHandler):
    """Custodian's frozen-job check (stdout not updated for ``timeout`` s). For NSW = 0 Custodian has
    no fix unless ALGO = Fast; we keep that fix and otherwise retry the unchanged run ``max_retries``
    times (moving the frozen stdout aside, which is the recorded action), then give up."""

    def __init__(self, output_filename: str = "vasp.out", timeout: float = 21_600, max_retries: int = 1) -> None:
        super().__init__(output_filename=output_filename, timeout=timeout)
        self.max_retries = max_retries
        self.retries = 0

    def correct(self, directory: str = "./") -> dict:
        result = super().correct(directory=directory)
        if result.get("actions"):
            return result
        if self.retries >= self.max_retries:
            return {"errors": ["Frozen job"], "actions": None}
        from custodian.vasp.interpreter import VaspModder

        self.retries += 1
        actions = [{"file": self.output_filename,
                    "action": {"_file_move": {"dest": f"{self.output_filename}.frozen-{self.retries}"}}}]
        VaspModder(directory=directory).apply_actions(actions)
        return {"errors": ["Frozen job"], "actions": actions}


# ------------------------------------------------------------------ corrections that keep the physics
#: INCAR tags that define the physics of every step of a trajectory (basis, smearing, Hamiltonian,
#: constraint); a correction may change mixing, algorithm, parallelisation or LAMBDA, not these.
PHYSICS_TAGS = (
    "ENCUT", "PREC", "LREAL", "ISMEAR", "SIGMA", "ISYM", "GGA", "METAGGA", "LASPH", "LSORBIT", "GGA_COMPAT",
    "LNONCOLLINEAR", "LDAU", "LDAUTYPE", "LDAUL", "LDAUU", "LDAUJ", "I_CONSTRAINED_M", "M_CONSTR", "RWIGS",
    "SAXIS", "NELECT",
)


def physics_snapshot(directory: str | Path) -> dict:
    """The physics-defining part of a run's inputs: the :data:`PHYSICS_TAGS` of INCAR and KPOINTS'
    style, mesh and shift."""
    directory = Path(directory)
    incar = Incar.from_file(directory / "INCAR")
    snap: dict = {f"INCAR.{tag}": incar.get(tag) for tag in PHYSICS_TAGS}
    if (directory / "KPOINTS").is_file():
        kp = Kpoints.from_file(directory / "KPOINTS")
        snap["KPOINTS"] = f"{kp.style.name} {' x '.join(map(str, kp.kpts[0]))} shift {tuple(kp.kpts_shift)}"
    return snap


def physics_changes(before: dict, after: dict) -> list[str]:
    """Human-readable list of what differs between two :func:`physics_snapshot` results."""
    return [f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)]


class PhysicsPreservingMixin:
    """For a Custodian handler: run its correction, and if it changed a physics-defining input, put
    INCAR and KPOINTS back and report the error as unrecoverable (``actions: None``), naming what the
    correction would have changed."""

    def correct(self, directory: str = "./") -> dict:
        directory = Path(directory)
        saved = {name: (directory / name).read_bytes() for name in ("INCAR", "KPOINTS") if (directory / name).is_file()}
        before = physics_snapshot(directory)
        result = super().correct(directory=str(directory))
        changed = physics_changes(before, physics_snapshot(directory))
        if not changed:
            return result
        for name, content in saved.items():
            (directory / name).write_bytes(content)
        errors = [str(e) for e in result.get("errors", [])]
        return {"errors": [*errors, "correction refused: it would change the physics of the trajectory ("
                           + "; ".join(changed) + ")"], "actions": None}


class GuardedVaspErrorHandler(PhysicsPreservingMixin, VaspErrorHandler):
    """Custodian's ``VaspErrorHandler`` whose corrections may not change the physics."""


class GuardedUnconvergedErrorHandler(PhysicsPreservingMixin, UnconvergedErrorHandler):
    """Custodian's ``UnconvergedErrorHandler`` whose corrections may not change the physics."""


class GuardedStdErrHandler(PhysicsPreservingMixin, StdErrHandler):
    """Custodian's ``StdErrHandler`` whose corrections may not change the physics (its k-point
    transformation fix changes KPOINTS)."""
