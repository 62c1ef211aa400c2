"""The shipped FireWorks workflow files, and a re-export of the package's builders.

The builders live in :mod:`sld_workflows.workflows.builders` (atomate style: they return
``Workflow`` objects for ``lp.add_wf`` / ``lp.bulk_add_wfs`` and never submit)::

    from fireworks import LaunchPad
    from sld_workflows.workflows.builders import get_wf_sld_trajectory, get_wfs_annealing

    lp = LaunchPad.from_file("my_launchpad.yaml")
    lp.add_wf(get_wf_sld_trajectory("fw_templates/specs/single_trajectory.yaml"))
    lp.bulk_add_wfs(get_wfs_annealing("fw_templates/specs/annealing.yaml", seeds=range(8)))

``fw_templates/*.yaml`` are workflow files for ``lpad add``, written from the run specs in
``fw_templates/specs/`` by :data:`TEMPLATES`; after editing a spec, regenerate them with
``python -m fw_templates.builders`` (tests/test_fw_native.py checks that they are up to date).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fireworks import Workflow

from sld_workflows.workflows.builders import (
    STRUCTURE_DEFAULTS,
    SLDWorkflowSettings,
    get_wf_sld_trajectory,
    get_wf_static_constrained,
    get_wfs_annealing,
    run_spec_of,
)
from sld_workflows.workflows.native import write_workflow

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs"

#: workflow file name -> (how it is built from its spec, what its header says)
TEMPLATES: dict[str, tuple[Callable[[], Workflow], str]] = {
    "single_trajectory.yaml": (
        lambda: get_wf_sld_trajectory(SPECS / "single_trajectory.yaml"),
        "One SLD trajectory (model engine, bcc Fe 3x3x3, NVT 300 K, 200 steps): run spec\n"
        "fw_templates/specs/single_trajectory.yaml embedded in a FireWorks workflow.",
    ),
    "annealing.yaml": (
        lambda: get_wf_sld_trajectory(SPECS / "annealing.yaml"),
        "Annealing bcc Fe 300 K -> 10 K over 150 fs, then 50 fs at 10 K: run spec\n"
        "fw_templates/specs/annealing.yaml embedded in a FireWorks workflow.",
    ),
    "static_constrained_batch.yaml": (
        lambda: get_wf_static_constrained(SPECS / "static_constrained.yaml", seeds=[5, 6, 7]),
        "Static constrained-moment VASP calculations (training references): the run spec\n"
        "fw_templates/specs/static_constrained.yaml with random spins of seeds 5, 6, 7, one registration\n"
        "Firework each (split layout). Set engine.command to your VASP (sld-fake-vasp stands in).",
    ),
}

_USAGE = ("Add it with `lpad add fw_templates/{name}` (-l my_launchpad.yaml for a MongoDB), run it with\n"
          "`rlaunch rapidfire` or `qlaunch`; `sld status` shows the trajectory. The first Firework validates\n"
          "the run spec under run_spec, stores the trajectory and adds the first step; edit run_spec freely\n"
          "(a bad spec fizzles that Firework with the key named). Regenerate: python -m fw_templates.builders")


def template_text(name: str) -> str:
    """The text of ``fw_templates/<name>`` as :data:`TEMPLATES` builds it."""
    from sld_workflows.workflows.native import workflow_yaml

    build, header = TEMPLATES[name]
    return workflow_yaml(build(), header + "\n" + _USAGE.format(name=name))


def write_templates(folder: Path = HERE) -> list[Path]:
    out = []
    for name in TEMPLATES:
        path = Path(folder) / name
        path.write_text(template_text(name))
        out.append(path)
    return out


__all__ = [
    "STRUCTURE_DEFAULTS",
    "TEMPLATES",
    "SLDWorkflowSettings",
    "get_wf_sld_trajectory",
    "get_wf_static_constrained",
    "get_wfs_annealing",
    "run_spec_of",
    "template_text",
    "write_templates",
    "write_workflow",
]

if __name__ == "__main__":
    for p in write_templates():
        print(f"wrote {p}")
