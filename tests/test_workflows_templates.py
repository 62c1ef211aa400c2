"""fw_templates: the YAML templates validate, and the Python builders submit runnable workflows."""

from __future__ import annotations

import sys

import pytest
import yaml
from conftest import CHECKOUT_ROOT

from sld_workflows.cli.main import main
from sld_workflows.workflows.manage import load_input

sys.path.insert(0, str(CHECKOUT_ROOT))
from fw_templates.builders import annealing_campaign, static_constrained_batch  # noqa: E402

TEMPLATES = CHECKOUT_ROOT / "fw_templates"


@pytest.mark.parametrize("name", ["single_trajectory", "annealing"])
def test_model_templates_validate(name):
    inp = load_input(TEMPLATES / f"{name}.yaml")
    assert inp.steps > 0 and inp.default_layout == "merged"


def test_static_constrained_template_is_a_split_vasp_calculation():
    inp = load_input(TEMPLATES / "static_constrained.yaml")
    assert inp.steps == 0 and inp.default_layout == "split"
    assert type(inp.engine).__name__ == "VaspEngine" and list(inp.engine.command) == ["sld-fake-vasp"]


def _small(name):
    d = yaml.safe_load((TEMPLATES / f"{name}.yaml").read_text())
    d["structure"]["supercell"] = [1, 1, 1]
    d["dynamics"]["steps"] = 3
    return d


def test_builders_submit_runnable_campaigns(sld_backend, capsys):
    static = _small("single_trajectory")  # static references with the model engine (steps 0)
    with sld_backend.open() as session:
        anneals = annealing_campaign(session, _small("annealing"), seeds=[1, 2], start_k=200, end_k=20,
                                     duration_fs=0.2)
        statics = static_constrained_batch(session, static, seeds=[3, 4, 5])
    assert main(["worker", *sld_backend.args]) == 0
    with sld_backend.open() as session:
        store = session.store
        for tid in anneals:
            doc = store.get_trajectory(tid)
            assert doc["status"] == "COMPLETED" and doc["steps_done"] == 3
            assert doc["dynamics"]["temperature"]["points"] == [[0.0, 200.0], [0.2, 20.0]]
        spins = []
        for tid in statics:
            doc = store.get_trajectory(tid)
            assert doc["status"] == "COMPLETED" and doc["steps_done"] == 0 and doc["layout"] == "split"
            assert store.count_frames(tid, "evaluation") == 1 and store.count_frames(tid, "state") == 1
            spins.append(store.get_frame(tid, 0, "state")["data"]["spins"])
        # random spins, one draw per seed: every pair differs
        assert all(spins[i] != spins[j] for i in range(3) for j in range(i + 1, 3))
        assert store.firework_states(statics[0])[statics[0]] == {"COMPLETED": 2}  # engine + integrator
