"""FireWorks-native submission: workflows that ``lpad add`` and ``lp.add_wf`` accept as they are.

A native SLD workflow starts with one *registration* Firework per trajectory. Its task,
:class:`SLDRegisterTrajectoryTask`, holds the run spec (a mapping: a run spec or the internal form of
:func:`~sld_workflows.workflows.manage.load_input`) and, when a worker runs it,

1. validates the spec — a bad spec raises :class:`~sld_workflows.errors.SpecError` with the same one
   line ``sld submit`` prints, so the Firework FIZZLES and nothing is written;
2. stores the trajectory (document + state of its first step) in the trajectory store on the
   LaunchPad the rocket uses (``_add_launchpad_and_fw_id``; the store handle comes from the worker's
   :class:`~sld_workflows.store.runtime.WorkerRuntime`, like every SLD task);
3. adds the first step's Firework (``FWAction(additions=...)``), which continues exactly like a
   workflow added by ``sld submit``: a user with only ``lpad``, ``rlaunch`` and ``qlaunch`` runs all.

Registration is idempotent: a rerun of the registration Firework (a lost run) finds the trajectory it
registered (``registered_by.fw_id``) and adds nothing if that trajectory's Fireworks exist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fireworks import FiretaskBase, Firework, FWAction, Workflow, explicit_serialize

from sld_workflows.errors import SLDError, SpecError
from sld_workflows.store.embedded import flush_if_due, guard_launchpad
from sld_workflows.store.fireworks_compat import patch_launchpad
from sld_workflows.store.keys import FwSpec
from sld_workflows.store.runtime import WorkerRuntime
from sld_workflows.workflows.manage import (
    LAYOUTS,
    first_workflow,
    load_input,
    new_trajectory_doc,
    read_spec_file,
    store_new_trajectory,
)

#: ``spec.sld.kind`` of registration Fireworks (they belong to no trajectory yet)
REGISTER_KIND = "register"


@dataclasses.dataclass(frozen=True)
class SLDWorkflowSettings:
    """How a trajectory is run by FireWorks (everything else is in the run spec).

    ``layout``: ``merged`` | ``split`` (None: split for VASP, else merged); ``name``: trajectory name
    (None: the spec's); ``category`` / ``engine_category``: FireWorks ``_category`` of all / of the
    engine Fireworks (route them to workers); ``priority``: FireWorks ``_priority``.
    """

    layout: str | None = None
    name: str | None = None
    category: str | None = None
    engine_category: str | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        if self.layout is not None and self.layout not in LAYOUTS:
            raise SLDError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.priority is not None and (isinstance(self.priority, bool) or not isinstance(self.priority, int)):
            raise SLDError(f"priority must be an integer, got {self.priority!r}")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SLDWorkflowSettings:
        d = dict(d or {})
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SpecError(f"settings.{unknown[0]}", "unknown key")
        return cls(**d)

    def fireworks_options(self) -> dict[str, Any]:
        """The trajectory document's ``fireworks`` entry (read by the step Firework builders)."""
        return {k: v for k, v in (("category", self.category), ("engine_category", self.engine_category),
                                  ("priority", self.priority)) if v is not None}


@explicit_serialize
class SLDRegisterTrajectoryTask(FiretaskBase):
    """Validate the embedded run spec, register the trajectory, add its first step (module docstring)."""

    required_params = ["run_spec"]
    optional_params = ["settings"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        # FireWorks decodes "@module" dicts of task parameters into objects (an internal-form spec's
        # SLDState and engine); the spec is validated from its serialised form, as `sld submit` reads it
        run_spec = _as_plain(self["run_spec"])
        if not isinstance(run_spec, Mapping):
            raise SpecError("run_spec", f"must be a mapping (a run spec), got {type(run_spec).__name__}")
        lpad = getattr(self, "launchpad", None)
        if lpad is None:
            raise SLDError("SLDRegisterTrajectoryTask needs the LaunchPad (spec _add_launchpad_and_fw_id: true); "
                           "offline mode is not supported for SLD tasks")
        guard_launchpad(lpad)  # the embedded store's lock and atomic writer, also when the spec is bad
        patch_launchpad(lpad)
        settings = SLDWorkflowSettings.from_dict(self.get("settings"))
        inp = load_input(run_spec)  # SpecError: the Firework fizzles before anything is written
        doc = new_trajectory_doc(inp, settings.layout, settings.name, settings.fireworks_options())
        runtime = WorkerRuntime.current()
        store = runtime.store_for(lpad)
        fw_id = getattr(self, "fw_id", None)
        with runtime.task(lpad, fw_id, None):
            store.check_size(doc, "trajectory document")
            previous = store.find_trajectories({"registered_by.fw_id": fw_id}) if fw_id is not None else []
            for old in previous:
                if store.firework_states(old["_id"]):  # registered and its first step added: done
                    return FWAction(stored_data={"trajectory": old["_id"], "already_registered": True})
                store.delete_trajectory(old["_id"])  # registered, but its first step never was
            doc["registered_by"] = {"fw_id": fw_id}
            tid = store_new_trajectory(store, doc, inp.initial_state)
            store.update_trajectory(tid, root_fw_id=fw_id)
            root = first_workflow(store.get_trajectory(tid)).fws[0]
            if fw_id is not None:  # like `sld submit`'s workflows: `sld recover` finds SLD workflows by it
                lpad.workflows.update_one({"nodes": fw_id}, {"$set": {"metadata.sld_trajectory": tid},
                                                             "$addToSet": {"metadata.sld_trajectories": tid}})
            flush_if_due(lpad)
        return FWAction(stored_data={"trajectory": tid, "name": doc["name"], "steps": int(inp.steps)},
                        additions=[root])


def _as_plain(obj: Any) -> Any:
    import json

    from monty.json import MontyEncoder

    return json.loads(json.dumps(obj, cls=MontyEncoder))


def registration_firework(run_spec: Mapping[str, Any], settings: SLDWorkflowSettings | None = None,
                          fw_id: int | None = None) -> Firework:
    """The registration Firework of one trajectory (``run_spec`` must be JSON/YAML-serialisable)."""
    settings = settings or SLDWorkflowSettings()
    # spec.sld marks it as ours: `sld recover` reruns it if its worker died (registration is idempotent)
    spec: dict[str, Any] = {"_add_launchpad_and_fw_id": True, FwSpec.KEY: {"kind": REGISTER_KIND}}
    if settings.category:
        spec["_category"] = settings.category
    if settings.priority is not None:
        spec["_priority"] = settings.priority
    params: dict[str, Any] = {"run_spec": dict(run_spec)}
    if settings.as_dict():
        params["settings"] = settings.as_dict()
    name = settings.name or str(run_spec.get("name", "trajectory"))
    return Firework(SLDRegisterTrajectoryTask(**params), spec=spec, name=f"sld-register:{name}", fw_id=fw_id)


def native_workflow(run_specs: list[Mapping[str, Any]], settings: SLDWorkflowSettings | None = None,
                    name: str | None = None, validate: bool = True) -> Workflow:
    """One workflow holding one independent registration Firework per run spec (all validated first,
    unless the caller did: ``validate=False``)."""
    if not run_specs:
        raise SLDError("a workflow needs at least one run spec")
    for run_spec in run_specs if validate else ():
        load_input(run_spec)
    fws = [registration_firework(s, settings, fw_id=i + 1) for i, s in enumerate(run_specs)]
    first = settings.name if settings and settings.name else run_specs[0].get("name", "trajectory")
    return Workflow(fws, name=name or f"sld:{first}", metadata={"sld_native": True})


def embeddable_spec(source: str | Path | Mapping[str, Any], validate: bool = True) -> dict[str, Any]:
    """The run spec to embed in a workflow: the mapping as written (YAML file or mapping), with a
    structure *file* replaced by its content so the workflow depends on no path of this machine."""
    import copy

    if isinstance(source, Mapping):
        raw, base = copy.deepcopy(dict(source)), None
    else:
        raw, base = read_spec_file(source), Path(source)
    structure = raw.get("structure")
    if isinstance(structure, Mapping) and "file" in structure:
        from sld_workflows.run.spec import RunSpec

        spec = RunSpec.from_file(base) if base is not None else RunSpec.from_dict(raw)
        raw["structure"] = copy.deepcopy(dict(spec.with_embedded_structure().spec["structure"]))
    structure = raw.get("structure")
    if isinstance(structure, Mapping) and isinstance(structure.get("pymatgen"), Mapping):
        # without "@module"/"@class" FireWorks does not decode it into a Structure when it loads the
        # task (whose re-encoding would differ from what was written); pymatgen does not need them
        raw["structure"] = {**structure, "pymatgen": {k: v for k, v in structure["pymatgen"].items()
                                                      if k not in ("@module", "@class", "@version")}}
    if validate:
        load_input(raw)
    return raw


def workflow_yaml(wf: Workflow, header: str = "") -> str:
    """``wf`` as a FireWorks workflow file (``lpad add`` reads it): ``fws``, ``links``, ``name``,
    ``metadata`` only (no dates or states), the run specs readable and editable by hand."""
    import yaml

    d = wf.as_dict()
    for fw in d["fws"]:  # the task's class first, its parameters after
        fw["spec"]["_tasks"] = [{"_fw_name": t["_fw_name"], **t} for t in fw["spec"].get("_tasks", [])]
    out = {
        "fws": [{"fw_id": fw["fw_id"], "name": fw["name"], "spec": fw["spec"]} for fw in d["fws"]],
        "links": {str(k): v for k, v in d["links"].items()},
        "name": d["name"],
        "metadata": d["metadata"],
    }
    text = yaml.safe_dump(out, sort_keys=False, default_flow_style=None, width=110)
    lines = [f"# {line}" if line else "#" for line in header.strip().splitlines()] if header.strip() else []
    return "\n".join([*lines, text]) if lines else text


def write_workflow(wf: Workflow, path: str | Path, header: str = "") -> Path:
    path = Path(path)
    path.write_text(workflow_yaml(wf, header))
    return path


def registration_tasks(wf_dict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The registration task dicts of a workflow dict (for tests and tools reading workflow files)."""
    name = SLDRegisterTrajectoryTask._fw_name
    return [t for fw in wf_dict.get("fws", []) for t in fw["spec"].get("_tasks", []) if t.get("_fw_name") == name]


__all__ = [
    "SLDRegisterTrajectoryTask",
    "SLDWorkflowSettings",
    "embeddable_spec",
    "native_workflow",
    "registration_firework",
    "registration_tasks",
    "workflow_yaml",
    "write_workflow",
]
