"""Parsers for the outputs of a VASP constrained-moment (``I_CONSTRAINED_M``) static run.

- :func:`~sld_workflows.engines.vasp.oszicar.parse_constrained_oszicar` — our own OSZICAR parser
  (:mod:`.oszicar`; re-exported here);
- :func:`parse_vasprun` — energies, forces (eV/Å) and stress from ``vasprun.xml`` via pymatgen's
  ``Vasprun`` (it handles the noncollinear file fine: the XML has no per-atom moments, and we do
  not parse eigenvalues or DOS).
- :func:`evaluation_from_run` — turns a finished run directory into an :class:`Evaluation`
  (conventions below).

The conventions these apply (the factor-2 field rule B = (|MW|/μ)·c·P⊥, E_DFT = E0 − E_p, the kBar
sign, the M_CONSTR zero rule) are written once, in :mod:`sld_workflows.engines.vasp.conventions`,
which the ``sld-fake-vasp`` stand-in uses too. μ is chosen by ``moment_convention``: ``"state"``
(default: the state's moment size, the μ the dynamics uses), ``"M_int"`` (|M_int| of the sphere) or
``"MW"`` (|MW|).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.engines.vasp.conventions import (
    FIELD_DIRECTION_MIN_COS,
    MOMENT_CONVENTIONS,
    VASP_DEFAULTS,
    constrained_mask,
    dft_energy_ev,
    field_direction_cosines,
    field_factor,
    llg_fields_ev_per_mub,
    stress_kbar_to_ase_ev_per_a3,
)
from sld_workflows.engines.vasp.oszicar import (
    ConstrainedOszicar,
    IonicStep,
    OszicarParseError,
    fortran_float,
    parse_constrained_oszicar,
    penalty_identity,
    penalty_identity_tolerance,
)
from sld_workflows.errors import SLDError
from sld_workflows.evaluation import perpendicular_part

__all__ = [
    "MOMENT_CONVENTIONS", "ConstrainedOszicar", "IonicStep", "OszicarParseError", "VasprunResult",
    "evaluation_from_run", "field_factor", "fields_from_step", "fortran_float", "parse_constrained_oszicar",
    "parse_vasprun", "penalty_identity", "penalty_identity_tolerance", "stress_kbar_to_ase_ev_per_a3",
]


# ------------------------------------------------------------------------------------ vasprun
@dataclasses.dataclass
class VasprunResult:
    e0_ev: float
    e_free_ev: float
    forces_ev_per_a: np.ndarray
    stress_kbar: np.ndarray | None
    n_scf: int
    nelm: int
    converged_electronic: bool


def parse_vasprun(path: str | Path) -> VasprunResult:
    """Final energies (E0 = pymatgen's ``final_energy``, which repairs VASP's wrong ionic-step
    ``e_0_energy``; free energy ``e_fr_energy``), forces (eV/Å) and stress (kBar, VASP's sign) of
    the last ionic step."""
    import warnings

    from pymatgen.io.vasp.outputs import Vasprun

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vr = Vasprun(str(path), parse_dos=False, parse_eigen=False, parse_projected_eigen=False,
                         parse_potcar_file=False, exception_on_bad_xml=True)
    except Exception as exc:  # pymatgen raises several types for broken XML
        raise SLDError(f"{path}: cannot parse vasprun.xml ({type(exc).__name__}: {exc})") from exc
    last = vr.ionic_steps[-1]
    elec = last.get("electronic_steps") or []
    e0 = vr.final_energy  # e_0_energy with pymatgen's fix of the vasprun.xml sigma->0 bug (VASP forum t=16942)
    efr = last["e_fr_energy"]
    stress = last.get("stress")
    return VasprunResult(
        e0_ev=float(e0),
        e_free_ev=float(efr),
        forces_ev_per_a=np.asarray(last["forces"], dtype=float),
        stress_kbar=None if stress is None else np.asarray(stress, dtype=float),
        n_scf=len(elec),
        nelm=int(vr.parameters.get("NELM", VASP_DEFAULTS["NELM"])),
        converged_electronic=bool(vr.converged_electronic),
    )


# ------------------------------------------------------------------------------------ Evaluation


def fields_from_step(
    step: IonicStep,
    spins: np.ndarray,
    moments: np.ndarray,
    i_constrained_m: int = 1,
    moment_convention: str = "state",
) -> tuple[np.ndarray, np.ndarray]:
    """(fields (N,3) eV/μB for the LLG, μ used (N,)) from one parsed ionic step.

    fields = (|MW|/μ)·c·P⊥ on constrained magnetic sites, zero elsewhere; P⊥ ⟂ the spin direction.
    ``spins`` are the constraint directions; printed vectors are Cartesian because the input set
    keeps SAXIS = 0 0 1 (it refuses any other).
    """
    if moment_convention not in MOMENT_CONVENTIONS:
        raise SLDError(f"moment_convention must be one of {MOMENT_CONVENTIONS}, got {moment_convention!r}")
    p, mw = step.fields, step.mw
    norms = np.linalg.norm(spins, axis=1)
    p_perp = perpendicular_part(p, spins)
    mw_size = np.linalg.norm(mw, axis=1)
    if moment_convention == "state":
        mu = np.asarray(moments, dtype=float)
    elif moment_convention == "M_int":
        mu = np.linalg.norm(step.m_int, axis=1)
    else:
        mu = mw_size
    use = step.in_block & (norms > 0) & (mu > 0)
    fields = np.zeros_like(p)
    c = field_factor(i_constrained_m)
    fields[use] = llg_fields_ev_per_mub(p_perp[use], mw_size[use], mu[use], c)
    return fields, mu


def field_sign_guard(run_dir: str | Path, step: IonicStep, m_constr: np.ndarray) -> dict[str, Any]:
    """Check that the printed ``lambda*MW_perp`` points along MW⊥ from the printed MW table and the
    constraint directions (a sign or frame error of any VASP version, or of our reading, would turn
    it); raise :class:`SLDError` naming the run directory and the ions if not.

    Returns ``{"checked_ions", "min_cos"}`` for the record; ``checked_ions = 0`` when no ion's MW⊥ is
    resolvable at MW's printed precision (stiff λ, small fields: nothing can be checked)."""
    cos = field_direction_cosines(step.fields, step.mw, m_constr)
    checked = ~np.isnan(cos)
    bad = np.flatnonzero(checked & (cos < FIELD_DIRECTION_MIN_COS))
    if bad.size:
        shown = ", ".join(f"ion {i + 1}: cos {cos[i]:+.3f}" for i in bad[:5])
        raise SLDError(f"{run_dir}: the printed constraining field lambda*MW_perp does not point along MW_perp "
                       f"from the printed MW table ({shown}): a sign or frame convention differs from the one "
                       "this engine assumes (fields refused)")
    return {"checked_ions": int(checked.sum()),
            "min_cos": float(np.nanmin(cos)) if checked.any() else None}


def evaluation_from_run(
    run_dir: str | Path,
    state,
    m_constr: np.ndarray,
    i_constrained_m: int = 1,
    moment_convention: str = "state",
    extra_info: dict[str, Any] | None = None,
):
    """Build the :class:`~sld_workflows.evaluation.Evaluation` of a finished run in ``run_dir``.

    ``m_constr``: (N, 3) the M_CONSTR written for this run (defines which ions are constrained).
    Cross-checks OSZICAR E0 against vasprun.xml (printed precision) so that files of two different
    runs are never mixed.
    """
    from sld_workflows.evaluation import Evaluation

    run_dir = Path(run_dir)
    constrained = constrained_mask(m_constr)
    osz = parse_constrained_oszicar(run_dir / "OSZICAR", constrained=constrained, n_ions=state.n_sites)
    step = osz.final
    vr = parse_vasprun(run_dir / "vasprun.xml")
    if vr.forces_ev_per_a.shape != (state.n_sites, 3):
        raise SLDError(f"{run_dir}: vasprun.xml has {vr.forces_ev_per_a.shape[0]} ions, state has {state.n_sites}")
    # OSZICAR E0 is printed with 8 significant digits
    if abs(vr.e0_ev - step.e0_ev) > 1e-7 * abs(step.e0_ev) + 1e-8:
        raise SLDError(f"{run_dir}: OSZICAR E0={step.e0_ev} and vasprun.xml e_0_energy={vr.e0_ev} disagree "
                       "(files from different runs?)")
    guard = field_sign_guard(run_dir, step, m_constr)
    spins = state.spins
    fields, mu = fields_from_step(step, spins, state.moments, i_constrained_m, moment_convention)
    magnetic_unconstrained = state.magnetic & ~step.in_block
    if np.any(magnetic_unconstrained):
        raise SLDError(f"{run_dir}: magnetic sites {np.flatnonzero(magnetic_unconstrained)[:10].tolist()} have no "
                       "constraining field in OSZICAR (M_CONSTR = 0 0 0?)")
    info = {
        "engine": "vasp",
        "run_dir": str(run_dir),
        "scf_iterations": int(vr.n_scf),
        "scf_iterations_oszicar": int(step.n_scf),
        "e_p_ev": step.e_p_ev,
        "e0_ev": vr.e0_ev,
        "lambda": step.lambda_,
        "i_constrained_m": int(i_constrained_m),
        "field_convention": f"fields = (|MW|/mu) * {field_factor(i_constrained_m):g} * P_perp, "
                            f"P = printed lambda*MW_perp, mu = {moment_convention}",
        "moment_convention": moment_convention,
        "mw_mub": np.linalg.norm(step.mw, axis=1).tolist(),
        "field_sign_guard": guard,
    }
    if osz.notes:
        info["oszicar_notes"] = osz.notes
    info.update(extra_info or {})
    stress = None if vr.stress_kbar is None else stress_kbar_to_ase_ev_per_a3(vr.stress_kbar)
    return Evaluation(
        energy_ev=dft_energy_ev(vr.e0_ev, step.e_p_ev),
        forces_ev_per_a=vr.forces_ev_per_a,
        fields_ev_per_mub=fields,
        stress_ev_per_a3=stress,
        moments_mub=np.linalg.norm(step.m_int, axis=1),
        info=info,
    )
