"""A small BiFeO3 campaign end to end on the embedded stack (6 × 20 SLD, 6 × 10 reference, 1 test
trajectory), through the ``sld`` CLI; its exports read back with ASE and dpdata; the magnetic force
checked against finite differences of the model engine; throttling, pruning and extend-after-prune."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sld_workflows.cli.main import main

TEMPLATE = Path(__file__).resolve().parents[1] / "campaigns" / "bifeo3_paper.yaml"
N_SLD, N_STEPS, N_STATICS = 6, 20, 10


def small_spec(name: str = "bfo_small", max_active: int = 64) -> dict:
    raw = yaml.safe_load(TEMPLATE.read_text())
    raw["name"] = name
    raw["pool"]["n_structures"] = N_SLD
    raw["pool"]["npt"]["equilibration_steps"] = 50
    raw["submission"]["max_active"] = max_active
    return raw


def _energy(engine, atoms, mu, moments_vec, unit_spins=True):
    """Model energy with moment vectors ``moments_vec`` (μB): unit spins M/|M| (a rotation), or — for the
    longitudinal derivative — the un-normalised s = M/μ the model energy is defined on."""
    from sld_workflows.state import SLDState

    norms = np.linalg.norm(moments_vec, axis=1) if unit_spins else mu
    spins = np.divide(moments_vec, norms[:, None], out=np.zeros_like(moments_vec), where=norms[:, None] > 0)
    state = SLDState(species=tuple(atoms.get_chemical_symbols()), positions=atoms.positions, cell=atoms.cell[:],
                     velocities=np.zeros((len(atoms), 3)), spins=spins, moments=mu, unit_spins=unit_spins)
    return engine.evaluate(state).energy_ev


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    spec_path = root / "small.yaml"
    spec_path.write_text(yaml.safe_dump(small_spec()))
    project = root / "proj"
    args = ["--project", str(project), "--embedded"]
    assert main(["campaign", "create", str(spec_path), *args]) == 0
    assert main(["campaign", "run", "bfo_small", "--launch-dir", str(root / "launches"), *args]) == 0
    return {"root": root, "project": project, "args": args, "spec": spec_path}


def _db(campaign):
    from sld_workflows.campaigns.adapters import open_session

    return open_session(project=campaign["project"])


def test_campaign_completes_with_costs_and_schema(campaign, capsys):
    from sld_workflows.campaigns.manage import campaign_status

    with _db(campaign) as session:
        db = session.lpad.db
        status = campaign_status(db, "bfo_small")
        doc = db["sld_campaigns"].find_one({"name": "bfo_small"})
        trajs = list(db["sld_trajectories"].find({"campaign": "bfo_small"}, {"arm": 1, "campaign_queue": 1}))
        fireworks_left = db["fireworks"].count_documents({})
    assert status["state"] == "completed"
    arms = status["arms"]
    assert arms["sld"]["points_done"] == N_SLD * N_STEPS and arms["sld"]["engine_calls"] == N_SLD * N_STEPS
    assert arms["reference"]["points_done"] == N_SLD * N_STATICS
    assert arms["test"]["points_done"] == N_STEPS and arms["test"]["trajectories"] == 1
    assert arms["reference"]["cost_reference_points"] == pytest.approx(N_SLD * N_STATICS)
    assert arms["sld"]["engine_wall_time_s"] > 0 and arms["sld"]["cost_reference_points"] > 0
    # schema shared with the dashboard
    assert set(doc) >= {"name", "created", "spec", "arms", "state"}
    assert {a: c["kind"] for a, c in doc["arms"].items()} == {"sld": "sld", "reference": "reference", "test": "test"}
    assert sorted(len(c["trajectories"]) for c in doc["arms"].values()) == [1, N_SLD, N_SLD]
    assert all(t["arm"] in doc["arms"] for t in trajs) and len(trajs) == 2 * N_SLD + 1
    # every finished workflow left the LaunchPad
    assert fireworks_left == 0 and {t["campaign_queue"] for t in trajs} == {"pruned"}
    capsys.readouterr()
    assert main(["campaign", "status", "bfo_small", *campaign["args"]]) == 0
    out = capsys.readouterr().out
    assert "reference" in out and f"{N_SLD * N_STEPS}/{N_SLD * N_STEPS}" in out
    assert main(["campaign", "list", "--json", *campaign["args"]]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "bfo_small"


def test_pool_spans_the_temperature_range_and_test_structure_is_separate(campaign):
    with _db(campaign) as session:
        doc = session.lpad.db["sld_campaigns"].find_one({"name": "bfo_small"})
        trajs = list(session.lpad.db["sld_trajectories"].find({"campaign": "bfo_small"},
                                                               {"arm": 1, "structure_index": 1}))
    temps = doc["pool"]["temperatures_k"]
    assert len(temps) == N_SLD + 1 and temps[-1] == pytest.approx(900.0) and min(temps) > 300.0
    assert np.all(np.diff(temps) > 0)  # equal intervals of a linear ramp
    test_idx = {t["structure_index"] for t in trajs if t["arm"] == "test"}
    train_idx = {t["structure_index"] for t in trajs if t["arm"] != "test"}
    assert test_idx == set(doc["pool"]["test_indices"]) and not test_idx & train_idx
    assert {t["structure_index"] for t in trajs if t["arm"] == "sld"} == \
           {t["structure_index"] for t in trajs if t["arm"] == "reference"}


def test_extxyz_export_reads_back_with_ase(campaign):
    import ase.io

    out = campaign["root"] / "xyz"
    assert main(["export", "--format", "extxyz", "--campaign", "bfo_small", "--out", str(out),
                 "--split", "0.5,0.5", "--seed", "2", *campaign["args"]]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    frames = {s: ase.io.read(out / f"{s}.extxyz", index=":") for s in manifest["counts"]}
    total = sum(len(f) for f in frames.values())
    assert total == N_SLD * (N_STEPS + N_STATICS) + N_STEPS == manifest["total_frames"]
    assert len(frames["test"]) == N_STEPS  # the test arm goes to the test split whatever the ratios
    atoms = frames["train"][0]
    assert len(atoms) == 80 and atoms.get_chemical_formula() == "Bi16Fe16O48"
    results = atoms.calc.results
    assert results["forces"].shape == (80, 3) and results["stress"].shape == (6,)
    magmoms = results["magmoms"]
    assert magmoms.shape == (80, 3)
    fe = np.array(atoms.get_chemical_symbols()) == "Fe"
    np.testing.assert_allclose(np.linalg.norm(magmoms[fe], axis=1), 4.1, atol=1e-7)  # μB
    assert np.all(magmoms[~fe] == 0.0)
    assert atoms.arrays["magnetic_forces"].shape == (80, 3)
    assert atoms.get_temperature() > 50.0  # momenta stored: the pool is at 300-900 K
    for key in ("trajectory", "arm", "structure_index", "step", "config_type"):
        assert key in atoms.info
    # file hashes in the manifest
    import hashlib

    for name, entry in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["units"]["magnetic_forces"] == "eV/μB" and "-dE/dM" in manifest["conventions"]["magnetic_forces"]


def test_energy_forces_in_export_equal_the_engine(campaign):
    """The exported energy is the engine's energy of the exported structure (no penalty term)."""
    import ase.io
    from monty.json import MontyDecoder

    from sld_workflows.state import SLDState

    out = campaign["root"] / "xyz_ref"
    assert main(["export", "--format", "extxyz", "--campaign", "bfo_small", "--arm", "reference", "--steps", "3:3",
                 "--out", str(out), *campaign["args"]]) == 0
    frames = ase.io.read(out / "all.extxyz", index=":")
    assert len(frames) == N_SLD and all(a.info["step"] == 3 for a in frames)
    with _db(campaign) as session:
        doc = session.lpad.db["sld_trajectories"].find_one({"_id": frames[0].info["trajectory"]})
    engine = MontyDecoder().process_decoded(doc["engine"])
    a = frames[0]
    m = a.calc.results["magmoms"]
    mu = np.linalg.norm(m, axis=1)
    spins = np.divide(m, mu[:, None], out=np.zeros_like(m), where=mu[:, None] > 0)
    state = SLDState(species=tuple(a.get_chemical_symbols()), positions=a.positions, cell=a.cell[:],
                     velocities=np.zeros((80, 3)), spins=spins, moments=mu)
    ev = engine.evaluate(state)
    assert ev.energy_ev == pytest.approx(a.get_potential_energy(), abs=1e-5)
    np.testing.assert_allclose(ev.forces_ev_per_a, a.get_forces(), atol=1e-5)


