"""Parsers of real ABINIT 9.6.2 outputs (tests/data/abinit, see its README)."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.units import Hartree

from sld_workflows.engines.abinit.engine import evaluation_from_result
from sld_workflows.engines.abinit.parsers import AbinitParseError, error_messages, parse_run
from sld_workflows.engines.abinit.settings import AbinitSettings
from sld_workflows.state import SLDState

DATA = Path(__file__).parent / "data" / "abinit"


def unpacked(name: str, tmp_path: Path) -> Path:
    out = tmp_path / name
    out.mkdir(parents=True)
    for f in (DATA / name).iterdir():
        if f.suffix == ".gz":
            with gzip.open(f, "rb") as src, open(out / f.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy(f, out / f.name)
    return out


def spinat_of(abi: str) -> np.ndarray:
    block = abi.split("spinat", 1)[1].split("magconon", 1)[0]
    return np.array([float(x) for x in block.split()]).reshape(-1, 3)


def test_converged_run(tmp_path):
    run = unpacked("converged", tmp_path)
    res = parse_run(run, 2)
    assert res.converged and res.scf_iterations == 30
    assert res.total_energy_ha == pytest.approx(-248.781617586436, abs=1e-12)  # EnergyTerms (direct)
    assert res.etotal_ha == pytest.approx(res.total_energy_dc_ha, abs=1e-6)  # ResultsGS prints 9 digits
    assert res.e_ks_ha == res.total_energy_dc_ha - res.lvp_ha
    assert np.allclose(res.forces_ha_per_bohr.sum(axis=0), 0.0, atol=1e-10)  # 2 atoms: equal and opposite
    assert res.forces_ha_per_bohr[0, 0] > 0.005  # atom 2 pushed along +x: restoring force on both
    # the printed field is λ·M⊥ of the printed sphere moments (to its 5 printed digits)
    e = spinat_of((run / "run.abi").read_text())
    e /= np.linalg.norm(e, axis=1)[:, None]
    m = res.moments_mub
    m_perp = m - np.einsum("ij,ij->i", m, e)[:, None] * e
    assert np.allclose(res.printed_fields_ha_per_mub, 0.1 * m_perp, rtol=2e-3, atol=2e-7)
    assert res.penalty_ha == pytest.approx(0.1 * float((m_perp**2).sum()), rel=1e-2)
    assert res.lvp_ha == pytest.approx(2 * res.penalty_ha, rel=1e-3)  # lVp = 2 E_p
    assert res.wall_time_s > 0 and res.cpu_time_s > 0


def test_evaluation_conventions(tmp_path):
    run = unpacked("converged", tmp_path)
    res = parse_run(run, 2)
    abi = (run / "run.abi").read_text()
    spins = spinat_of(abi)
    cell = np.diag([float(x) for x in re.search(r"rprim (\S+)", abi).groups()] * 3)
    state = SLDState(species=("Fe", "Fe"), positions=np.zeros((2, 3)), cell=cell, velocities=np.zeros((2, 3)),
                     spins=spins, moments=np.array([2.2, 2.2]))
    ev = evaluation_from_result(res, state, {"spinat": spins, "seeded_from": None, "copied": []},
                                AbinitSettings(ratsph_bohr={"Fe": 2.12}))
    size = np.linalg.norm(res.moments_mub, axis=1)
    expected = 2 * Hartree * res.printed_fields_ha_per_mub * (size / 2.2)[:, None]
    assert np.allclose(ev.fields_ev_per_mub, expected, rtol=1e-3, atol=1e-8)
    assert np.allclose(np.einsum("ij,ij->i", ev.fields_ev_per_mub, state.spins), 0.0, atol=1e-12)
    assert ev.energy_ev == pytest.approx((res.total_energy_dc_ha - res.lvp_ha) * Hartree, abs=1e-9)
    assert ev.stress_ev_per_a3 is None  # off by default (ABINIT 9.6.2 noncollinear PAW stress is wrong)
    assert np.allclose(ev.moments_mub, size)
    assert max(ev.info["lag_deg"]) < 1.0 and ev.info["scf_iterations"] == 30


def test_nonconverged_run_is_flagged(tmp_path):
    res = parse_run(unpacked("nonconverged", tmp_path), 2)
    assert not res.converged and res.scf_iterations == 80


def test_incomplete_or_missing_output(tmp_path):
    run = unpacked("converged", tmp_path)
    with pytest.raises(AbinitParseError, match="does not exist"):
        parse_run(tmp_path / "nowhere", 2)
    text = (run / "run.abo").read_text()
    (run / "run.abo").write_text(text[: text.index("Overall time at end")])
    with pytest.raises(AbinitParseError, match="incomplete"):
        parse_run(run, 2)
    run2 = unpacked("nonconverged", tmp_path)
    with pytest.raises(AbinitParseError, match=r"expected \(3, 3\)"):
        parse_run(run2, 3)


def test_error_documents():
    text = "--- !ERROR\nsrc_file: m_x.F90\nmessage: |\n    ratsph too small\n    for PAW\n...\n"
    assert error_messages(text) == ["ratsph too small for PAW"]


def test_field_matches_finite_difference_torque_of_stored_runs(tmp_path):
    """The live check of tests/test_abinit_physics.py on its stored outputs (4×4×4 k, ecut 12 Ha,
    θ₂ = 104°/105°/106°, the ±1° runs seeded from the centre): field·ê_α of the centre run equals
    −(1/μ)·ΔE/Δα within 5 % (measured 0.963), with E = total_energy_dc − lVp and α the actual
    moment angles; and it points towards lower energy. The direct ``total_energy`` gives 1.19 and
    ``etotal`` (which holds 2E_p) 0.92: both are outside 5 %."""
    runs = {t: parse_run(unpacked(f"fd/theta{t}", tmp_path), 2) for t in (104, 105, 106)}
    sizes = np.array([np.linalg.norm(r.moments_mub, axis=1) for r in runs.values()])
    assert np.ptp(sizes, axis=0).max() < 0.01 * sizes.min()  # one SCF solution for all three
    alpha = {t: np.arctan2(r.moments_mub[1, 0], r.moments_mub[1, 2]) for t, r in runs.items()}
    d_alpha = alpha[106] - alpha[104]
    mu = 2.2
    c = runs[105]
    abi = (DATA / "fd" / "theta105" / "run.abi").read_text()
    spins = spinat_of(abi)
    state = SLDState(species=("Fe", "Fe"), positions=np.zeros((2, 3)), cell=np.eye(3) * 2.8665,
                     velocities=np.zeros((2, 3)), spins=spins, moments=np.array([mu, mu]))
    ev = evaluation_from_result(c, state, {"spinat": spins, "seeded_from": None, "copied": []},
                                AbinitSettings(ratsph_bohr={"Fe": 2.1153157434}))
    a = alpha[105]
    field = float(ev.fields_ev_per_mub[1] @ np.array([np.cos(a), 0.0, -np.sin(a)]))

    def fd(energy):
        return -(energy(runs[106]) - energy(runs[104])) * Hartree / d_alpha / mu

    assert field == pytest.approx(fd(lambda r: r.e_ks_ha), rel=0.05)
    assert abs(field / fd(lambda r: r.total_energy_ha) - 1) > 0.05  # the direct energy is not good enough
    assert abs(field / fd(lambda r: r.etotal_ha) - 1) > 0.05        # nor etotal (+2E_p)
    # towards lower energy: the field turns the moment towards smaller α here, and E(104°) < E(106°)
    assert field < 0 and runs[104].e_ks_ha < runs[106].e_ks_ha
