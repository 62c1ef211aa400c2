"""Bad input to ``sld campaign`` and ``sld export``: one clear line, exit non-zero, nothing written or
lost; and the split by initial structure never leaks a structure into two splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sld_workflows.cli.main import main

TEMPLATE = Path(__file__).resolve().parents[1] / "campaigns" / "bifeo3_paper.yaml"


def tiny_spec(name: str = "tiny") -> dict:
    raw = yaml.safe_load(TEMPLATE.read_text())
    raw["name"] = name
    raw["pool"].update(n_structures=2, n_test=1)
    raw["pool"]["npt"]["equilibration_steps"] = 10
    raw["arms"] = {"sld": {"n_steps": 3}, "reference": {"n_statics": 2}, "test": {"n_steps": 2}}
    return raw


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    spec = root / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec()))
    args = ["--project", str(root / "proj"), "--embedded"]
    assert main(["campaign", "create", str(spec), *args]) == 0
    assert main(["campaign", "run", "tiny", "--launch-dir", str(root / "launches"), *args]) == 0
    return {"root": root, "args": args, "spec": spec, "store_file": root / "proj" / "launchpad.json"}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def _snapshot(store) -> bytes:
    return store["store_file"].read_bytes()


@pytest.mark.parametrize("extra, needle", [
    (["--campaign", "nope"], "selects no frames"),
    (["--campaign", "tiny", "--steps", "100:200"], "selects no frames"),
    (["--campaign", "tiny", "--format", "xyz"], "unknown format 'xyz'"),
    (["--campaign", "tiny", "--split", "0.8,0.1"], "must sum to 1"),
    (["--campaign", "tiny", "--split", "0.5,0.6,-0.1"], "non-negative"),
    (["--campaign", "tiny", "--budget", "1000", "--sld-frame-cost", "0.5"], "larger than the selected data"),
    (["--campaign", "tiny", "--count", "1000"], "larger than the selected data"),
    (["--campaign", "tiny", "--steps", "x:y"], "--steps"),
])
def test_bad_export_requests(store, capsys, extra, needle):
    out = store["root"] / "bad_export"
    before = _snapshot(store)
    fmt = [] if "--format" in extra else ["--format", "extxyz"]
    assert main(["export", *fmt, *extra, "--out", str(out), *store["args"]]) == 2
    line = _one_error_line(capsys)
    assert needle in line
    assert not out.exists()
    assert not list(store["root"].glob(".bad_export.tmp-*"))
    assert _snapshot(store) == before


def test_export_into_non_empty_directory_is_refused(store, capsys):
    out = store["root"] / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--format", "extxyz", "--campaign", "tiny", "--out", str(out), *store["args"]]) == 2
    assert "not an empty directory" in _one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failure_during_export_leaves_no_partial_output(store, monkeypatch):
    from sld_workflows.datasets import export as export_module

    calls = {"n": 0}
    real = export_module.read_block

    def failing(db, tid, step_range):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(db, tid, step_range)

    monkeypatch.setattr(export_module, "read_block", failing)
    out = store["root"] / "partial"
    with pytest.raises(OSError, match="simulated"):
        from sld_workflows.campaigns.adapters import open_session

        with open_session(project=store["root"] / "proj") as session:
            export_module.export(session.lpad.db, out, "deepmd", export_module.ExportQuery(campaign="tiny"))
    assert not out.exists() and not list(store["root"].glob(".partial.tmp-*"))


def test_campaign_name_taken_changes_nothing(store, capsys):
    before = _snapshot(store)
    assert main(["campaign", "create", str(store["spec"]), *store["args"]]) == 2
    assert "already taken" in _one_error_line(capsys)
    assert _snapshot(store) == before


def test_unreadable_pool_file_writes_nothing(tmp_path, capsys):
    raw = tiny_spec("from_files")
    bad = tmp_path / "broken.extxyz"
    bad.write_text("this is not a structure\n")
    raw["pool"] = {"source": "files", "n_structures": 1, "n_test": 0, "files": [str(bad)], "temperature_k": 300}
    raw["arms"] = {"sld": {"n_steps": 2}}
    spec = tmp_path / "files.yaml"
    spec.write_text(yaml.safe_dump(raw))
    project = tmp_path / "proj"
    assert main(["campaign", "create", str(spec), "--project", str(project), "--embedded"]) == 2
    line = _one_error_line(capsys)
    assert "pool.files[0]" in line and "cannot read" in line
    assert not project.exists()


@pytest.mark.parametrize("change, needle", [
    (lambda r: r["arms"]["sld"].update(n_steps=0), "arms.sld.n_steps: must be >= 1"),
    (lambda r: r["pool"].update(source="md"), "pool.source: unknown value 'md'"),
    (lambda r: r.update(colour="red"), "colour: unknown key"),
    (lambda r: r["dynamics"].update(steps=5), "dynamics.steps: set by the campaign"),
    (lambda r: r["dynamics"].update(alpha=-1), "dynamics.alpha"),
    (lambda r: r["pool"].update(n_test=0), "pool.n_test: must be >= 1 when arms.test is given"),
])
def test_bad_campaign_specs_name_the_key(tmp_path, capsys, change, needle):
    raw = tiny_spec()
    change(raw)
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(raw))
    assert main(["campaign", "create", str(spec), "--project", str(tmp_path / "proj"), "--embedded"]) == 2
    assert needle in _one_error_line(capsys)
    assert not (tmp_path / "proj").exists()


def test_existing_file_pool_builds_campaign(tmp_path):
    """The files source: structures ASE reads, in the preset's site order."""
    import ase.io

    from sld_workflows.campaigns.pool import build_pool
    from sld_workflows.campaigns.spec import CampaignSpec
    from sld_workflows.run.output import frame_atoms

    base = CampaignSpec.from_dict(tiny_spec()).base_run_spec(300.0, 1, 0)
    state = base.build_initial_state()
    ev = base.build_engine().evaluate(state)
    paths = []
    for i in range(3):
        moved = state.replace(positions=state.positions + 0.01 * i)
        path = tmp_path / f"s{i}.extxyz"
        ase.io.write(path, frame_atoms(moved, ev), format="extxyz")
        paths.append(str(path))
    raw = tiny_spec("files_ok")
    raw["pool"] = {"source": "files", "n_structures": 2, "n_test": 1, "files": paths, "temperature_k": 450}
    pool = build_pool(CampaignSpec.from_dict(raw))
    assert [e.test for e in pool] == [False, True, False]
    np.testing.assert_allclose(pool[2].state.positions, state.positions + 0.02, atol=1e-7)
    assert all(e.temperature_k == 450 for e in pool)


