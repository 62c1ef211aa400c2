"""A small, real project for the dashboard tests: trajectories run by `sld submit` + `sld worker`
with the model engine on the embedded store, plus one campaign document (the campaigns schema)."""

from __future__ import annotations

import contextlib
import datetime
import io
from pathlib import Path

import yaml

from sld_workflows.cli.main import main

XSS_NAME = '<script>alert("x")</script>'


def preset_spec(name: str, steps: int, ensemble: str = "nvt", seed: int = 1) -> dict:
    dynamics = {"dt_fs": 0.1, "steps": steps, "ensemble": ensemble, "temperature": 300, "alpha": 0.1,
                "spin_scheme": "sib-fixed-field", "seed": seed}
    if ensemble == "npt":
        dynamics.update(pressure_gpa=0.0, tau_p_fs=50.0)
    return {"name": name, "structure": {"preset": "bcc_fe", "supercell": [2, 2, 2]}, "spins": {"init": "random"},
            "velocities": {"temperature_k": 300}, "engine": {"kind": "model"}, "dynamics": dynamics,
            "output": {"every": 1}}


def submit(spec: dict, project: Path, tmp: Path) -> str:
    path = tmp / f"spec_{len(list(tmp.glob('spec_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["submit", str(path), "--project", str(project), "--embedded"]) == 0
    return out.getvalue().split("submitted trajectory ")[1].split()[0]


def build_project(tmp: Path) -> dict:
    """Run 3 bcc Fe trajectories (one NpT, one named <script>) and leave one submitted but not run."""
    project = tmp / "sld_project"
    ids = {
        "fe_a": submit(preset_spec("fe_a", 12, seed=1), project, tmp),
        "fe_npt": submit(preset_spec("fe_npt", 8, ensemble="npt", seed=2), project, tmp),
        "xss": submit(preset_spec(XSS_NAME, 4, seed=3), project, tmp),
    }
    assert main(["worker", "--project", str(project), "--launch-dir", str(tmp / "launches")]) == 0
    ids["queued"] = submit(preset_spec("fe_queued", 5, seed=4), project, tmp)
    from sld_workflows.store.connection import open_session

    with open_session(project=project) as session:  # the campaign writer's schema (the data helper's module)
        db = session.lpad.db
        db["sld_campaigns"].insert_one({
            "name": "fe_demo", "created": datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC),
            "spec": {"note": "test campaign"}, "state": "RUNNING",
            "arms": {"sld": {"kind": "sld", "n_structures": 3, "n_steps": 25,
                             "trajectories": [ids["fe_a"], ids["fe_npt"], ids["queued"]]},
                     "probe": {"kind": "test", "n_structures": 1, "n_steps": 4, "trajectories": [ids["xss"]]}}})
        for key in ("fe_a", "fe_npt", "queued"):
            db["sld_trajectories"].update_one({"_id": ids[key]}, {"$set": {"campaign": "fe_demo", "arm": "sld"}})
        db["sld_trajectories"].update_one({"_id": ids["xss"]}, {"$set": {"campaign": "fe_demo", "arm": "probe"}})
    return {"project": project, "store_file": project / "launchpad.json", "ids": ids}


def load_db(store_file: Path):
    """A private in-memory copy of the store file (the same reader the dashboard uses)."""
    from sld_workflows.dashboard.source import load_store_file

    return load_store_file(store_file)[0]
