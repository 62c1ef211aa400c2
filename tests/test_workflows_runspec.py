"""A real run spec (model engine, bcc Fe preset): `sld submit` + `sld worker` store the same bits as
`run_local` (the in-process driver `sld run`) of the same spec."""

from __future__ import annotations

import json

import yaml

from sld_workflows.cli.main import main
from sld_workflows.dynamics.step import advance
from sld_workflows.run.local import run_local
from sld_workflows.run.spec import RunSpec
from sld_workflows.workflows.phases import evaluation_data

SPEC = {
    "name": "fe_small",
    "structure": {"preset": "bcc_fe", "supercell": [2, 2, 2]},
    "spins": {"init": "random"},
    "velocities": {"temperature_k": 300},
    "engine": {"kind": "model"},
    "dynamics": {"dt_fs": 0.1, "steps": 6, "ensemble": "nvt", "temperature": 300, "alpha": 0.1,
                 "spin_scheme": "sib", "seed": 3},
    "output": {"every": 2},
}


def test_model_spec_matches_run_local(sld_backend, tmp_path, capsys):
    path = tmp_path / "fe.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    assert main(["submit", str(path), *sld_backend.args]) == 0
    tid = capsys.readouterr().out.split("submitted trajectory ")[1].split()[0]
    assert main(["worker", *sld_backend.args, "--launch-dir", str(tmp_path / "runs")]) == 0

    run_local(str(path), tmp_path / "local", progress=False)
    final_local = json.loads((tmp_path / "local" / "final_state.json").read_text())

    spec = RunSpec.from_file(str(path))
    state, engine = spec.build_initial_state(), spec.build_engine()
    evaluation = engine.evaluate(state)
    with sld_backend.open() as session:
        store = session.store
        doc = store.get_trajectory(tid)
        assert doc["layout"] == "merged" and doc["spec"] == spec.as_dict() and doc["output_every"] == 2
        for k in range(spec.steps + 1):
            if k:
                state, evaluation = advance(state, evaluation, spec.settings, engine.evaluate)
            assert json.dumps(store.get_frame(tid, k, "state")["data"]) == json.dumps(state.as_dict()), k
            assert json.dumps(store.get_frame(tid, k, "evaluation")["data"]) == json.dumps(evaluation_data(evaluation))
        final_store = store.get_frame(tid, spec.steps, "state")["data"]
    assert json.dumps(final_store, sort_keys=True) == json.dumps(final_local, sort_keys=True)
