"""``AbinitEngine``: one ABINIT SCF with the Ma–Dudarev direction penalty per state, on the
file-engine protocol (:mod:`sld_workflows.engines.file_engine`).

Conventions (measured on bcc Fe, docs/abinit_engine.md):

- ABINIT prints per atom ``constraining magnetic field`` = λ·M⊥ in Ha/μB, **half** of the field
  conjugate to the sphere moment M (its own potential is 2λM⊥): B_eff = −∂E_KS/∂M = 2·printed,
  × 27.211 eV/Ha; only the part ⟂ the spin is kept.
- The field handed to the dynamics is (|M|/μ)·B_eff, μ the state's moment, as the
  :class:`~sld_workflows.evaluation.Evaluation` contract B = −(1/μ)∂E/∂s asks (∂E/∂s = |M|∂E/∂M).
- Energy: E_KS = ``total_energy_dc`` − lVp (double-counting free energy without the penalty's
  2E_p; why not ``etotal`` or the direct ``total_energy``: :mod:`.parsers`).
- Forces: ``cartesian_forces`` Ha/bohr → eV/Å. Stress only with ``stress: true`` (see settings).

Restart chain: the previous run directory's ``runo_WFK``/``runo_DEN`` are copied in as
``prevo_*`` and read with ``irdwfk 1 irdden 1``; ``info["restart_chain"]`` records it.
An abort, a non-converged SCF or a missing executable raise :class:`AbinitRunError` naming the
run directory, which is left as it is; running the step again starts afresh.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from ase.units import Bohr, Hartree
from monty.json import MSONable

from sld_workflows.engines.abinit import inputs
from sld_workflows.engines.abinit.parsers import AbinitParseError, error_messages, parse_run
from sld_workflows.engines.abinit.settings import AbinitSettings
from sld_workflows.engines.file_engine import EngineRunError, FileEngine
from sld_workflows.evaluation import Evaluation, Property, perpendicular_part
from sld_workflows.state import SLDState

#: B_eff = FIELD_FACTOR × printed λ·M⊥ (ABINIT's penalty potential is 2λM⊥)
FIELD_FACTOR = 2.0


class AbinitRunError(EngineRunError):
    code = "ABINIT"


def run_environment() -> dict[str, str]:
    """The process environment for ABINIT: one OpenMP thread per MPI rank, and Open MPI's consent to
    run as root (containers)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


@dataclasses.dataclass
class AbinitEngine(FileEngine, MSONable):
    implemented_properties = frozenset({Property.ENERGY, Property.FORCES, Property.FIELDS})

    settings: AbinitSettings
    run_root: str = "abinit_runs"

    def __post_init__(self) -> None:
        if isinstance(self.settings, dict):
            self.settings = AbinitSettings.from_stored(self.settings)
        if self.settings.stress:
            self.implemented_properties = frozenset({*AbinitEngine.implemented_properties, Property.STRESS})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_spec(cls, section: dict[str, Any], state: SLDState | None = None) -> AbinitEngine:
        """From the run spec's ``engine`` mapping (keys: :data:`settings.KEYS`); with ``state``,
        also checks pseudopotentials, spheres and the executable before anything runs."""
        settings = AbinitSettings.from_dict({k: v for k, v in section.items() if k != "run_dir"})
        engine = cls(settings, run_root=str(Path(section.get("run_dir", "abinit_runs")).resolve()))
        if state is not None:
            magnetic = tuple(s for s, m in zip(state.species, state.magnetic, strict=True) if m)
            settings.check_for(tuple(state.species), magnetic)
        return engine

    def as_dict(self) -> dict[str, Any]:
        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "settings": self.settings.as_dict(), "run_root": self.run_root}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AbinitEngine:
        return cls(AbinitSettings.from_stored(d["settings"]), run_root=d.get("run_root", "abinit_runs"))

    # ------------------------------------------------------------------ FileEngine
    def has_restart_files(self, run_dir: Path) -> bool:
        return inputs.has_restart_files(run_dir)

    def write_inputs(self, state: SLDState, run_dir: Path, previous_dir: Path | None = None) -> dict[str, Any]:
        return inputs.write_inputs(state, self.settings, run_dir, previous_dir)

    def execute(self, run_dir: Path, written: dict[str, Any]) -> dict[str, Any]:
        cmd = self.settings.full_command() + [inputs.INPUT_NAME]
        try:
            with open(run_dir / inputs.LOG_NAME, "w") as out, open(run_dir / "run.err", "w") as err:
                proc = subprocess.run(cmd, cwd=run_dir, stdout=out, stderr=err, env=run_environment(), check=False)
        except FileNotFoundError as exc:
            raise AbinitRunError(f"executable not found: {cmd[0]!r} ({exc.strerror})", run_dir) from exc
        if proc.returncode != 0:
            text = (run_dir / inputs.LOG_NAME).read_text(errors="replace")
            abo = run_dir / inputs.OUTPUT_NAME
            if abo.is_file():
                text += abo.read_text(errors="replace")
            messages = error_messages(text) or [(run_dir / "run.err").read_text(errors="replace").strip()[-300:]]
            raise AbinitRunError(f"{' '.join(cmd)} exited with status {proc.returncode}: {'; '.join(messages)}",
                                 run_dir)
        return {"command": cmd}

    def read_results(self, run_dir: Path, state: SLDState, written: dict[str, Any],
                     log: dict[str, Any]) -> Evaluation:
        try:
            res = parse_run(run_dir, state.n_sites, inputs.OUTPUT_NAME, inputs.LOG_NAME)
        except AbinitParseError as exc:
            raise AbinitRunError(f"outputs unusable: {exc}", run_dir) from exc
        if not res.converged:
            raise AbinitRunError(f"SCF not converged in nstep={self.settings.nstep} iterations "
                                 f"(toldfe {self.settings.toldfe_ha:g} Ha); raise nstep or loosen toldfe_ha", run_dir)
        collapsed = collapsed_sites(res.moments_mub, state, self.settings.min_moment_fraction)
        if collapsed:
            sizes = [round(float(np.linalg.norm(res.moments_mub[i])), 3) for i in collapsed[:10]]
            raise AbinitRunError(
                f"moment collapsed on sites {collapsed[:10]} (|M| = {sizes} "
                f"μB < {self.settings.min_moment_fraction:g} × the state's moment): the SCF fell into another "
                "magnetic solution; its field would be meaningless (more k-points or smearing help)", run_dir)
        return evaluation_from_result(res, state, written, self.settings)