def test_magnetic_force_is_minus_dE_dM_by_finite_differences(campaign):
    """Units and sign checked independently of the engine's field: central differences of the model
    energy in the moment M (μB) of a few Fe sites of exported frames; h = 1e-4 μB, truncation error
    O(h²·E''') ≪ 1e-6 eV/μB, rounding of the 8-decimal file columns ~1e-8."""
    import ase.io
    from monty.json import MontyDecoder


    out = campaign["root"] / "xyz_fd"
    assert main(["export", "--format", "extxyz", "--campaign", "bfo_small", "--arm", "sld", "--stride", "7",
                 "--out", str(out), *campaign["args"]]) == 0
    frames = ase.io.read(out / "all.extxyz", index=":")
    with _db(campaign) as session:
        doc = session.lpad.db["sld_trajectories"].find_one({"_id": frames[0].info["trajectory"]})
    engine = MontyDecoder().process_decoded(doc["engine"])
    h = 1e-4
    rng = np.random.default_rng(0)
    for a in frames[:3]:
        m = a.calc.results["magmoms"]
        mu = np.linalg.norm(m, axis=1)
        fe = np.flatnonzero(mu > 0)
        fm = a.arrays["magnetic_forces"]
        fperp = a.arrays["magnetic_forces_perp"]

        def energy(moments_vec, sites_unit=True, a=a, mu=mu):
            return _energy(engine, a, mu, moments_vec, sites_unit)

        for i in rng.choice(fe, 3, replace=False):
            s = m[i] / mu[i]
            e1 = np.cross(s, [0.3, -0.5, 0.8])
            e1 /= np.linalg.norm(e1)
            # transverse: rotate M_i (|M_i| kept: the only change a constrained calculation can make)
            for e in (e1, np.cross(s, e1)):
                plus, minus = m.copy(), m.copy()
                plus[i] += h * e
                minus[i] -= h * e
                dE = (energy(plus) - energy(minus)) / (2 * h)  # eV/μB
                assert fm[i] @ e == pytest.approx(-dE, abs=2e-6)
                assert fperp[i] @ e == pytest.approx(-dE, abs=2e-6)
            # longitudinal: the model energy extended to |s| ≠ 1 (E is a function of s = M/μ)
            plus, minus = m.copy(), m.copy()
            plus[i] += h * s
            minus[i] -= h * s
            dE = (energy(plus, sites_unit=False) - energy(minus, sites_unit=False)) / (2 * h)
            assert fm[i] @ s == pytest.approx(-dE, abs=2e-6)
        # the transverse part is perpendicular to the moment (to the file's rounding)
        dots = np.einsum("ij,ij->i", fperp[fe], m[fe]) / (mu[fe] * np.maximum(np.linalg.norm(fperp[fe], axis=1), 1e-12))
        assert np.max(np.abs(dots)) < 1e-5
        assert np.max(np.linalg.norm(fperp[fe], axis=1)) > 1e-3  # not trivially zero


