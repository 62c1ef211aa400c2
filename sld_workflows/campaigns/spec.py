"""The campaign spec (YAML): one pool of initial structures, an SLD arm, a randomised-spin reference
arm and independent SLD test trajectories (the paper's BiFeO3 training-data benchmark, section IV).

Validated completely before anything is written, like a run spec: errors are one line naming the key
(``arms.sld.n_steps: must be >= 1, got 0``). The material, engine and dynamics sections are run-spec
sections (docs/run_spec.md) and are checked by building a :class:`~sld_workflows.run.spec.RunSpec`.

Layout (see docs/campaigns.md)::

    name: bifeo3_paper
    structure: {preset: bifeo3_2x2x2}        # run-spec structure section (material, moments, site order)
    engine: {kind: model}                    # run-spec engine section (model, vasp, ...)
    dynamics: {dt_fs: 1.0, ensemble: nvt, alpha: 0.2, ...}   # run-spec dynamics, without steps/temperature
    pool:
      source: npt                            # npt | files
      n_structures: 600                      # shared by the sld and reference arms
      n_test: 1                              # extra structures for the test trajectories
      npt: {start_k: 300, end_k: 900, interval_steps: 10, equilibration_steps: 200, dt_fs: 1.0, seed: 11}
      files: [a.extxyz, b.vasp]              # source: files (n_structures + n_test files)
      temperature_k: 300                     # source: files (bath temperature of their trajectories)
    arms:
      sld: {n_steps: 20}                     # 20 stored snapshots per structure (steps 0..19)
      reference: {n_statics: 10}             # 10 uniformly random spin configurations per structure
      test: {n_steps: 20}
    submission: {max_active: 64, steps_per_firework: auto, statics_per_firework: auto}
    seed: 1
    tags: {paper: fig3}
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sld_workflows import schema
from sld_workflows.schema import spec_error

TOP_KEYS = ("name", "structure", "engine", "dynamics", "spins", "pool", "arms", "submission", "seed", "tags")
POOL_KEYS = ("source", "n_structures", "n_test", "npt", "files", "temperature_k")
NPT_KEYS = ("start_k", "end_k", "interval_steps", "equilibration_steps", "dt_fs", "seed", "pressure_gpa",
            "friction_per_fs", "alpha")
ARM_KINDS = {"sld": "sld", "reference": "reference", "test": "test"}
SUBMISSION_KEYS = ("max_active", "steps_per_firework", "statics_per_firework", "category")
#: dynamics keys the campaign sets itself (per trajectory)
RESERVED_DYNAMICS = ("steps", "temperature")


@dataclasses.dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign spec; ``raw`` is the normalised mapping stored in ``sld_campaigns.spec``."""

    raw: dict[str, Any]
    base_dir: str = "."

    # --------------------------------------------------------------- construction
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> CampaignSpec:
        from sld_workflows.run.spec.loading import read_spec_file

        path = Path(path)
        return cls.from_dict(read_spec_file(path), base_dir=str(path.parent.resolve()))

    @classmethod
    def from_dict(cls, d: Any, base_dir: str = ".") -> CampaignSpec:
        d = schema.mapping(d, "campaign")
        schema.check_keys(d, "", TOP_KEYS, required=("name", "structure", "engine", "dynamics", "pool", "arms"))
        name = schema.string(d["name"], "name")
        if any(c in name for c in " /\\\t\n"):
            raise spec_error("name", f"must not contain spaces or slashes, got {name!r}")
        seed = schema.integer(d.get("seed", 0), "seed", minimum=0)
        dynamics = schema.mapping(d["dynamics"], "dynamics")
        for key in RESERVED_DYNAMICS:
            if key in dynamics:
                raise spec_error(f"dynamics.{key}", "set by the campaign (arms.*.n_steps, pool temperatures); "
                                 "remove it")
        pool = _pool(schema.mapping(d["pool"], "pool"), base_dir)
        arms = _arms(schema.mapping(d["arms"], "arms"))
        if pool["n_test"] and "test" not in arms:
            raise spec_error("arms.test", "missing: pool.n_test > 0 needs arms.test.n_steps")
        if "test" in arms and not pool["n_test"]:
            raise spec_error("pool.n_test", "must be >= 1 when arms.test is given")
        submission = _submission(schema.mapping(d.get("submission") or {}, "submission"))
        tags = schema.mapping(d.get("tags") or {}, "tags")
        for k, v in tags.items():
            if not isinstance(v, str | int | float | bool):
                raise spec_error(f"tags.{k}", f"must be a string or number, got {schema.describe(v)}")
        raw = {"name": name, "structure": dict(schema.mapping(d["structure"], "structure")),
               "engine": dict(schema.mapping(d["engine"], "engine")), "dynamics": dict(dynamics),
               "spins": dict(schema.mapping(d.get("spins") or {"init": "random"}, "spins")),
               "pool": pool, "arms": arms, "submission": submission, "seed": seed, "tags": dict(tags)}
        spec = cls(raw, base_dir)
        spec.base_run_spec(temperature_k=300.0, steps=1, seed=0)  # run-spec validation of the shared sections
        return spec

    # --------------------------------------------------------------- views
    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def engine_kind(self) -> str:
        return str(self.raw["engine"].get("kind", "model"))

    @property
    def in_process(self) -> bool:
        """Model/analytic engines run in the worker's process: many steps per Firework."""
        return self.engine_kind not in ("vasp", "abinit")

    def base_run_spec(self, temperature_k: float, steps: int, seed: int):
        """The run spec of one trajectory (structure, engine, dynamics with its temperature, steps, seed)."""
        from sld_workflows.run.spec import RunSpec

        dynamics = {**self.raw["dynamics"], "steps": int(steps), "temperature": float(temperature_k),
                    "seed": int(seed)}
        d = {"name": self.name, "structure": self.raw["structure"], "spins": self.raw["spins"],
             "engine": self.raw["engine"], "dynamics": dynamics}
        return RunSpec.from_dict(d, base_dir=Path(self.base_dir))

    def arm_sizes(self) -> dict[str, dict[str, Any]]:
        """arm name -> {kind, n_structures, n_steps | n_statics} (the ``arms`` of the campaign document)."""
        pool, arms = self.raw["pool"], self.raw["arms"]
        out: dict[str, dict[str, Any]] = {}
        for arm, cfg in arms.items():
            n = pool["n_test"] if arm == "test" else pool["n_structures"]
            out[arm] = {"kind": ARM_KINDS[arm], "n_structures": int(n), **cfg}
        return out

    def steps_per_firework(self) -> int:
        value = self.raw["submission"]["steps_per_firework"]
        if value == "auto":
            return max(a.get("n_steps", 1) for a in self.raw["arms"].values()) if self.in_process else 1
        return int(value)

    def statics_per_firework(self) -> int:
        value = self.raw["submission"]["statics_per_firework"]
        if value == "auto":
            return int(self.raw["arms"].get("reference", {}).get("n_statics", 1)) if self.in_process else 1
        return int(value)


