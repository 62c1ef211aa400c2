"""Run spec: schema validation (one clear line naming the key), normalisation, exact round trip,
reproducible initial states, and every shipped example file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from monty.json import MontyDecoder, MontyEncoder

from sld_workflows.dynamics.initial import maxwell_boltzmann_velocities_a_per_fs
from sld_workflows.dynamics.lattice import kinetic_temperature_k
from sld_workflows.dynamics.rng import Stream, generator
from sld_workflows.dynamics.settings import DynamicsSettings
from sld_workflows.errors import SpecError
from sld_workflows.run.local import run_local
from sld_workflows.run.spec import RunSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Example files the brief asks for, and the preset each must use.
EXPECTED_EXAMPLES = {
    "bcc_fe.yaml": "bcc_fe",
    "cri3_monolayer.yaml": "cri3_monolayer",
    "cd2os2o7.yaml": "cd2os2o7",
    "mgcr2o4_anneal.yaml": "mgcr2o4",
    "bifeo3.yaml": "bifeo3",
    "bifeo3_80.yaml": "bifeo3_2x2x2",  # the 80-atom BiFeO3 cell
}


def presets_available() -> bool:
    try:
        from sld_workflows.engines.model import presets  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture()
def poscar(bcc_fe_poscar: Path) -> Path:
    return bcc_fe_poscar


@pytest.fixture()
def raw(tiny_fe_raw: dict) -> dict:
    return tiny_fe_raw


# ------------------------------------------------------------------------------ valid specs
def test_valid_spec_fills_defaults_and_builds_settings(raw):
    spec = RunSpec.from_dict(raw)
    assert spec.name == "tiny-fe"
    assert spec.steps == 4 and spec.output_every == 2
    assert isinstance(spec.settings, DynamicsSettings)
    assert spec.settings.dt_fs == 0.5 and spec.settings.seed == 11 and spec.settings.ensemble == "nvt"
    assert spec.settings.temperature(123.0) == 300.0
    # defaults written out explicitly, equal to DynamicsSettings' own defaults
    d = spec.spec["dynamics"]
    assert d["spin_scheme"] == DynamicsSettings(dt_fs=1.0).spin_scheme == "sib"
    assert d["friction_per_fs"] == DynamicsSettings(dt_fs=1.0).friction_per_fs
    state = spec.build_initial_state()
    assert state.n_sites == 16 and np.all(state.moments == 2.2)
    assert np.allclose(np.linalg.norm(state.spins, axis=1), 1.0, atol=1e-12)
    evaluation = spec.build_engine().evaluate(state)
    assert evaluation.forces_ev_per_a.shape == (16, 3)


def test_round_trip_is_exact_and_json_safe(raw):
    raw["dynamics"]["temperature"] = {"ramp": {"start_k": 50, "end_k": 5, "duration_fs": 100}}
    spec = RunSpec.from_dict(raw)
    d = spec.as_dict()
    again = RunSpec.from_dict(d)
    assert again.as_dict() == d
    assert again == spec
    assert RunSpec.from_dict(d["spec"]) == spec  # the plain mapping and the as_dict form
    with pytest.raises(SpecError, match=r"^spec: unknown key"):
        RunSpec.from_dict({**d["spec"], "spec": {}})
    decoded = json.loads(json.dumps(spec, cls=MontyEncoder), cls=MontyDecoder)
    assert isinstance(decoded, RunSpec) and decoded.as_dict() == d
    assert decoded.settings == spec.settings
    assert decoded.build_initial_state().same_as(spec.build_initial_state())


def test_relative_structure_file_is_resolved_against_the_spec_file(raw, poscar, tmp_path):
    raw["structure"]["file"] = "POSCAR"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = RunSpec.from_file(path)
    assert spec.spec["structure"]["file"] == str(poscar.resolve())


def test_random_spins_come_from_the_initial_stream_of_the_seed(raw):
    spec = RunSpec.from_dict(raw)
    expected = generator(11, 0, Stream.INITIAL).standard_normal((16, 3))
    expected /= np.linalg.norm(expected, axis=1)[:, None]
    assert np.allclose(spec.build_initial_state().spins, expected, rtol=0, atol=1e-15)
    again = RunSpec.from_dict(copy.deepcopy(raw)).build_initial_state()
    assert np.array_equal(again.spins, spec.build_initial_state().spins)
    assert np.array_equal(again.velocities, spec.build_initial_state().velocities)
    raw["dynamics"]["seed"] = 12
    other = RunSpec.from_dict(raw).build_initial_state()
    assert not np.allclose(other.spins, again.spins)
    assert not np.allclose(other.velocities, again.velocities)


def test_ferro_and_given_spins(raw):
    raw["spins"] = {"init": "ferro", "direction": [1, 1, 0]}
    state = RunSpec.from_dict(raw).build_initial_state()
    assert np.allclose(state.spins, np.array([1, 1, 0]) / np.sqrt(2), atol=1e-15)
    values = [[0, 0, 1 if i % 2 == 0 else -1] for i in range(16)]
    raw["spins"] = {"init": "given", "values": values}
    state = RunSpec.from_dict(raw).build_initial_state()
    assert np.array_equal(state.spins, np.array(values, dtype=float))


def test_maxwell_boltzmann_velocities_statistics():
    """N = 20000 Fe atoms: the kinetic temperature has relative s.d. sqrt(2/(3N)) = 0.58 %; allow 4 s.d.
    The centre-of-mass momentum is removed to round-off."""
    n, t = 20000, 300.0
    masses = np.full(n, 55.845)
    v = maxwell_boltzmann_velocities_a_per_fs(masses, t, seed=5)
    assert np.abs(masses @ v).max() < 1e-9 * np.abs(masses[:, None] * v).sum(axis=0).max()
    expected = t * (n - 1) / n
    assert abs(kinetic_temperature_k(v, masses) - expected) < 4 * np.sqrt(2 / (3 * n)) * expected
    assert np.array_equal(v, maxwell_boltzmann_velocities_a_per_fs(masses, t, seed=5))


def test_with_steps_changes_only_steps(raw):
    spec = RunSpec.from_dict(raw)
    longer = spec.with_steps(40)
    assert longer.steps == 40 and spec.steps == 4
    assert longer.settings == spec.settings
    assert longer.spec == {**spec.spec, "dynamics": {**spec.spec["dynamics"], "steps": 40}}
    assert longer.build_initial_state().same_as(spec.build_initial_state())
    with pytest.raises(SpecError, match=r"^dynamics\.steps: must be >= 0, got -1$"):
        spec.with_steps(-1)


def test_derived_specs_never_share_an_engine_or_state(raw, poscar):
    """A derived spec is a new spec: it builds its own (mutable) engine, and its own state."""
    spec = RunSpec.from_dict(raw)
    assert spec.build_engine() is spec.build_engine()  # built once per spec
    for derived in (spec.with_steps(5), spec.with_embedded_structure()):
        assert derived.build_engine() is not spec.build_engine()
        assert derived.build_initial_state() is not spec.build_initial_state()
        assert derived.build_initial_state().same_as(spec.build_initial_state())
    assert spec.with_steps(5).build_engine() is not spec.build_engine()


def test_spec_and_its_sections_are_immutable(raw):
    import dataclasses

    raw["dynamics"]["temperature"] = {"ramp": {"start_k": 50, "end_k": 5, "duration_fs": 100}}
    spec = RunSpec.from_dict(raw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dynamics.steps = 7
    with pytest.raises(TypeError):  # nested mappings are read-only views
        spec.dynamics.temperature["ramp"]["end_k"] = 1
    with pytest.raises(TypeError):
        spec.structure.moments["Fe"] = 1.0
    mutated = spec.spec  # a fresh plain copy: changing it changes nothing in the spec
    mutated["dynamics"]["temperature"]["ramp"]["end_k"] = 1
    mutated["structure"]["supercell"][0] = 9
    assert spec.spec["dynamics"]["temperature"]["ramp"]["end_k"] == 5 and spec.structure.supercell == (1, 1, 1)


def test_dynamics_section_holds_every_settings_field():
    """The dynamics keys of a spec are DynamicsSettings' fields plus ``steps``, in one list: the
    section dataclass (its field order is the order of the stored mapping)."""
    import dataclasses

    from sld_workflows.run.spec.sections import DynamicsSection

    assert DynamicsSection.keys() == ("steps", *DynamicsSettings.field_names())
    assert DynamicsSection.keys() == tuple(f.name for f in dataclasses.fields(DynamicsSection))


# ------------------------------------------------------------------------------ invalid specs
def _set(d: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for k in path:
        d = d[k]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()

BAD_CASES = [
    # (dotted key to change, new value, expected key in the message, expected reason text)
    ("dynamics.dt_fs", _DELETE, "dynamics.dt_fs", "missing (required)"),
    ("dynamics.dt_fs", "fast", "dynamics.dt_fs", "must be a number, got str 'fast'"),
    ("dynamics.dt_fs", -0.5, "dynamics.dt_fs", "must be > 0, got -0.5"),
    ("dynamics.steps", 2.5, "dynamics.steps", "must be an integer, got float 2.5"),
    ("dynamics.temprature", 300, "dynamics.temprature", "unknown key (did you mean 'temperature'?"),
    ("dynamics.ensemble", "nvtt", "dynamics.ensemble", "unknown value 'nvtt' (did you mean 'nvt'?"),
    ("dynamics.temperature", {"ramp": {"start_k": 50}}, "dynamics.temperature", "ramp needs start_k, end_k"),
    ("dynamics.seed", -1, "dynamics.seed", "must be >= 0, got -1"),
    ("output.every", 0, "output.every", "must be >= 1, got 0"),
    ("outptu", {"every": 1}, "outptu", "unknown key (did you mean 'output'?"),
    ("name", _DELETE, "name", "missing (required)"),
    ("structure.moments", {"Fe": 0.0}, "structure.moments", "no magnetic sites: every moment is 0"),
    ("structure.moments", {"Co": 1.0}, "structure.moments", "species ['Co'] not in the structure"),
    ("structure.file", "no/such/POSCAR", "structure.file", "file not found"),
    ("spins.values", [[0, 0, 1]] * 3, "spins.values", "only used with init: given"),
    ("spins", {"init": "given", "values": [[0, 0, 1]] * 3}, "spins.values",
     "expected 16 rows of [x, y, z] (one per site), got 3 rows"),
    ("spins", {"init": "given", "values": [[0, 0]] * 16}, "spins.values[0]", "must be a list of 3 numbers"),
    ("spins.init", "randm", "spins.init", "unknown value 'randm' (did you mean 'random'?"),
    ("velocities.temperature_k", -5, "velocities.temperature_k", "must be >= 0, got -5"),
    ("engine.kind", "lammps", "engine.kind", "unknown value 'lammps'"),
    ("engine.kind", "model", "engine.kind", "the model engine needs structure.preset"),
    ("engine.heisenberg.cutoff_a", 1.0, "engine.heisenberg.cutoff_a", "no pair of magnetic sites is closer"),
    ("engine.heisenberg.j_eV", 0.1, "engine.heisenberg.j_eV", "unknown key (did you mean 'j_ev'?"),
    ("dynamics.ensemble", "npt", "dynamics.ensemble", "npt needs an engine that returns stress"),
]


@pytest.mark.parametrize(("where", "value", "key", "reason"), BAD_CASES, ids=[c[0] + "-" + c[2] for c in BAD_CASES])
def test_bad_spec_gives_one_line_naming_the_key_and_writes_nothing(raw, tmp_path, where, value, key, reason):
    _set(raw, where, value)
    with pytest.raises(SpecError) as info:
        RunSpec.from_dict(raw)
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"{key}: "), message
    assert reason in message, message
    assert "\n" not in message
    out = tmp_path / "never"
    with pytest.raises(SpecError):
        run_local(raw, out, progress=False)
    assert not out.exists()


def test_unknown_preset_names_the_preset_key(raw):
    raw["structure"] = {"preset": "bcc_fee", "supercell": [1, 1, 1]}
    raw["engine"] = {"kind": "model"}
    with pytest.raises(SpecError) as info:
        RunSpec.from_dict(raw)
    assert info.value.key == "structure.preset"
    if presets_available():
        assert "unknown preset 'bcc_fee' (did you mean 'bcc_fe'?" in str(info.value)
    else:
        assert "the model presets are not available" in str(info.value)


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndynamics: {dt_fs: 0.1, steps: [\n")
    with pytest.raises(SpecError) as info:
        RunSpec.from_file(path)
    assert "not valid YAML (line" in str(info.value) and "\n" not in str(info.value)
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="the spec must be a mapping of sections, got list"):
        RunSpec.from_file(path)
    with pytest.raises(SpecError, match="spec file not found"):
        RunSpec.from_file(tmp_path / "absent.yaml")


# ------------------------------------------------------------------------------ examples
def test_examples_exist_and_validate(monkeypatch, tmp_path):
    """Every example loads and validates. With the model presets installed, each builds its state and
    engine and evaluates the initial state once. Without them, every section except the preset lookup
    is validated (preset names are then checked against the expected list) -- reported, not skipped."""
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert set(EXPECTED_EXAMPLES) <= set(files), files
    assert (EXAMPLES / "README.md").is_file()
    readme = (EXAMPLES / "README.md").read_text()
    for name in files:
        assert name in readme, f"examples/README.md does not describe {name}"
    raws = {name: yaml.safe_load((EXAMPLES / name).read_text()) for name in files}
    for name, preset in EXPECTED_EXAMPLES.items():
        if preset is not None:
            assert raws[name]["structure"]["preset"] == preset, name
    anneal = raws["mgcr2o4_anneal.yaml"]["dynamics"]
    assert anneal["ensemble"] == "npt"
    assert anneal["temperature"]["ramp"]["start_k"] == 50 and anneal["temperature"]["ramp"]["end_k"] == 5
    if presets_available():
        for name in files:
            spec = RunSpec.from_file(EXAMPLES / name)
            state = spec.build_initial_state()
            evaluation = spec.build_engine().evaluate(state)
            assert evaluation.n_sites == state.n_sites and np.isfinite(evaluation.energy_ev), name
            assert np.any(state.magnetic), name
            # the whole pipeline (engine, ensemble, order parameters, plot) for 4 steps
            short = spec.spec
            short["dynamics"]["steps"], short["output"]["every"] = 4, 2
            result = run_local(short, tmp_path / name, progress=False)
            assert result.steps_completed == 4 and result.frames_written == 3, name
            assert result.plot_path is not None and result.plot_path.is_file(), name
        from sld_workflows.engines.model.presets import PRESET_NAMES

        bifeo3_80 = RunSpec.from_file(EXAMPLES / "bifeo3_80.yaml")
        assert bifeo3_80.preset in PRESET_NAMES and bifeo3_80.build_initial_state().n_sites == 80
    else:
        from sld_workflows.engines import registry, sections
        from sld_workflows.run.spec.structure import engine_context, structure_from_dict

        class FakePresets:
            PRESET_NAMES = tuple({raws[n]["structure"]["preset"] for n in files})

        monkeypatch.setattr(sections, "presets_module", lambda key: FakePresets)
        for name in files:
            structure = structure_from_dict(raws[name]["structure"], EXAMPLES)
            engine = registry.ENGINES.section_from_dict(raws[name]["engine"], engine_context(structure))
            assert engine.kind == "model", name


# ------------------------------------------------------------------------------ engines
def test_vasp_engine_is_built_lazily_from_the_engine_section(raw):
    from sld_workflows.engines.vasp import VaspEngine

    raw["engine"] = {"kind": "vasp", "rwigs": {"Fe": 1.3}, "command": "sld-fake-vasp", "lambda": 5}
    raw["dynamics"]["spin_scheme"] = "sib-fixed-field"
    engine = RunSpec.from_dict(raw).build_engine()
    assert isinstance(engine, VaspEngine)
    assert engine.command == ("sld-fake-vasp",) and engine.input_set.lambda_ == 5.0
    raw["engine"] = {"kind": "vasp", "command": "sld-fake-vasp"}
    with pytest.raises(SpecError, match=r"^engine\.rwigs: required"):
        RunSpec.from_dict(raw)
    raw["engine"] = {"kind": "vasp", "rwigs": {"Fe": 1.3}, "command": ""}
    with pytest.raises(SpecError, match=r"^engine\.command: empty VASP command$"):
        RunSpec.from_dict(raw)


MODEL_BAD_CASES = [
    ({"overrides": {"dmi": {"scal": 0.5}}}, "engine.overrides.dmi.scal", "unknown key"),
    ({"overrides": {"magic": {"enabled": False}}}, "engine.overrides.magic", "unknown term group"),
    ({"external_field_ev_per_mub": [0, 1]}, "engine.external_field_ev_per_mub", "must be a list of 3 numbers"),
    ({"preset": "bifeo3"}, "engine.preset", "'bifeo3' differs from structure.preset 'bcc_fe'"),
    ({"heisenberg": {"j_ev": 0.1, "cutoff_a": 3}}, "engine.heisenberg", "unknown key"),
]


@pytest.mark.parametrize(("engine", "key", "reason"), MODEL_BAD_CASES, ids=[c[1] for c in MODEL_BAD_CASES])
def test_model_engine_errors_name_the_spec_key(raw, tmp_path, engine, key, reason):
    assert presets_available(), "the model presets (sld_workflows.engines.model.presets) must be importable"
    raw["structure"] = {"preset": "bcc_fe", "supercell": [2, 2, 2]}
    raw["engine"] = {"kind": "model", **engine}
    with pytest.raises(SpecError) as info:
        run_local(raw, tmp_path / "never", progress=False)
    assert info.value.key == key and reason in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(key + ": ")
    assert not (tmp_path / "never").exists()


def test_model_preset_spec_builds_state_and_engine(raw):
    raw["structure"] = {"preset": "bcc_fe", "supercell": 2}
    raw["engine"] = {"kind": "model", "external_field_ev_per_mub": [0, 0, 0.01]}
    spec = RunSpec.from_dict(raw)
    assert spec.spec["structure"]["supercell"] == [2, 2, 2] and spec.preset == "bcc_fe"
    state = spec.build_initial_state()
    assert state.n_sites == 16 and np.all(state.moments == 2.2)
    # random spins from the INITIAL stream, as for a file structure
    expected = generator(11, 0, Stream.INITIAL).standard_normal((16, 3))
    assert np.allclose(state.spins, expected / np.linalg.norm(expected, axis=1)[:, None], rtol=0, atol=1e-15)
    evaluation = spec.build_engine().evaluate(state)
    assert evaluation.stress_ev_per_a3 is not None and evaluation.field_parallel_ev_per_mub is not None


def test_embedded_structure_survives_without_the_file(raw, poscar):
    spec = RunSpec.from_dict(raw)
    embedded = spec.with_embedded_structure()
    assert "file" not in embedded.spec["structure"] and embedded.spec["structure"]["moments"] == {"Fe": 2.2}
    poscar.unlink()  # as on another machine
    text = json.dumps(embedded, cls=MontyEncoder)
    again = json.loads(text, cls=MontyDecoder)
    assert isinstance(again, RunSpec) and again.as_dict() == embedded.as_dict()
    assert again.build_initial_state().same_as(spec.build_initial_state())  # Direct POSCAR: exact
    with pytest.raises(SpecError) as info:
        RunSpec.from_dict(spec.spec)  # the file form needs the file
    assert info.value.key == "structure.file"
    broken = embedded.spec
    broken["structure"]["pymatgen"] = {"lattice": "nope"}
    with pytest.raises(SpecError, match=r"^structure\.pymatgen: not a pymatgen Structure dict"):
        RunSpec.from_dict(broken)
    both = embedded.spec
    both["structure"]["preset"] = "bcc_fe"
    with pytest.raises(SpecError, match=r"^structure: give exactly one of preset, file, pymatgen, got preset, py"):
        RunSpec.from_dict(both)


def test_the_documented_full_example_is_valid():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "run_spec.md").read_text()
    block = doc.split("## Full example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    raw = yaml.safe_load(block)
    assert set(raw) == {"name", "structure", "spins", "velocities", "engine", "dynamics", "output"}
    assert presets_available(), "the model presets (sld_workflows.engines.model.presets) must be importable"
    spec = RunSpec.from_dict(raw)
    assert spec.steps == 2000 and spec.output_every == 20 and spec.settings.dt_fs == 0.1
    assert spec.build_initial_state().n_sites == 432


# ------------------------------------------------------------------------------ engine registry
def test_a_new_engine_kind_is_one_registration(raw, monkeypatch):
    """Registering a kind (section dataclass + builder) is all the spec needs to validate, store
    and build it; unknown kinds list what is registered."""
    import dataclasses

    from sld_workflows.engines import registry
    from sld_workflows.engines.analytic import ZeemanEngine
    from sld_workflows.schema import number

    @dataclasses.dataclass(frozen=True)
    class ToySection:
        kind = "toy"
        field_z: float

        @classmethod
        def from_dict(cls, d, context):
            return cls(number(d.get("field_z"), "engine.field_z"))

        def as_dict(self):
            return {"kind": self.kind, "field_z": self.field_z}

    built = []

    def build_toy(section, state, context):
        built.append((state.n_sites, context.preset))
        return ZeemanEngine((0.0, 0.0, section.field_z))

    monkeypatch.setattr(registry.ENGINES, "_kinds", dict(registry.ENGINES._kinds))  # undone after the test
    registry.register_engine("toy", ToySection, build_toy)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_engine("toy", ToySection, build_toy)
    assert registry.ENGINES.kinds() == ("model", "vasp", "analytic", "abinit", "toy")
    raw["engine"] = {"kind": "toy", "field_z": 0.5}
    raw["dynamics"]["ensemble"] = "spin-only"
    raw.pop("velocities")
    spec = RunSpec.from_dict(raw)
    assert spec.engine_kind == "toy" and spec.spec["engine"] == {"kind": "toy", "field_z": 0.5}
    assert isinstance(spec.build_engine(), ZeemanEngine) and built == [(16, None)]
    assert RunSpec.from_dict(spec.as_dict()) == spec
    raw["engine"] = {"kind": "toy", "field_z": "strong"}
    with pytest.raises(SpecError, match=r"^engine\.field_z: must be a number"):
        RunSpec.from_dict(raw)
    raw["engine"] = {"kind": "tyo"}
    with pytest.raises(SpecError, match=r"^engine\.kind: unknown value 'tyo' \(did you mean 'toy'\? "
                                        r"choose one of: model, vasp, analytic, abinit, toy\)$"):
        RunSpec.from_dict(raw)


def test_npt_asks_the_engine_declaration_for_stress(raw):
    """The npt check reads implemented_properties (no guess from the section's keys) and names the
    part that has no stress."""
    raw["dynamics"]["ensemble"] = "npt"
    with pytest.raises(SpecError, match=r"^dynamics\.ensemble: npt needs an engine that returns stress; "
                                        r"HarmonicEngine computes none$"):
        RunSpec.from_dict(raw)
    del raw["engine"]["harmonic"]  # exchange only: zero stress, declared
    spec = RunSpec.from_dict(raw)
    assert spec.build_engine().evaluate(spec.build_initial_state()).stress_ev_per_a3 is not None


def test_initial_conditions_are_the_dynamics_layer_functions(raw):
    """The spec's random spins and velocities are those of sld_workflows.dynamics.initial for the seed."""
    from sld_workflows.dynamics import initial

    state = RunSpec.from_dict(raw).build_initial_state()
    directions = initial.random_spin_directions(16, 11)
    assert np.array_equal(state.spins, state.replace(spins=directions).spins)
    assert np.array_equal(state.velocities, maxwell_boltzmann_velocities_a_per_fs(state.masses_amu, 300.0, 11))
    magnetic = np.array([True, False, True])
    with pytest.raises(ValueError, match=r"^expected 3 rows of \[x, y, z\] \(one per site\) or 2 rows"):
        initial.given_spin_directions(np.ones((1, 3)), magnetic)
    with pytest.raises(ValueError, match=r"^zero vector on magnetic site\(s\) \[2\]$"):
        initial.given_spin_directions(np.array([[0, 0, 1], [0, 0, 0]]), magnetic)
    assert np.array_equal(initial.given_spin_directions(np.array([[0, 0, 1], [1, 0, 0]]), magnetic),
                          [[0, 0, 1], [0, 0, 0], [1, 0, 0]])
