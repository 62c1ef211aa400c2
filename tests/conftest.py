"""Shared fixtures.

``sld_backend``: where orchestration tests keep their LaunchPad and trajectory store. Parametrised:
``embedded`` (the mongomock-persistence file in a temporary project folder) and ``server`` (a
MongoDB-compatible server this test session starts itself — SecantusDB on a free loopback port with
temporary storage, stopped at the end, with a watchdog so it never outlives pytest; each test gets its
own database). ``SLD_TEST_MONGODB_URI`` (e.g. ``mongodb://localhost:27017``) makes ``server`` use that
MongoDB instead. Same tests, same assertions, every backend.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

CHECKOUT_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("embedded", "server")

# servers started on demand by the commands under test (default local-server projects) stop with us
os.environ["SLD_SERVER_WATCH_PID"] = str(os.getpid())


class Backend:
    """CLI arguments and an in-process session opener for one test's store."""

    def __init__(self, tmp_path: Path, uri: str | None) -> None:
        self.tmp_path = tmp_path
        self.uri = uri
        self.name = "embedded" if uri is None else "server"
        if uri:
            import yaml

            self.db_name = f"sld_test_{uuid.uuid4().hex[:10]}"
            self.launchpad_file = tmp_path / "my_launchpad.yaml"
            self.launchpad_file.write_text(yaml.safe_dump(
                {"host": uri, "uri_mode": True, "name": self.db_name,
                 "mongoclient_kwargs": {"serverSelectionTimeoutMS": 5000}}))
            self.args = ["-l", str(self.launchpad_file)]
            self.project = None
        else:
            self.project = tmp_path / "sld_project"
            self.launchpad_file = None
            self.args = ["--project", str(self.project), "--embedded"]

    @property
    def embedded(self) -> bool:
        return self.uri is None

    def open(self, create: bool = True):
        from sld_workflows.store.session import open_session

        if self.embedded:
            return open_session(None, self.project, create=create, embedded=True)
        return open_session(self.launchpad_file, create=create)

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (plain ``rlaunch``/``lpad``, console scripts)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(CHECKOUT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        if self.embedded:
            env["MONGOMOCK_SERVERSTORE_FILE"] = str(self.project / "launchpad.json")
        else:
            env.pop("MONGOMOCK_SERVERSTORE_FILE", None)
        return env

    def rlaunch_args(self) -> list[str]:
        return [] if self.embedded else ["-l", str(self.launchpad_file)]

    def drop(self) -> None:
        if self.uri:
            import pymongo

            with contextlib.closing(pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000)) as client:
                client.drop_database(self.db_name)


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory):
    """URI of the MongoDB the ``server`` backend uses: ``$SLD_TEST_MONGODB_URI``, else a local server
    started for this session (free loopback port, temporary storage, stopped at the end)."""
    external = os.environ.get("SLD_TEST_MONGODB_URI")
    if external:
        yield external
        return
    from sld_workflows.store.server import LocalServer

    server = LocalServer(tmp_path_factory.mktemp("test_server"))
    record = server.start(watch_pid=os.getpid())
    try:
        yield record.uri
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def sld_backend(request, tmp_path: Path, monkeypatch):
    """The store of one orchestration test, on each backend; the test runs in ``tmp_path`` (no
    ``launcher_*`` folder lands in the checkout)."""
    monkeypatch.chdir(tmp_path)
    uri = request.getfixturevalue("mongodb_uri") if request.param == "server" else None
    backend = Backend(tmp_path, uri)
    yield backend
    backend.drop()


def toy_spec(steps: int = 5, spin_scheme: str = "sib", n_sites: int = 6, temperature_k: float = 300.0,
             seed: int = 7, name: str = "toy") -> dict:
    """Internal-form trajectory spec of a small spin-lattice system with analytic engines
    (Heisenberg ring + Zeeman + harmonic springs): spins *and* forces, noise on both."""
    import json

    import numpy as np
    from monty.json import MontyEncoder

    from sld_workflows.engines.analytic import CompositeEngine, HarmonicEngine, HeisenbergEngine
    from sld_workflows.state import SLDState

    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, 6.0, (n_sites, 3))
    state = SLDState(species=("Fe",) * n_sites, positions=positions, cell=np.eye(3) * 6.0,
                     velocities=np.zeros((n_sites, 3)), spins=rng.normal(size=(n_sites, 3)),
                     moments=np.full(n_sites, 2.2))
    bonds = tuple((i, (i + 1) % n_sites, 0.01) for i in range(n_sites))
    engine = CompositeEngine((HeisenbergEngine(bonds, (0.0, 0.0, 0.01)),
                              HarmonicEngine(tuple(map(tuple, positions.tolist())), 2.0)))
    spec = {"name": name, "initial_state": state.as_dict(), "engine": engine.as_dict(),
            "dynamics": {"dt_fs": 1.0, "alpha": 0.2, "temperature": temperature_k, "ensemble": "nvt",
                         "spin_scheme": spin_scheme, "seed": seed},
            "steps": steps}
    return json.loads(json.dumps(spec, cls=MontyEncoder))