def _pool(p: dict[str, Any], base_dir: str) -> dict[str, Any]:
    schema.check_keys(p, "pool", POOL_KEYS, required=("source", "n_structures"))
    source = schema.string(p["source"], "pool.source", ("npt", "files"))
    n = schema.integer(p["n_structures"], "pool.n_structures", minimum=1)
    n_test = schema.integer(p.get("n_test", 0), "pool.n_test", minimum=0)
    out: dict[str, Any] = {"source": source, "n_structures": n, "n_test": n_test}
    if source == "npt":
        if "files" in p:
            raise spec_error("pool.files", "only with pool.source: files")
        npt = schema.mapping(p.get("npt") or {}, "pool.npt")
        schema.check_keys(npt, "pool.npt", NPT_KEYS, required=("start_k", "end_k"))
        cfg = {
            "start_k": schema.number(npt["start_k"], "pool.npt.start_k", minimum=0.0),
            "end_k": schema.number(npt["end_k"], "pool.npt.end_k", minimum=0.0),
            "interval_steps": schema.integer(npt.get("interval_steps", 10), "pool.npt.interval_steps", minimum=1),
            "equilibration_steps": schema.integer(npt.get("equilibration_steps", 200),
                                                  "pool.npt.equilibration_steps", minimum=0),
            "dt_fs": schema.number(npt.get("dt_fs", 1.0), "pool.npt.dt_fs", minimum=0.0, strict=True),
            "seed": schema.integer(npt.get("seed", 11), "pool.npt.seed", minimum=0),
            "pressure_gpa": schema.number(npt.get("pressure_gpa", 0.0), "pool.npt.pressure_gpa"),
            "friction_per_fs": schema.number(npt.get("friction_per_fs", 0.02), "pool.npt.friction_per_fs",
                                             minimum=0.0, strict=True),
            "alpha": schema.number(npt.get("alpha", 0.2), "pool.npt.alpha", minimum=0.0, strict=True),
        }
        out["npt"] = cfg
    else:
        files = p.get("files")
        if not isinstance(files, list) or not files:
            raise spec_error("pool.files", "must be a non-empty list of structure files (extxyz, POSCAR, cif)")
        paths = []
        for i, f in enumerate(files):
            f = schema.string(f, f"pool.files[{i}]")
            path = Path(f) if os.path.isabs(f) else Path(base_dir) / f
            paths.append(str(path))
        if len(paths) != n + n_test:
            raise spec_error("pool.files", f"needs n_structures + n_test = {n + n_test} files, got {len(paths)}")
        out["files"] = paths
        out["temperature_k"] = schema.number(p.get("temperature_k", 300.0), "pool.temperature_k", minimum=0.0)
    return out


def _arms(a: dict[str, Any]) -> dict[str, dict[str, int]]:
    schema.check_keys(a, "arms", tuple(ARM_KINDS))
    if not a:
        raise spec_error("arms", "needs at least one of sld, reference, test")
    out: dict[str, dict[str, int]] = {}
    for arm, cfg in a.items():
        cfg = schema.mapping(cfg, f"arms.{arm}")
        count = "n_statics" if arm == "reference" else "n_steps"
        schema.check_keys(cfg, f"arms.{arm}", (count,), required=(count,))
        out[arm] = {count: schema.integer(cfg[count], f"arms.{arm}.{count}", minimum=1)}
    return out


def _submission(s: dict[str, Any]) -> dict[str, Any]:
    schema.check_keys(s, "submission", SUBMISSION_KEYS)
    out: dict[str, Any] = {"max_active": schema.integer(s.get("max_active", 64), "submission.max_active", minimum=1)}
    for key in ("steps_per_firework", "statics_per_firework"):
        value = s.get(key, "auto")
        out[key] = "auto" if value == "auto" else schema.integer(value, f"submission.{key}", minimum=1)
    if s.get("category") is not None:
        out["category"] = schema.string(s["category"], "submission.category")
    return out