def test_mace_and_deepmd_exports(campaign):
    import ase.io
    import dpdata

    out = campaign["root"] / "mace"
    assert main(["export", "--format", "mace", "--campaign", "bfo_small", "--count", "50", "--seed", "1",
                 "--out", str(out), *campaign["args"]]) == 0
    frames = ase.io.read(out / "all.extxyz", index=":")
    assert len(frames) == 50
    a = frames[0]
    assert isinstance(a.info["REF_energy"], float) and "REF_stress" in a.info
    for key in ("REF_forces", "REF_magmom", "REF_magforces", "REF_magforces_perp"):
        assert a.arrays[key].shape == (80, 3)
    assert a.calc is None or "energy" not in a.calc.results  # no bare energy key to confuse MACE

    out = campaign["root"] / "deepmd"
    assert main(["export", "--format", "deepmd", "--campaign", "bfo_small", "--arm", "sld", "--arm", "reference",
                 "--split", "0.67,0.33", "--out", str(out), *campaign["args"]]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    n = 0
    for split in ("train", "val"):
        system_dir = out / split / "Bi16Fe16O48"
        assert (system_dir / "type_map.raw").read_text().split() == ["Bi", "Fe", "O"]
        ls = dpdata.LabeledSystem(str(system_dir), fmt="deepmd/npy")
        f = ls.get_nframes()
        assert ls.data["spins"].shape == (f, 80, 3) and ls.data["force_mags"].shape == (f, 80, 3)
        assert ls.data["forces"].shape == (f, 80, 3) and ls.data["energies"].shape == (f,)
        fe = np.array(ls.data["atom_names"])[ls.data["atom_types"]] == "Fe"
        np.testing.assert_allclose(np.linalg.norm(ls.data["spins"][:, fe], axis=2), 4.1, atol=1e-9)  # μB
        assert np.all(ls.data["force_mags"][:, ~fe] == 0.0)
        assert manifest["counts"][split]["frames"] == f
        n += f
    assert n == N_SLD * (N_STEPS + N_STATICS)


def test_budget_protocol_counts_reference_points(campaign):
    out = campaign["root"] / "budget"
    assert main(["export", "--format", "extxyz", "--campaign", "bfo_small", "--arm", "sld", "--budget", "30",
                 "--sld-frame-cost", "0.5", "--out", str(out), *campaign["args"]]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total_frames"] == 60  # 30 reference points at 0.5 per SLD snapshot
    assert manifest["protocol"]["cost_used"] == pytest.approx(30.0)


def test_analysis_writes_png_and_json(campaign):
    out = campaign["root"] / "analysis"
    assert main(["campaign", "analyze", "bfo_small", "--out", str(out), *campaign["args"]]) == 0
    result = json.loads((out / "bfo_small_analysis.json").read_text())
    assert (out / "bfo_small_analysis.png").stat().st_size > 10_000
    for arm in ("sld", "reference", "test"):
        r = result["arms"][arm]
        assert r["energy_per_atom"]["n"] == r["frames"] > 0
        assert sum(r["magnetic_force_perp"]["counts"]) == 16 * r["frames"]
        assert "neel" in r["order_parameters"]
    # uniformly random spins: the nearest-neighbour correlation of the reference arm averages to ~0
    # (16 Fe × 6 NN / 2 = 48 pairs × 60 frames: standard error ≈ 1/sqrt(3·2880) ≈ 0.011)
    ref = result["arms"]["reference"]["spin_correlation"]
    first = next(v for v in ref["mean_dot"] if v is not None)
    assert abs(first) < 0.06


def test_throttled_feed_bounds_the_launchpad_and_pruned_trajectories_extend(tmp_path):
    from fireworks.core.rocket_launcher import rapidfire

    from sld_workflows.campaigns.adapters import open_session
    from sld_workflows.campaigns.manage import create_campaign, run_campaign
    from sld_workflows.campaigns.spec import CampaignSpec
    from sld_workflows.workflows.manage import extend

    raw = small_spec("throttled", max_active=2)
    raw["pool"]["n_structures"] = 3
    raw["arms"]["sld"]["n_steps"] = 4
    raw["arms"]["reference"]["n_statics"] = 2
    raw["arms"]["test"]["n_steps"] = 3
    raw["submission"]["steps_per_firework"] = 2  # 2 Fireworks per SLD trajectory
    with open_session(project=tmp_path / "proj", create=True, embedded=True) as session:
        create_campaign(session, CampaignSpec.from_dict(raw))
        result = run_campaign(session, "throttled", str(tmp_path / "launches"))
        assert result["max_fireworks"] <= 2 * 2  # max_active workflows × Fireworks each
        assert session.lpad.fireworks.count_documents({}) == 0
        tid = session.lpad.db["sld_trajectories"].find_one({"campaign": "throttled", "arm": "sld"})["_id"]
        assert session.store.get_trajectory(tid)["steps_done"] == 3
        extend(session, tid, 2)  # after its workflow was deleted: the store has everything
        rapidfire(session.lpad, m_dir=str(tmp_path / "launches"), nlaunches=0, sleep_time=0, strm_lvl="ERROR")
        assert session.store.get_trajectory(tid)["steps_done"] == 5


def test_batched_campaign_steps_equal_the_step_by_step_path(campaign, tmp_path):
    """The in-memory batch of CampaignSLDTask writes the same bits as the phase-by-phase SLDStepTask path
    (a branch of the same trajectory from step 0, same seed, run by the ordinary merged layout)."""
    from fireworks.core.rocket_launcher import rapidfire

    from sld_workflows.datasets.blocks import block_from_frames
    from sld_workflows.workflows.manage import restart

    with _db(campaign) as session:
        tid = session.lpad.db["sld_trajectories"].find_one({"campaign": "bfo_small", "arm": "sld"})["_id"]
        branch = restart(session, tid, from_step=0, steps=N_STEPS - 1)
        rapidfire(session.lpad, m_dir=str(tmp_path), nlaunches=0, sleep_time=0, strm_lvl="ERROR")
        a = block_from_frames(session.lpad.db, tid)
        b = block_from_frames(session.lpad.db, branch)
        session.store.delete_trajectory(branch)
    assert a.n_frames == b.n_frames == N_STEPS
    for key in ("positions", "velocities", "spins", "forces", "fields", "cell", "energy"):
        assert np.array_equal(a.arrays[key], b.arrays[key]), key


def test_packs_equal_the_stored_frames(campaign):
    """The frame pack written from memory when a trajectory finishes holds what sld_frames holds."""
    from sld_workflows.datasets.blocks import block_from_frames, read_pack

    with _db(campaign) as session:
        db = session.lpad.db
        for arm in ("sld", "reference", "test"):
            tid = db["sld_trajectories"].find_one({"campaign": "bfo_small", "arm": arm})["_id"]
            pack, frames = read_pack(db, tid), block_from_frames(db, tid)
            assert pack is not None and pack.species == frames.species
            assert set(pack.arrays) == set(frames.arrays)
            for key in pack.arrays:
                np.testing.assert_array_equal(pack.arrays[key], frames.arrays[key], err_msg=f"{arm} {key}")


def test_fig3_benchmark_runs_on_the_stored_campaign(campaign, tmp_path, capsys):
    """`sld dataset from-campaign` turns the stored campaign's arms into the benchmark's source; the
    ridge control trains on it and beats the zero-force predictor on the independent test trajectory."""
    from sld_workflows.mlbench.benchmark import BenchmarkSettings, run_benchmark
    from sld_workflows.mlbench.frames import load_manifest

    source = tmp_path / "source"
    assert main(["dataset", "from-campaign", "bfo_small", str(source), *campaign["args"]]) == 0
    arms = load_manifest(source)["arms"]
    assert arms["sld"]["frames"] == N_SLD * (N_STEPS + 1) or arms["sld"]["frames"] == N_SLD * N_STEPS
    assert arms["reference"]["frames"] == N_SLD * N_STATICS and arms["test"]["frames"] > 0
    settings = BenchmarkSettings(trainers=("ridge",), seeds=(0,), sizes=(20,), budgets=(10,))
    result = run_benchmark(source, tmp_path / "bench", settings)
    assert (tmp_path / "bench" / "fig3.png").is_file() and result["rows"]
    base = result["test_baseline_mae"]
    for row in result["rows"]:
        assert row["mae"]["force_mev_per_a"] < base["force_mev_per_a"], row
    assert main(["dataset", "from-campaign", "no_such", str(tmp_path / "x"), *campaign["args"]]) == 2
    assert "no campaign named 'no_such'" in capsys.readouterr().err