# ------------------------------------------------------------------------------------ no leakage
def _plan(n_structures: int, arms=("sld", "reference")):
    from sld_workflows.datasets.selection import PlannedTrajectory

    plan = []
    for i in range(n_structures):
        for arm in arms:
            plan.append(PlannedTrajectory({"_id": f"{arm}-{i}", "campaign": "c", "arm": arm, "structure_index": i},
                                          np.arange(10 if arm == "reference" else 20)))
    plan.append(PlannedTrajectory({"_id": "test-0", "campaign": "c", "arm": "test", "structure_index": 10_000},
                                  np.arange(20)))
    return plan


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.5, 0.5), (0.34, 0.33, 0.33), (0.9, 0.0, 0.1), (0.6, 0.4, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_no_structure_in_two_splits(ratios, seed):
    from sld_workflows.datasets.selection import Protocol, apply_protocol

    n = 37
    plan, info = apply_protocol(_plan(n), Protocol(split=ratios, seed=seed))
    where: dict[str, set[str]] = {}
    for p in plan:
        where.setdefault(p.structure_key, set()).add(p.split)
    assert all(len(s) == 1 for s in where.values())  # both arms of a structure in the same split
    assert where["c#10000"] == {"test"}  # the test arm is never trained on
    counts = {s: sum(1 for k, v in where.items() if v == {s} and k != "c#10000") for s in ("train", "val", "test")}
    padded = list(ratios) + [0.0] * (3 - len(ratios))
    for name, r in zip(("train", "val", "test"), padded, strict=True):
        assert abs(counts[name] - r * n) <= 1.0
    sets = [set(v) for v in info["split"]["structures"].values()]
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])
    # deterministic for a seed
    again, _ = apply_protocol(_plan(n), Protocol(split=ratios, seed=seed))
    assert [p.split for p in again] == [p.split for p in plan]


def test_different_seeds_give_different_splits():
    from sld_workflows.datasets.selection import Protocol, apply_protocol

    a, _ = apply_protocol(_plan(40), Protocol(split=(0.5, 0.5), seed=1))
    b, _ = apply_protocol(_plan(40), Protocol(split=(0.5, 0.5), seed=2))
    assert [p.split for p in a] != [p.split for p in b]


def test_no_leakage_in_a_real_export(store):
    import ase.io

    for seed in (0, 3):
        out = store["root"] / f"split{seed}"
        assert main(["export", "--format", "extxyz", "--campaign", "tiny", "--split", "0.5,0.5,0.0",
                     "--seed", str(seed), "--out", str(out), *store["args"]]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        seen: dict[int, str] = {}
        for split in manifest["counts"]:
            for atoms in ase.io.read(out / f"{split}.extxyz", index=":"):
                idx = int(atoms.info["structure_index"])
                assert seen.setdefault(idx, split) == split
        assert manifest["protocol"]["seed"] == seed and manifest["protocol"]["split"]["ratios"] == [0.5, 0.5, 0.0]


def test_count_protocol_is_exact_and_deterministic():
    from sld_workflows.datasets.selection import Protocol, apply_protocol

    for seed in (0, 5):
        plan, info = apply_protocol(_plan(12), Protocol(count=111, seed=seed))
        assert sum(p.steps.size for p in plan) == 111
        again, _ = apply_protocol(_plan(12), Protocol(count=111, seed=seed))
        assert [(p.id, p.steps.tolist()) for p in again] == [(p.id, p.steps.tolist()) for p in plan]
        for p in plan:  # each trajectory from its first step
            assert p.steps[0] == 0 and np.all(np.diff(p.steps) == 1)


@pytest.mark.parametrize("name, kind", [("bifeo3_paper.yaml", "model"), ("bifeo3_paper_vasp.yaml", "vasp")])
def test_shipped_paper_templates_validate(name, kind):
    from sld_workflows.campaigns.spec import CampaignSpec

    spec = CampaignSpec.from_file(TEMPLATE.parent / name)
    sizes = spec.arm_sizes()
    assert spec.engine_kind == kind
    assert (sizes["sld"]["n_structures"], sizes["sld"]["n_steps"]) == (600, 20)
    assert (sizes["reference"]["n_structures"], sizes["reference"]["n_statics"]) == (600, 10)
    assert sizes["test"]["n_structures"] == 1
    state = spec.base_run_spec(300.0, 1, 0).build_initial_state()
    assert state.n_sites == 80 and sum(s == "Fe" for s in state.species) == 16
    # granularity: in-process engines batch a whole trajectory per Firework, DFT engines one calculation
    assert (spec.steps_per_firework(), spec.statics_per_firework()) == ((20, 10) if kind == "model" else (1, 1))
