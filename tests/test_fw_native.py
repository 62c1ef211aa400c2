"""FireWorks-native submission (issue 15): workflow files that plain ``lpad add`` accepts, builders
whose workflows ``lp.add_wf`` accepts, both run by plain FireWorks to the frames of ``sld submit``."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import bson
import pytest
import yaml
from conftest import CHECKOUT_ROOT, toy_spec, write_spec

from sld_workflows.cli.main import main
from sld_workflows.workflows.builders import (
    SLDWorkflowSettings,
    get_wf_sld_trajectory,
    get_wf_static_constrained,
    get_wfs_annealing,
)
from sld_workflows.workflows.manage import load_input, read_spec_file
from sld_workflows.workflows.native import registration_tasks

sys.path.insert(0, str(CHECKOUT_ROOT))
from fw_templates.builders import TEMPLATES, template_text  # noqa: E402

FW_TEMPLATES = CHECKOUT_ROOT / "fw_templates"
SPECS = FW_TEMPLATES / "specs"
WORKFLOW_FILES = sorted(p.name for p in FW_TEMPLATES.glob("*.yaml"))


def _fireworks_cmd(name: str) -> list[str]:
    """The installed FireWorks console script (``lpad``, ``rlaunch``)."""
    exe = shutil.which(name)
    if exe:
        return [exe]
    module = {"lpad": "lpad_run", "rlaunch": "rlaunch_run"}[name]
    return [sys.executable, "-c", f"import sys; from fireworks.scripts.{module} import {name}; sys.exit({name}())"]


def _run(backend, name: str, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*_fireworks_cmd(name), *backend.rlaunch_args(), *args], cwd=cwd, env=backend.env(),
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _init_store(backend) -> None:
    """A LaunchPad `lpad add` can add to (FireWorks needs its counters: `lpad reset` or any `sld` command)."""
    with backend.open(create=True) as session:
        session.initialize_launchpad()


def _rapidfire(backend, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    _run(backend, "rlaunch", "-s", "rapidfire", "--sleep", "1", cwd=runs)
    assert not list(CHECKOUT_ROOT.glob("launcher_*"))


def _small(run_spec: dict) -> dict:
    """The same run, shrunk for a test: one conventional cell, at most 3 steps, every frame kept."""
    d = copy.deepcopy(run_spec)
    d["structure"]["supercell"] = [1, 1, 1]
    if d["dynamics"]["steps"]:
        d["dynamics"]["steps"] = 3
        d["output"] = {"every": 1}
    if d["engine"]["kind"] == "vasp":  # Custodian polls the (fake, instant) VASP every 0.05 s, not every 10 s
        d["engine"].update(polling_time_step_s=0.05, monitor_freq=4)
    return d


def _frames(store, tid: str) -> list[tuple[int, str, bytes]]:
    return [(f["step"], f["kind"], bson.encode({"d": f["data"]})) for f in store.iter_frames(tid)]


def _native_trajectories(store) -> list[dict]:
    return [store.get_trajectory(d["_id"]) for d in store.find_trajectories({"registered_by": {"$exists": True}})]


def _assert_same_as_sld_submit(backend, tmp_path: Path, native: list[dict], run_specs: list[dict],
                               layout: str | None = None) -> None:
    """``sld submit`` of each run spec (as a YAML file) + ``sld worker`` stores bit-identical frames."""
    assert len(native) == len(run_specs)
    for run_spec in run_specs:
        args = ["--layout", layout] if layout else []
        path = write_spec(tmp_path / f"same-{run_spec['name']}.yaml", run_spec)
        assert main(["submit", str(path), *args, *backend.args]) == 0
    assert main(["worker", *backend.args]) == 0
    with backend.open() as session:
        store = session.store
        names = [s["name"] for s in run_specs]
        submitted = [store.get_trajectory(d["_id"]) for d in store.find_trajectories({"registered_by": {"$exists": 0}})
                     if d["name"] in names]
        assert len(submitted) == len(run_specs)
        by_name = {d["name"]: d for d in submitted}
        for doc in native:
            twin = by_name[doc["name"]]
            assert doc["status"] == twin["status"] == "COMPLETED"
            assert doc["steps_done"] == twin["steps_done"] == doc["steps_requested"]
            for key in ("dynamics", "spec", "layout", "start_step", "output_every"):
                assert doc[key] == twin[key], key
            # a VASP engine's run_root is the submitter's cwd: here the registration Firework's launch dir
            assert {k: v for k, v in doc["engine"].items() if k != "run_root"} == \
                   {k: v for k, v in twin["engine"].items() if k != "run_root"}
            frames = _frames(store, doc["_id"])
            assert frames and frames == _frames(store, twin["_id"])


# ------------------------------------------------------------------------------------------ files
def test_workflow_files_are_generated_from_the_specs():
    assert WORKFLOW_FILES == sorted(TEMPLATES)
    for name in TEMPLATES:
        assert (FW_TEMPLATES / name).read_text() == template_text(name), "regenerate: python -m fw_templates.builders"


def test_workflow_files_embed_the_template_run_specs():
    embedded = {n: [t["run_spec"] for t in registration_tasks(yaml.safe_load((FW_TEMPLATES / n).read_text()))]
                for n in WORKFLOW_FILES}
    assert embedded["single_trajectory.yaml"] == [read_spec_file(SPECS / "single_trajectory.yaml")]
    assert embedded["annealing.yaml"] == [read_spec_file(SPECS / "annealing.yaml")]
    static = read_spec_file(SPECS / "static_constrained.yaml")
    batch = embedded["static_constrained_batch.yaml"]
    assert [s["dynamics"]["seed"] for s in batch] == [5, 6, 7]
    for s in batch:
        seed = s["dynamics"]["seed"]
        assert s == {**static, "name": f"{static['name']}-s{seed}", "dynamics": {**static["dynamics"], "seed": seed}}
    # seed 5 is the template spec itself: the same trajectory input
    a, b = load_input(batch[0]), load_input(SPECS / "static_constrained.yaml")
    assert a.initial_state.as_dict() == b.initial_state.as_dict() and a.engine.as_dict() == b.engine.as_dict()


# ------------------------------------------------------------------------------------------ lpad add
def _fake_vasp_is_the_model(tmp_path: Path, monkeypatch) -> None:
    """`sld-fake-vasp` (the static template's VASP command) answers with the bcc Fe model of one cell."""
    from sld_workflows.engines.model.presets import make_preset

    engine_file = tmp_path / "model_engine.json"
    engine_file.write_text(make_preset("bcc_fe", supercell=(1, 1, 1))[1].to_json())
    monkeypatch.setenv("SLD_FAKE_VASP_ENGINE", str(engine_file))
    monkeypatch.delenv("SLD_FAKE_VASP_FAULTS", raising=False)


def test_every_workflow_file_runs_with_lpad_add_and_rlaunch(sld_backend, tmp_path, monkeypatch):
    """Each fw_templates file, its run specs shrunk by hand (steps, supercell), through the real
    `lpad add` and `rlaunch rapidfire`; then `sld submit` of the same specs gives the same bits."""
    _fake_vasp_is_the_model(tmp_path, monkeypatch)
    _init_store(sld_backend)
    run_specs = {}
    for name in WORKFLOW_FILES:
        wf = yaml.safe_load((FW_TEMPLATES / name).read_text())
        for task in registration_tasks(wf):
            task["run_spec"] = _small(task["run_spec"])
        run_specs[name] = [t["run_spec"] for t in registration_tasks(wf)]
        (tmp_path / name).write_text(yaml.safe_dump(wf, sort_keys=False))
        out = _run(sld_backend, "lpad", "add", str(tmp_path / name), cwd=tmp_path)
        assert "Added a workflow" in out.stdout + out.stderr
    with sld_backend.open() as session:
        assert session.store.find_trajectories() == []  # nothing registered before a worker runs it
    _rapidfire(sld_backend, tmp_path)
    with sld_backend.open() as session:
        native = _native_trajectories(session.store)
        states = {k: v for d in native for k, v in session.store.firework_states(d["_id"]).items()}
        assert all(set(s) == {"COMPLETED"} for s in states.values())
        # registration Fireworks completed too, and each is the root of its trajectory
        reg = session.lpad.fireworks.find({"spec.sld.kind": "register"}, {"state": 1, "fw_id": 1})
        reg = {f["fw_id"]: f["state"] for f in reg}
        assert len(reg) == 5 and set(reg.values()) == {"COMPLETED"}
        assert sorted(d["registered_by"]["fw_id"] for d in native) == sorted(reg)
        assert sorted(d["root_fw_id"] for d in native) == sorted(reg)
        layouts = {d["name"]: d["layout"] for d in native}
    assert layouts == {"bcc_fe_single": "merged", "bcc_fe_anneal": "merged", "fe_static_constrained-s5": "split",
                       "fe_static_constrained-s6": "split", "fe_static_constrained-s7": "split"}
    _assert_same_as_sld_submit(sld_backend, tmp_path, native, [s for v in run_specs.values() for s in v])


def test_sld_submit_write_workflow_runs_with_lpad_add(sld_backend, tmp_path, capsys):
    spec = toy_spec(steps=3, name="written")
    path = write_spec(tmp_path / "toy.yaml", spec)
    assert main(["submit", str(path), "--write-workflow", str(tmp_path / "wf.yaml"), "--layout", "split"]) == 0
    assert "lpad add" in capsys.readouterr().out
    assert not (tmp_path / "sld_project").exists()  # nothing submitted, no store opened
    wf = yaml.safe_load((tmp_path / "wf.yaml").read_text())
    assert [t["run_spec"] for t in registration_tasks(wf)] == [spec]
    _init_store(sld_backend)
    _run(sld_backend, "lpad", "add", str(tmp_path / "wf.yaml"), cwd=tmp_path)
    _rapidfire(sld_backend, tmp_path)
    with sld_backend.open() as session:
        native = _native_trajectories(session.store)
        assert [d["layout"] for d in native] == ["split"]
    _assert_same_as_sld_submit(sld_backend, tmp_path, native, [spec], layout="split")


# ------------------------------------------------------------------------------------------ builders
ANALYTIC_FE = {"kind": "analytic", "heisenberg": {"j_ev": 0.04, "cutoff_a": 2.6}, "harmonic": {"spring_ev_per_a2": 2.0}}


def _bcc_fe_cell():
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Im-3m", Lattice.cubic(2.8665), ["Fe"], [[0, 0, 0]])


def test_python_builders_run_with_add_wf(sld_backend, tmp_path):
    from fireworks import Workflow

    anneal = _small(read_spec_file(SPECS / "annealing.yaml"))
    single = _small(read_spec_file(SPECS / "single_trajectory.yaml"))
    settings = SLDWorkflowSettings(category=None, priority=3)
    wfs = [
        get_wf_sld_trajectory(_bcc_fe_cell(), settings, moments={"Fe": 2.2},
                              spec_overrides={"engine": ANALYTIC_FE, "dynamics": {"steps": 3}, "output": {"every": 1}}),
        *get_wfs_annealing(anneal, seeds=[1, 2], start_k=200, end_k=20, duration_fs=0.2),
        get_wf_static_constrained(single, seeds=[3, 4, 5]),  # model-engine references, split layout
    ]
    # serialisable: what lp.add_wf stores reads back to the same workflow
    assert [Workflow.from_dict(w.to_dict()).to_dict()["fws"][0]["spec"] for w in wfs] == \
           [w.to_dict()["fws"][0]["spec"] for w in wfs]
    run_specs = [t["run_spec"] for w in wfs for t in registration_tasks(w.to_dict())]
    _init_store(sld_backend)
    with sld_backend.open() as session:
        session.lpad.add_wf(wfs[0])
        session.lpad.bulk_add_wfs(wfs[1:])
        assert session.lpad.fireworks.count_documents({"spec.sld.kind": "register"}) == 6
        assert session.lpad.fireworks.find_one({"spec._priority": 3})["spec"]["sld"] == {"kind": "register"}
    _rapidfire(sld_backend, tmp_path)
    with sld_backend.open() as session:
        store = session.store
        native = _native_trajectories(store)
        by_name = {d["name"]: d for d in native}
        assert by_name["Fe"]["fireworks"] == {"priority": 3} and by_name["Fe"]["steps_done"] == 3
        for seed in (1, 2):
            doc = by_name[f"bcc_fe_anneal-s{seed}"]
            assert doc["dynamics"]["temperature"]["points"] == [[0.0, 200.0], [0.2, 20.0]]
        statics = [by_name[f"bcc_fe_single-s{s}"] for s in (3, 4, 5)]
        assert all(d["layout"] == "split" and d["steps_done"] == 0 for d in statics)
        assert all(store.firework_states(d["_id"])[d["_id"]] == {"COMPLETED": 2} for d in statics)
        spins = [store.get_frame(d["_id"], 0, "state")["data"]["spins"] for d in statics]
        assert all(spins[i] != spins[j] for i in range(3) for j in range(i + 1, 3))
    # the model runs merged, the static batch split, as the builders chose
    _assert_same_as_sld_submit(sld_backend, tmp_path, [d for d in native if d["layout"] == "merged"],
                               [s for s in run_specs if s["dynamics"]["steps"]])
    _assert_same_as_sld_submit(sld_backend, tmp_path, statics, [s for s in run_specs if not s["dynamics"]["steps"]],
                               layout="split")


# ------------------------------------------------------------------------------------------ bad input
def test_invalid_run_spec_fizzles_the_registration_and_writes_nothing(sld_backend, tmp_path, capsys):
    good = toy_spec(steps=2, name="kept")
    assert main(["submit", str(write_spec(tmp_path / "good.yaml", good)), *sld_backend.args]) == 0
    assert main(["worker", *sld_backend.args]) == 0
    bad = copy.deepcopy(read_spec_file(SPECS / "single_trajectory.yaml"))
    bad["dynamics"]["dt_fs"] = -0.1
    # the line `sld submit` prints for it
    assert main(["submit", str(write_spec(tmp_path / "bad.yaml", bad)), *sld_backend.args]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("error: ")
    assert "dynamics.dt_fs" in message and "\n" not in message
    wf = yaml.safe_load((FW_TEMPLATES / "single_trajectory.yaml").read_text())
    registration_tasks(wf)[0]["run_spec"] = bad
    (tmp_path / "bad_wf.yaml").write_text(yaml.safe_dump(wf, sort_keys=False))
    with sld_backend.open() as session:
        before = [(d["_id"], d["updated_on"], _frames(session.store, d["_id"]))
                  for d in session.store.find_trajectories()]
        assert len(before) == 1
    _run(sld_backend, "lpad", "add", str(tmp_path / "bad_wf.yaml"), cwd=tmp_path)
    _rapidfire(sld_backend, tmp_path)
    with sld_backend.open() as session:
        fw = session.lpad.fireworks.find_one({"spec.sld.kind": "register"})
        assert fw["state"] == "FIZZLED"
        launch = session.lpad.launches.find_one({"fw_id": fw["fw_id"]})
        trace = launch["action"]["stored_data"]["_exception"]["_stacktrace"].strip().splitlines()
        assert trace[-1] == f"sld_workflows.errors.SpecError: {message}"
        after = [(d["_id"], d["updated_on"], _frames(session.store, d["_id"]))
                 for d in session.store.find_trajectories()]
        assert after == before
        assert session.lpad.fireworks.count_documents({}) == 3  # kept's 2 steps + the fizzled registration
        assert session.store.db["sld_claims"].count_documents({"trajectory": {"$ne": before[0][0]}}) == 0


def test_lpad_add_of_broken_yaml_gives_fireworks_own_error(sld_backend, tmp_path):
    _init_store(sld_backend)
    text = (FW_TEMPLATES / "single_trajectory.yaml").read_text()
    broken = text.replace("  spec:\n", "  spec: [\n", 1)  # a hand edit gone wrong
    (tmp_path / "broken.yaml").write_text(broken)
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(broken)
    proc = _run(sld_backend, "lpad", "add", str(tmp_path / "broken.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    # the exception of FireWorks' YAML reader (ruamel.yaml), with the position of the mistake
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ruamel.yaml.") and "Error" in line]
    assert errors and "line 12" in proc.stderr
    assert "sld_workflows" not in proc.stderr and "error: " not in proc.stderr
    with sld_backend.open() as session:
        assert session.lpad.fireworks.count_documents({}) == 0


def test_registration_rerun_registers_one_trajectory(sld_backend):
    """A registration Firework rerun after a lost run: if its first step was never added, the half
    registration is replaced; once it was added, a rerun adds nothing."""
    from fireworks import Workflow

    from sld_workflows.workflows.native import SLDRegisterTrajectoryTask, native_workflow

    spec = toy_spec(steps=2, name="once")
    _init_store(sld_backend)
    with sld_backend.open() as session:
        fw_id = min(session.lpad.add_wf(native_workflow([spec])).values())
        task = SLDRegisterTrajectoryTask.from_dict(session.lpad.get_fw_by_id(fw_id).tasks[0].to_dict())
        task.launchpad, task.fw_id = session.lpad, fw_id
        first = task.run_task({})  # ... and the worker died before FireWorks stored the additions
        tid1 = first.stored_data["trajectory"]
        second = task.run_task({})
        tid2 = second.stored_data["trajectory"]
        assert tid2 != tid1 and [d["_id"] for d in session.store.find_trajectories()] == [tid2]
        assert session.store.count_frames(tid1) == 0 and session.store.count_frames(tid2) == 1
        session.lpad.append_wf(Workflow(second.additions), [fw_id])
        third = task.run_task({})
        assert third.stored_data == {"trajectory": tid2, "already_registered": True} and not third.additions
        assert [d["_id"] for d in session.store.find_trajectories()] == [tid2]


def test_write_workflow_of_a_bad_spec_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = read_spec_file(SPECS / "annealing.yaml")
    del bad["dynamics"]["dt_fs"]
    path = write_spec(tmp_path / "bad.yaml", bad)
    assert main(["submit", str(path), *("--project", "p", "--embedded")]) == 2
    submit_line = capsys.readouterr().err
    assert main(["submit", str(path), "--write-workflow", "wf.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == submit_line and err.count("\n") == 1 and "dynamics.dt_fs" in err
    assert not (tmp_path / "wf.yaml").exists() and not (tmp_path / "p").exists()
