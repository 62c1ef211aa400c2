"""DESIGN §2: each layer imports only the layers below it. Checked by parsing every module's imports."""

import ast
from pathlib import Path

import pytest

import sld_workflows

PACKAGE = Path(sld_workflows.__file__).parent

# layer of each top-level module/package, bottom (0) up
LAYERS = {
    "units": 0, "state": 0, "evaluation": 0, "errors": 0, "geometry": 0, "vectors": 0, "jsonable": 0,
    "schema": 0,
    "dynamics": 1,
    "engines": 2,
    "run": 3,
    "store": 4,
    "workflows": 5,
    "datasets": 6, "analysis": 6, "campaigns": 6, "mlbench": 6,
    "cli": 7, "dashboard": 7,
}
# third-party packages a layer must not touch (the engines know nothing of FireWorks or MongoDB)
FORBIDDEN_THIRD_PARTY = {
    0: {"fireworks", "pymongo", "mongomock", "custodian", "ase"},
    1: {"fireworks", "pymongo", "mongomock", "custodian", "pymatgen", "ase"},
    2: {"fireworks", "pymongo", "mongomock"},
    3: {"fireworks", "pymongo", "mongomock"},
}
# the dashboard is read-only: it reads through its own query module and never imports the write side
FORBIDDEN_INTERNAL = {"dashboard": {"workflows"}}
# analysis holds pure functions of arrays used by the run driver's plots; it may be imported from `run`.
ALLOWED_UPWARD = {("run", "analysis")}


def layer_of(module_path: Path) -> tuple[str, int]:
    top = module_path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    return top, LAYERS.get(top, -1)


def imported_names(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path):
    top, layer = layer_of(path)
    if layer < 0:
        pytest.fail(f"{path.relative_to(PACKAGE)} is in no layer of DESIGN §2; add it to LAYERS")
    for name in imported_names(path):
        parts = name.split(".")
        if parts[0] == "sld_workflows" and len(parts) > 1 and parts[1] in LAYERS:
            target = parts[1]
            assert target not in FORBIDDEN_INTERNAL.get(top, set()), (
                f"{path.relative_to(PACKAGE)} (layer {top}) must not import {name}"
            )
            assert LAYERS[target] <= layer or (top, target) in ALLOWED_UPWARD, (
                f"{path.relative_to(PACKAGE)} (layer {top}) imports {name} from a higher layer"
            )
        assert parts[0] not in FORBIDDEN_THIRD_PARTY.get(layer, set()), (
            f"{path.relative_to(PACKAGE)} (layer {top}) must not import {parts[0]}"
        )