def reference_frames(spec: dict, steps: int | None = None) -> list:
    """(state, evaluation) of steps 0..N from the in-process driver: a plain ``advance`` loop."""
    from monty.json import MontyDecoder

    from sld_workflows.dynamics.settings import DynamicsSettings
    from sld_workflows.dynamics.step import advance
    from sld_workflows.state import SLDState

    state = SLDState.from_dict(spec["initial_state"])
    engine = MontyDecoder().process_decoded(spec["engine"])
    settings = DynamicsSettings.from_dict(spec["dynamics"])
    evaluation = engine.evaluate(state)
    out = [(state, evaluation)]
    for _ in range(spec["steps"] if steps is None else steps):
        state, evaluation = advance(state, evaluation, settings, engine.evaluate)
        out.append((state, evaluation))
    return out


def write_spec(path: Path, spec: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(spec))
    return path


def scf_counts(run_dir: Path) -> tuple[int, int]:
    """Electronic steps a VASP(-format) run printed, counted without our parsers: ``DAV:`` lines of
    OSZICAR and ``<scstep>`` elements of the calculation in vasprun.xml."""
    from xml.etree import ElementTree

    dav = sum(line.startswith("DAV:") for line in (run_dir / "OSZICAR").read_text().splitlines())
    root = ElementTree.parse(run_dir / "vasprun.xml").getroot()
    return dav, len(root.findall("./calculation/scstep"))


# ====================================================================================================
# Small states and files shared by the run-spec, run, state and engine tests (issue 8: one copy each)
# ====================================================================================================

#: how ASE's extxyz writer prints a per-atom float column (``ase.io.extxyz``'s default ``%16.8f``)
ASE_COLUMN_FORMAT = "%16.8f"


def as_written(values):
    """``values`` rounded exactly as ASE writes a per-atom column."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    return np.array([float(ASE_COLUMN_FORMAT % x) for x in arr.ravel()]).reshape(arr.shape)


def write_bcc_fe_poscar(path: Path) -> Path:
    """bcc Fe, 2x2x2 conventional cells: 16 sites, nearest neighbours at 2.482 Å."""
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Im-3m", Lattice.cubic(2.8665), ["Fe"], [[0, 0, 0]])
    s.make_supercell([2, 2, 2])
    s.to(filename=str(path), fmt="poscar")
    return path


@pytest.fixture()
def bcc_fe_poscar(tmp_path: Path) -> Path:
    """``tmp_path/POSCAR``: see :func:`write_bcc_fe_poscar`."""
    return write_bcc_fe_poscar(tmp_path / "POSCAR")


@pytest.fixture()
def small_magnet():
    """Four sites in a 5 Å box, random positions and spins, one non-magnetic site (moments 2.2, 2.2, 0, 1.5)."""
    import numpy as np

    from sld_workflows.state import SLDState

    rng = np.random.default_rng(3)
    positions = rng.uniform(0, 5, (4, 3))
    return SLDState(species=("Fe",) * 4, positions=positions, cell=np.eye(3) * 5.0, velocities=np.zeros((4, 3)),
                    spins=rng.normal(size=(4, 3)), moments=np.array([2.2, 2.2, 0.0, 1.5]))


@pytest.fixture()
def tiny_fe_raw(bcc_fe_poscar: Path) -> dict:
    """A run-spec mapping: the 16-site bcc Fe POSCAR, random spins, 300 K velocities, Heisenberg
    exchange plus harmonic springs, four NVT steps."""
    return {
        "name": "tiny-fe",
        "structure": {"file": str(bcc_fe_poscar), "moments": {"Fe": 2.2}},
        "spins": {"init": "random"},
        "velocities": {"temperature_k": 300.0},
        "engine": {"kind": "analytic", "heisenberg": {"j_ev": 0.04, "cutoff_a": 2.6},
                   "harmonic": {"spring_ev_per_a2": 2.0}},
        "dynamics": {"dt_fs": 0.5, "steps": 4, "ensemble": "nvt", "temperature": 300, "alpha": 0.1, "seed": 11},
        "output": {"every": 2},
    }
