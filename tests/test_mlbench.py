"""The Fig. 3 training-data benchmark (sld_workflows.mlbench) on a CI-sized model-engine campaign.

The campaign: 6 initial structures of the 80-atom BiFeO3 cell, 10 SLD snapshots and 10 random-spin statics
each, two 15-frame test trajectories (300 K, 600 K): 150 frames, generated in a few seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sld_workflows.cli.main import main
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.mlbench import BenchmarkError
from sld_workflows.mlbench.benchmark import METRICS, BenchmarkSettings, run_benchmark
from sld_workflows.mlbench.frames import FrameSet, load_arm_frames, neel_order
from sld_workflows.mlbench.generate import CampaignSettings, generate_campaign
from sld_workflows.mlbench.protocols import fixed_budget, fixed_count, measured_cost_ratio, split_validation, strided
from sld_workflows.mlbench.ridge import RidgeTrainer
from sld_workflows.mlbench.trainers import TRAINERS

CI_CAMPAIGN = dict(n_structures=6, sld_steps=10, reference_per_structure=10, thermalise_steps=100,
                   pool_equilibrate_steps=200, pool_stride_steps=20, test_steps=60, test_every=4,
                   test_equilibrate_steps=100)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return generate_campaign(tmp_path_factory.mktemp("campaign"), CampaignSettings(start="thermal", **CI_CAMPAIGN))


@pytest.fixture(scope="module")
def arms(campaign):
    return {arm: FrameSet.from_atoms(load_arm_frames(campaign, arm), arm) for arm in ("sld", "reference", "test")}


def test_export_keys_units_and_labels_equal_the_engine(campaign, arms):
    manifest = json.loads((campaign / "manifest.json").read_text())
    assert {a: manifest["arms"][a]["frames"] for a in ("sld", "reference", "test")} == {
        "sld": 60, "reference": 60, "test": 30}
    frames = load_arm_frames(campaign, "sld")
    atoms = frames[7]
    assert atoms.info["arm"] == "sld" and atoms.info["trajectory"].startswith("sld-")
    fe = atoms.numbers == 26
    assert fe.sum() == 16 and len(atoms) == 80
    # moments are vectors in μB (4.1 on Fe, zero elsewhere); magnetic forces transverse to them
    assert np.allclose(np.linalg.norm(atoms.arrays["REF_magmom"][fe], axis=1), 4.1)
    assert np.all(atoms.arrays["REF_magmom"][~fe] == 0)
    # extxyz stores 8 decimals: |M|·|B| products are exact to ~3·4.1·5e-9 eV
    dots = np.einsum("ij,ij->i", atoms.arrays["REF_magmom"], atoms.arrays["REF_magforces"])
    assert np.max(np.abs(dots)) < 1e-7
    # the labels are the engine's energy (eV), forces (eV/Å) and −∂E/∂M (eV/μB) of the stored state, to the
    # file's 8 decimals (positions rounded by 5e-9 Å move E by < 80·1 eV/Å·5e-9 Å and F by < 10 eV/Å²·5e-9 Å)
    state, engine = make_preset("bifeo3_2x2x2")
    magmom = atoms.arrays["REF_magmom"]
    mu = np.linalg.norm(magmom, axis=1)
    spins = np.divide(magmom, mu[:, None], out=np.zeros_like(magmom), where=mu[:, None] > 0)
    ev = engine.evaluate(state.replace(positions=atoms.positions, spins=np.where(fe[:, None], spins, 0.0)))
    assert ev.energy_ev == pytest.approx(atoms.info["REF_energy"], abs=1e-6)
    assert np.allclose(ev.forces_ev_per_a, atoms.arrays["REF_forces"], atol=1e-6)
    assert np.allclose(ev.fields_ev_per_mub, atoms.arrays["REF_magforces"], atol=1e-7)
    # segments start thermalised: more Néel order than the uniformly random reference spins
    assert neel_order(arms["sld"]).mean() > neel_order(arms["reference"]).mean() + 0.1


def test_ridge_forces_and_magnetic_forces_are_derivatives_of_its_energy(arms):
    fs = arms["reference"].subset(np.arange(20))
    model = RidgeTrainer().fit(fs)
    one = fs.subset([3])
    _, forces, magforces = model.predict(one, cache=False)
    h = 1e-5

    def energy(**changes):
        import dataclasses

        return model.predict(dataclasses.replace(one, **changes), cache=False)[0][0]

    for atom, axis in ((2, 0), (21, 2), (60, 1)):
        dp, dm = one.positions.copy(), one.positions.copy()
        dp[0, atom, axis] += h
        dm[0, atom, axis] -= h
        assert -(energy(positions=dp) - energy(positions=dm)) / (2 * h) == pytest.approx(
            forces[0, atom, axis], rel=1e-5, abs=1e-7)
    for atom in np.flatnonzero(one.magnetic)[:3]:
        for axis in range(3):
            mp, mm = one.magmom_mub.copy(), one.magmom_mub.copy()
            mp[0, atom, axis] += h
            mm[0, atom, axis] -= h
            assert -(energy(magmom_mub=mp) - energy(magmom_mub=mm)) / (2 * h) == pytest.approx(
                magforces[0, atom, axis], rel=1e-5, abs=1e-8)


def test_protocols_split_by_structure_and_count_budgets(arms):
    sld, ref = arms["sld"], arms["reference"]
    pool, val = split_validation(sld, 0.2, seed=4)
    assert not set(sld.structure[pool]) & set(sld.structure[val])
    idx = fixed_count(sld, pool, 25, seed=4)
    assert len(idx) == 25 and set(idx) <= set(pool)
    # whole structures first: 25 frames of 10-step segments touch exactly 3 structures
    assert len(np.unique(sld.structure[idx])) == 3
    budget = fixed_budget(sld, pool, 12, frames_per_unit=2.0, seed=4)
    assert len(budget) == 24 and len(fixed_budget(ref, pool, 12, 1.0, seed=4)) == 12
    thin = strided(sld, budget, 2)
    assert len(thin) == 12 and np.all(sld.step[thin] % 2 == 1)  # steps 1, 3, 5, ... of each segment
    with pytest.raises(BenchmarkError, match="budget 40 reference units needs 80 frames of arm 'sld'"):
        fixed_budget(sld, pool, 40, 2.0, seed=4)
    ratio = measured_cost_ratio(sld, ref)
    assert 0.05 < ratio < 20  # wall-time records exist and are of the same order (one engine call each)


def test_ci_pipeline_ridge_and_spinnet(campaign, tmp_path):
    import torch  # noqa: F401  (the ml extra; a missing torch fails, it never skips)
    settings = BenchmarkSettings(trainers=("ridge", "spinnet"), seeds=(0,), sizes=(5, 20), budgets=(10,),
                                 trainer_options={"spinnet": {"epochs": 2, "batch_frames": 5}})
    result = run_benchmark(campaign, tmp_path, settings)
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert (tmp_path / "fig3.png").stat().st_size > 10_000
    # 2 trainers x (2 sizes x 2 arms + 1 budget x 3 arms) x 1 seed
    assert len(saved["rows"]) == 2 * (2 * 2 + 3) == len(result["rows"])
    assert {r["arm"] for r in saved["rows"] if r["protocol"] == "fixed_budget"} == {"reference", "sld", "sld_strided"}
    for r in saved["rows"]:
        assert set(r["mae"]) == set(METRICS) and all(np.isfinite(v) and v > 0 for v in r["mae"].values())
    budget_rows = {r["arm"]: r["frames"] for r in saved["rows"] if r["protocol"] == "fixed_budget"}
    assert budget_rows == {"reference": 10, "sld": 20, "sld_strided": 10}
    # errors in meV: every model beats predicting zero forces / zero spin forces / the mean energy
    base = saved["test_baseline_mae"]
    for r in saved["rows"]:
        for m in METRICS:
            assert r["mae"][m] < base[m], (r, m)
    assert saved["order"]["test:test-0"]["neel_mean"] > saved["order"]["test:test-1"]["neel_mean"]  # 300 K vs 600 K
    assert {q["vs"] for q in saved["ratios_reference_over_sld"]} == {"sld", "sld_strided"}


@pytest.mark.parametrize("argv_tail, message", [
    (["--trainer", "nosuch"], "unknown trainer 'nosuch' (known: ridge, spinnet, deepmd)"),
    (["--sizes", "5", "--budgets", "500"], "budget 500 reference units needs 500 frames of arm 'reference'"),
    (["--trainer", "deepmd"], "DeePMD-kit's `dp` is not installed"),
])
def test_bad_input_one_line(campaign, tmp_path, capsys, argv_tail, message, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no `dp` from a user's environment
    code = main(["dataset", "benchmark", str(campaign), "--out", str(tmp_path / "out"), *argv_tail])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_campaign_without_test_trajectory(campaign, tmp_path, capsys):
    manifest = json.loads((campaign / "manifest.json").read_text())
    del manifest["arms"]["test"]
    for arm in ("sld", "reference"):
        (tmp_path / f"{arm}.extxyz").write_bytes((campaign / f"{arm}.extxyz").read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    code = main(["dataset", "benchmark", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "has no test trajectory" in err and "\n" not in err


def test_deepmd_inputs(arms, tmp_path):
    from sld_workflows.mlbench.deepmd import write_inputs

    train, val = arms["sld"].subset(np.arange(12)), arms["sld"].subset(np.arange(50, 60))
    path = write_inputs(train, val, tmp_path)
    config = json.loads(path.read_text())
    types = config["model"]["type_map"]
    assert sorted(types) == ["Bi", "Fe", "O"]
    assert config["model"]["spin"]["use_spin"] == [t == "Fe" for t in types]
    assert config["loss"]["type"] == "ener_spin"
    assert len(config["model"]["descriptor"]["sel"]) == len(types)
    s = tmp_path / "train" / "set.000"
    assert np.load(s / "coord.npy").shape == (12, 240) and np.load(s / "box.npy").shape == (12, 9)
    assert np.allclose(np.load(s / "spin.npy").reshape(12, 80, 3), train.magmom_mub)
    assert np.allclose(np.load(s / "force_mag.npy").reshape(12, 80, 3), train.magforces_ev_per_mub)
    assert np.load(tmp_path / "valid" / "set.000" / "energy.npy").shape == (10,)
    assert (tmp_path / "train" / "type_map.raw").read_text().split() == types


def test_trainer_registry_names():
    assert TRAINERS.names() == ("ridge", "spinnet", "deepmd")
    with pytest.raises(BenchmarkError, match="unknown trainer 'x'"):
        TRAINERS.create("x")


def test_ridge_errors_fall_as_the_training_set_grows(campaign, tmp_path):
    """Ridge (24-function basis), 3 seeds (seeded structure orders), 4 vs 40 frames of each arm.

    Measured here (mean ± s.d. over seeds, 4 → 40 frames): force MAE reference 123.2 ± 1.5 → 109.4 ± 4.4,
    SLD 124.6 ± 8.1 → 111.6 ± 3.0 meV/Å (5.0 and 2.6 standard errors of the difference); energy MAE averaged
    over the two arms 0.79 → 0.50 meV/atom (2.4 s.e.); spin force 0.30 → 0.26 meV/μB (1.5 s.e.). So the test
    asks for 2 s.e. where the data give more than 2.4, and only the direction for the spin force.
    """
    result = run_benchmark(campaign, tmp_path, BenchmarkSettings(seeds=(0, 1, 2), sizes=(4, 40), budgets=()))

    def stats(arm, n, metric):
        values = [r["mae"][metric] for r in result["rows"] if r["arm"] == arm and r["x"] == n]
        assert len(values) == 3
        return np.mean(values), np.var(values, ddof=1) / 3  # mean, squared standard error

    for arm in ("reference", "sld"):
        (m4, v4), (m40, v40) = stats(arm, 4, "force_mev_per_a"), stats(arm, 40, "force_mev_per_a")
        assert m4 - m40 > 2 * np.sqrt(v4 + v40), (arm, m4, m40)
    for metric, n_se in (("energy_mev_per_atom", 2.0), ("magforce_mev_per_mub", 0.0)):
        small = [stats(arm, 4, metric) for arm in ("reference", "sld")]
        large = [stats(arm, 40, metric) for arm in ("reference", "sld")]
        diff = np.mean([s[0] for s in small]) - np.mean([s[0] for s in large])
        se = 0.5 * np.sqrt(sum(s[1] for s in small + large))
        assert diff > n_se * se, (metric, diff, se)
