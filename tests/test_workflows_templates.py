"""fw_templates/specs: the run specs the shipped workflow files embed validate as `sld submit` reads them
(the workflow files themselves, and the builders: tests/test_fw_native.py)."""

from __future__ import annotations

import pytest
from conftest import CHECKOUT_ROOT

from sld_workflows.workflows.manage import load_input

SPECS = CHECKOUT_ROOT / "fw_templates" / "specs"


@pytest.mark.parametrize("name", ["single_trajectory", "annealing"])
def test_model_templates_validate(name):
    inp = load_input(SPECS / f"{name}.yaml")
    assert inp.steps > 0 and inp.default_layout == "merged"


def test_static_constrained_template_is_a_split_vasp_calculation():
    inp = load_input(SPECS / "static_constrained.yaml")
    assert inp.steps == 0 and inp.default_layout == "split"
    assert type(inp.engine).__name__ == "VaspEngine" and list(inp.engine.command) == ["sld-fake-vasp"]