def collapsed_sites(moments_mub: np.ndarray, state: SLDState, fraction: float) -> list[int]:
    """Magnetic sites whose sphere moment is below ``fraction`` × the state's moment size."""
    sizes = np.linalg.norm(moments_mub, axis=1)
    return [int(i) for i in np.flatnonzero(state.magnetic & (sizes < fraction * state.moments))]


def evaluation_from_result(res, state: SLDState, written: dict[str, Any], settings: AbinitSettings) -> Evaluation:
    """The :class:`Evaluation` of a parsed run (conventions in the module docstring)."""
    mag = state.magnetic
    m_size = np.linalg.norm(res.moments_mub, axis=1)
    b_eff = FIELD_FACTOR * Hartree * res.printed_fields_ha_per_mub  # eV/μB, conjugate to the sphere moment
    fields = np.zeros((state.n_sites, 3))
    mu = np.where(mag, state.moments, 1.0)
    fields[mag] = (m_size[mag] / mu[mag])[:, None] * perpendicular_part(b_eff[mag], state.spins[mag])
    stress = None
    if settings.stress and res.stress_ha_per_bohr3 is not None:
        # ABINIT's σ = (1/V)∂E/∂ε, the same sign as ASE's
        stress = res.stress_ha_per_bohr3 * Hartree / Bohr**3
    spinat = np.asarray(written["spinat"])
    lag = [angle_deg(m, s) for m, s in zip(res.moments_mub, spinat, strict=True)]
    info = {
        "engine": "abinit",
        "scf_iterations": res.scf_iterations,
        "abinit_wall_time_s": res.wall_time_s,
        "abinit_cpu_time_s": res.cpu_time_s,
        "e_ks_ha": res.e_ks_ha,
        "total_energy_ha": res.total_energy_ha,
        "total_energy_dc_ha": res.total_energy_dc_ha,
        "etotal_ha": res.etotal_ha,
        "penalty_ha": res.penalty_ha,
        "lvp_ha": res.lvp_ha,
        "magcon_lambda": settings.magcon_lambda,
        "sphere_moments_mub": res.moments_mub.tolist(),
        "lag_deg": lag,
        "field_convention": "fields = (|M_sphere|/mu) * 2 * printed lambda*M_perp * 27.211 eV/Ha, perp to spin",
        "restart_chain": {"seeded_from": written["seeded_from"], "copied": written["copied"],
                          "intact": written["seeded_from"] is not None},
    }
    return Evaluation(
        energy_ev=res.e_ks_ha * Hartree,
        forces_ev_per_a=res.forces_ha_per_bohr * Hartree / Bohr,
        fields_ev_per_mub=fields,
        stress_ev_per_a3=stress,
        moments_mub=m_size,
        info=info,
    )


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors (0 if either is zero): the lag of the sphere moment behind its target."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))
