"""AbinitEngine without running ABINIT: spec validation (one line per bad input, before anything
runs), the input file, serialisation, the run spec, and failures of a stand-in executable (abort,
non-converged SCF from a real output, missing binary) ending in restartable errors naming the
run directory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from sld_workflows.engines.abinit import AbinitEngine, AbinitRunError
from sld_workflows.engines.abinit.inputs import abinit_input, spinat
from sld_workflows.engines.file_engine import EngineRunError
from sld_workflows.engines.model.presets import make_preset
from sld_workflows.errors import SpecError

DATA = Path(__file__).parent / "data" / "abinit"
PP = "/usr/share/abinit/psp/Pseudodojo_paw_pbe_standard"


def canted_fe():
    state, _ = make_preset("bcc_fe")
    th = np.radians([75.0, 105.0])
    return state.replace(spins=np.c_[np.sin(th), 0 * th, np.cos(th)])


def fake_abinit(tmp_path: Path, body: str) -> str:
    """An executable standing in for ``abinit`` (its first argument is the input file)."""
    exe = tmp_path / "bin" / "abinit"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def pp_dir(tmp_path: Path) -> str:
    """A pseudopotential directory with a minimal Fe.xml (PAW radius only) when abinit-data is absent."""
    if Path(PP, "Fe.xml").is_file():
        return PP
    d = tmp_path / "psp"
    d.mkdir(exist_ok=True)
    (d / "Fe.xml").write_text('<paw_dataset><paw_radius rc=" 2.1153157434"/></paw_dataset>\n')
    return str(d)


def spec(tmp_path, **extra):
    command = extra.pop("command", None) or fake_abinit(tmp_path, "exit 0\n")
    return {"ratsph_bohr": {"Fe": 2.12}, "pp_dirpath": pp_dir(tmp_path), "ecut_ha": 12, "kpoints": [2, 2, 2],
            "command": command, "run_dir": str(tmp_path / "runs"), **extra}


@pytest.mark.parametrize("change, key, words", [
    ({"pseudos": {"Fe": "Fe.nonexistent.xml"}}, "engine.pseudos", "no pseudopotential for Fe"),
    ({"ratsph_bohr": {"Co": 2.2}}, "engine.ratsph_bohr", "no sphere radius for magnetic species Fe"),
    ({"ratsph_bohr": {"Fe": 2.0}}, "engine.ratsph_bohr.Fe", "smaller than the PAW radius"),
    ({"magcon_lambda": 0.0}, "engine.magcon_lambda", "must be > 0"),
    ({"magcon_lambda": -0.1}, "engine.magcon_lambda", "must be > 0"),
    ({"command": "/nonexistent/abinit"}, "engine.command", "not found on PATH"),
    ({"kpoints": [2, 2]}, "engine.kpoints", "3 positive integers"),
    ({"extra": {"ecut": 30}}, "engine.extra", "set by the engine"),
    ({"ecutt": 3}, "engine.ecutt", "unknown key"),
])
def test_bad_input_is_one_line_before_anything_runs(tmp_path, change, key, words):
    s = {**spec(tmp_path), **change}
    with pytest.raises(SpecError) as info:
        AbinitEngine.from_spec(s, canted_fe())
    msg = str(info.value)
    assert info.value.key == key and words in msg and "\n" not in msg
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_input_file(tmp_path):
    state = canted_fe().replace(positions=canted_fe().positions + [[0, 0, 0], [0.0283, 0, 0]])
    engine = AbinitEngine.from_spec(spec(tmp_path, magcon_lambda=0.25, extra={"diemix": 0.3}), state)
    text = abinit_input(state, engine.settings)
    for line in ("magconon 1", "magcon_lambda 0.25", "ratsph 2.12", "nspinor 2", "nspden 4", "chksymtnons 0",
                 "ngkpt 2 2 2", "ecut 12.0", "pawecutdg 24.0", "optstress 0", "diemix 0.3", 'pseudos "Fe.xml"'):
        assert line in text, line
    assert "irdwfk" not in text and "irdwfk 1" in abinit_input(state, engine.settings, restart=True)
    sp = spinat(state)
    assert np.allclose(np.linalg.norm(sp, axis=1), 2.2) and np.allclose(sp / 2.2, state.spins)
    xred = np.array([[float(x) for x in line.split()[-3:]] for line in
                     text.split("xred", 1)[1].split("nspinor", 1)[0].strip().splitlines()])
    assert np.allclose(xred @ state.cell, state.positions, atol=1e-10)
    # the SIB midpoint's non-unit spin: the direction is constrained
    mid = state.replace(spins=0.9 * state.spins, unit_spins=False)
    assert np.allclose(spinat(mid), sp)


def test_serialises_and_builds_from_run_spec(tmp_path, bcc_fe_poscar):
    from sld_workflows.run.spec import RunSpec

    engine = AbinitEngine.from_spec(spec(tmp_path, magcon_lambda=0.3), canted_fe())
    again = AbinitEngine.from_dict(json.loads(engine.to_json()))
    assert again.as_dict() == engine.as_dict() and again.settings.magcon_lambda == 0.3
    base = {"name": "t", "structure": {"file": str(bcc_fe_poscar), "moments": {"Fe": 2.2}},
            "dynamics": {"dt_fs": 1.0, "steps": 2}}
    s = {k: v for k, v in spec(tmp_path).items()}
    built = RunSpec.from_dict({**base, "engine": {"kind": "abinit", **s}}).build_engine()
    assert isinstance(built, AbinitEngine) and built.settings.kpoints == (2, 2, 2)
    assert built.run_root == str((tmp_path / "runs").resolve())
    with pytest.raises(SpecError, match="engine.magcon_lambda"):
        RunSpec.from_dict({**base, "engine": {"kind": "abinit", **s, "magcon_lambda": 0}})


def test_abort_is_a_restartable_error_naming_the_run_dir(tmp_path):
    abort = ('echo "--- !ERROR"; echo "src_file: m_chkinp.F90"; echo "message: |"; '
             'echo "    nband too small"; echo "..."; exit 14\n')
    engine = AbinitEngine.from_spec(spec(tmp_path, command=fake_abinit(tmp_path, abort)), canted_fe())
    with pytest.raises(AbinitRunError) as info:
        engine.evaluate(canted_fe())
    err = info.value
    assert isinstance(err, EngineRunError) and err.restartable
    assert err.directory.endswith("step_000000") and "nband too small" in str(err) and "status 14" in str(err)
    assert (Path(err.directory) / "run.abi").is_file()  # left for inspection


def test_nonconverged_scf_and_rerun(tmp_path):
    """A stand-in that writes a real non-converged output: the error names the directory; a rerun
    (once fixed) moves the failed directory aside and starts afresh there."""
    src = DATA / "nonconverged"
    body = (f'gunzip -c {src}/run.abo.gz > run.abo; gunzip -c {src}/run.log.gz\n')
    engine = AbinitEngine.from_spec(spec(tmp_path, command=fake_abinit(tmp_path, body)), canted_fe())
    with pytest.raises(AbinitRunError, match=r"step_000000: SCF not converged in nstep=80"):
        engine.evaluate(canted_fe())
    good = DATA / "converged"
    fake_abinit(tmp_path, f'gunzip -c {good}/run.abo.gz > run.abo; gunzip -c {good}/run.log.gz\n')
    ev = engine.evaluate(canted_fe())
    assert ev.info["scf_iterations"] == 30 and (tmp_path / "runs" / "step_000000.prev-1" / "run.abo").is_file()


def test_binary_missing_at_run_time(tmp_path):
    exe = fake_abinit(tmp_path, "exit 0\n")
    engine = AbinitEngine.from_spec(spec(tmp_path, command=exe), canted_fe())
    os.remove(exe)  # e.g. a worker node without ABINIT
    with pytest.raises(AbinitRunError, match=r"step_000000: executable not found"):
        engine.evaluate(canted_fe())


def test_restart_files_are_copied_from_the_previous_dir(tmp_path):
    good = DATA / "converged"
    body = (f'gunzip -c {good}/run.abo.gz > run.abo; gunzip -c {good}/run.log.gz; '
            'echo wfk > runo_WFK; echo den > runo_DEN\n')
    engine = AbinitEngine.from_spec(spec(tmp_path, command=fake_abinit(tmp_path, body)), canted_fe())
    first = engine.run(canted_fe(), tmp_path / "a")
    second = engine.run(canted_fe().replace(step=1), tmp_path / "elsewhere" / "b", tmp_path / "a")
    assert first.info["restart_chain"]["seeded_from"] is None
    assert second.info["restart_chain"] == {"seeded_from": str(tmp_path / "a"), "copied": ["WFK", "DEN"],
                                            "intact": True}
    assert (tmp_path / "elsewhere" / "b" / "prevo_WFK").read_text() == "wfk\n"
    assert "irdwfk 1" in (tmp_path / "elsewhere" / "b" / "run.abi").read_text()
    # in-process convenience finds the previous step by name
    engine.evaluate(canted_fe())
    third = engine.evaluate(canted_fe().replace(step=1))
    assert third.info["restart_chain"]["seeded_from"].endswith("step_000000")




def test_collapsed_moment_is_an_error(tmp_path):
    """The real converged output has |M| ≈ 1.75 μB; against a state claiming 4 μB that is a collapse
    below half of it, which the engine refuses instead of returning a field of another solution."""
    good = DATA / "converged"
    body = f'gunzip -c {good}/run.abo.gz > run.abo; gunzip -c {good}/run.log.gz\n'
    engine = AbinitEngine.from_spec(spec(tmp_path, command=fake_abinit(tmp_path, body)), canted_fe())
    big = canted_fe().replace(moments=np.array([4.0, 4.0]))
    with pytest.raises(AbinitRunError, match=r"step_000000: moment collapsed on sites \[0, 1\]"):
        engine.evaluate(big)
    assert engine.evaluate(canted_fe().replace(step=1)).moments_mub.min() > 1.7


def test_sld_run_with_the_abinit_engine(tmp_path, capsys):
    """`sld run` builds the ABINIT engine from `engine: {kind: abinit}` and runs it (a stand-in
    replaying a real output: wiring, not physics); a bad λ is one line and nothing runs."""
    import yaml

    from sld_workflows.cli.main import main

    good = DATA / "converged"
    body = f'gunzip -c {good}/run.abo.gz > run.abo; gunzip -c {good}/run.log.gz\n'
    engine = spec(tmp_path, command=fake_abinit(tmp_path, body))
    canted_fe().structure.to(filename=str(tmp_path / "POSCAR"))  # the 2-atom cell of the stored output
    doc = {"name": "fe-abinit", "structure": {"file": str(tmp_path / "POSCAR"), "moments": {"Fe": 2.2}},
           "spins": {"init": "given", "values": canted_fe().spins.tolist()},
           "engine": {"kind": "abinit", **engine},
           "dynamics": {"dt_fs": 1.0, "steps": 2, "spin_scheme": "sib-fixed-field", "temperature": 0}}
    path = tmp_path / "fe.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["step_000000", "step_000001", "step_000002"]
    assert "irdwfk" not in (tmp_path / "runs" / "step_000001" / "run.abi").read_text()  # stand-in wrote no WFK
    doc["engine"]["magcon_lambda"] = -1
    path.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(tmp_path / "out2"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "engine.magcon_lambda: must be > 0" in err
