"""Opening a session: the LaunchPad and the trajectory store of a project, on one of three backends.

- **local server** (default): the project folder's own MongoDB-compatible server
  (:class:`~sld_workflows.store.server.LocalServer`), started on demand by the first command that
  needs it and found by every later one (``PROJECT/server/server.json``). Several workers, ``lpad``
  and ``sld status`` can use it at the same time.
- **embedded** (``--embedded`` when the project is created): FireWorks' mongomock-persistence file
  ``PROJECT/launchpad.json`` (:mod:`.embedded`): no server process, one process at a time.
- **any MongoDB** (``-l launchpad.yaml``, FireWorks format).

A project folder records its backend in ``PROJECT/project.json``, so later commands need no flag.
The folder is ``--project DIR`` › ``$SLD_PROJECT`` › ``./sld_project``; a plain ``rlaunch``/``lpad``
with ``$MONGOMOCK_SERVERSTORE_FILE`` (and no ``--project``) opens that embedded file.

For a launchpad file we add ``serverSelectionTimeoutMS`` (5 s unless the file sets it) and ping once,
so a wrong host or a stopped server fails within seconds with one clear line.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sld_workflows.store.embedded import (
    DEFAULT_PROJECT_DIR,
    STORE_FILENAME,
    EmbeddedGuard,
    _open_embedded,
)
from sld_workflows.store.fireworks_compat import patch_launchpad
from sld_workflows.store.runtime import install_sigterm_handler
from sld_workflows.store.trajectories import StoreError, TrajectoryStore

PROJECT_FILENAME = "project.json"
#: database name of a project's local server
LOCAL_DB_NAME = "sld"
BACKENDS = ("server", "embedded")
#: Default connection timeout (ms) we add to launchpad files that do not set one.
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5000


class ConnectionFailedError(StoreError):
    """The database named by a launchpad file (or the project's server) cannot be reached."""


class Session:
    """An open LaunchPad plus the trajectory store on its connection (``lpad.db``)."""

    def __init__(self, lpad: Any, guard: EmbeddedGuard | None, description: str,
                 project: Path | None = None, backend: str = "mongodb", launchpad_file: Path | None = None) -> None:
        self.lpad = lpad
        self.guard = guard
        self.description = description
        self.project = project
        self.backend = backend
        #: a launchpad file other processes (``rlaunch -l``, ``lpad -l``) can use for this database
        self.launchpad_file = launchpad_file
        self.store = TrajectoryStore(lpad.db)

    def initialize_launchpad(self) -> None:
        """Initialise a brand-new LaunchPad (id counters, FireWorks indexes); never touches a used one."""
        lpad = self.lpad
        if lpad.fw_id_assigner.count_documents({}) == 0:
            if lpad.workflows.count_documents({}) or lpad.fireworks.count_documents({}):
                raise StoreError(
                    f"{self.description} holds Fireworks but no id counter; repair it with `lpad` "
                    "(we do not reset a used LaunchPad)"
                )
            lpad.reset("", require_password=False, max_reset_wo_password=0)
            patch_launchpad(lpad)  # reset dropped our indexes

    @property
    def embedded(self) -> bool:
        return self.guard is not None

    def flush(self) -> None:
        if self.guard is not None:
            self.guard.flush()

    def flush_if_due(self) -> None:
        if self.guard is not None:
            self.guard.flush_if_due()


# ---------------------------------------------------------------------------------------------- project
def project_dir(project: str | os.PathLike | None = None) -> Path:
    return Path(os.path.abspath(project if project is not None else os.environ.get("SLD_PROJECT", DEFAULT_PROJECT_DIR)))


def read_project(directory: Path) -> dict[str, Any] | None:
    path = directory / PROJECT_FILENAME
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as exc:
        raise StoreError(f"project file {path} is damaged ({exc}); it says which backend the project uses "
                         '(e.g. {"backend": "server"}) — fix it by hand') from None
    if not isinstance(raw, dict) or raw.get("backend") not in BACKENDS:
        raise StoreError(f"project file {path} must name a backend, one of {BACKENDS}")
    return raw


def write_project(directory: Path, backend: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    info = {"backend": backend, "created_on": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    tmp = directory / (PROJECT_FILENAME + ".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, directory / PROJECT_FILENAME)


def default_store_file(project: str | os.PathLike | None = None) -> Path:
    """Embedded store file: ``--project DIR`` › ``$MONGOMOCK_SERVERSTORE_FILE`` › ``$SLD_PROJECT`` › ./sld_project."""
    if project is not None:
        return Path(project) / STORE_FILENAME
    if os.environ.get("MONGOMOCK_SERVERSTORE_FILE"):
        return Path(os.environ["MONGOMOCK_SERVERSTORE_FILE"])
    return project_dir() / STORE_FILENAME


def choose_backend(project: str | os.PathLike | None, create: bool, embedded: bool | None) -> tuple[str, Path]:
    """(backend, project folder) for a command without ``-l``."""
    if project is None and embedded is None and os.environ.get("MONGOMOCK_SERVERSTORE_FILE"):
        store = Path(os.path.abspath(os.environ["MONGOMOCK_SERVERSTORE_FILE"]))
        return "embedded", store.parent
    directory = project_dir(project)
    recorded = read_project(directory)
    if recorded is not None:
        backend = recorded["backend"]
        if embedded is not None and (backend == "embedded") != embedded:
            raise StoreError(f"project {directory} uses the {backend} backend (project.json); "
                             f"{'--embedded' if embedded else 'a server'} cannot be used with it")
        return backend, directory
    if (directory / STORE_FILENAME).exists():
        return "embedded", directory  # a project made before project.json existed
    if not create:
        raise StoreError(f"no project at {directory}: submit a trajectory first (`sld submit`), name the "
                         "project with --project DIR, or a MongoDB with -l launchpad.yaml")
    return ("embedded" if embedded else "server"), directory


# ---------------------------------------------------------------------------------------------- opening
def _launchpad_from_creds(creds: dict[str, Any], where: str, source: str) -> Any:
    import fireworks.core.launchpad as fw_launchpad
    import pymongo
    import pymongo.errors

    kwargs = dict(creds.get("mongoclient_kwargs") or {})
    kwargs.setdefault("serverSelectionTimeoutMS", DEFAULT_SERVER_SELECTION_TIMEOUT_MS)
    kwargs.setdefault("connectTimeoutMS", DEFAULT_SERVER_SELECTION_TIMEOUT_MS)
    creds["mongoclient_kwargs"] = kwargs
    saved = fw_launchpad.MongoClient
    fw_launchpad.MongoClient = pymongo.MongoClient  # a real server even if MONGOMOCK_SERVERSTORE_FILE is set
    try:
        lpad = fw_launchpad.LaunchPad.from_dict(creds)
    except Exception as exc:
        raise ConnectionFailedError(f"cannot use {source}: {exc}") from None
    finally:
        fw_launchpad.MongoClient = saved
    try:
        lpad.connection.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        lpad.connection.close()
        raise ConnectionFailedError(
            f"cannot connect to MongoDB at {where} (from {source}) within "
            f"{kwargs['serverSelectionTimeoutMS'] / 1000:g} s: {str(exc).splitlines()[0][:200]}"
        ) from None
    return patch_launchpad(lpad)


def read_launchpad_file(launchpad_file: str | os.PathLike) -> dict[str, Any]:
    """The credentials of a FireWorks launchpad file, ``${VARS}`` expanded from the environment;
    FileNotFoundError / StoreError naming the file and the problem."""
    from monty.serialization import loadfn

    path = Path(launchpad_file)
    if not path.is_file():
        raise FileNotFoundError(f"launchpad file {path} does not exist")
    try:
        creds = loadfn(path)
    except Exception as exc:
        raise StoreError(f"launchpad file {path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(creds, dict) or "host" not in creds and not creds.get("uri_mode"):
        raise StoreError(f"launchpad file {path} must be a mapping with at least 'host' (FireWorks format)")
    creds = _expand_env(creds)
    missing = sorted({v for v in _strings(creds) if "${" in v})
    if missing:
        raise StoreError(f"launchpad file {path}: environment variable(s) in {missing} are not set")
    return creds


def _open_real(launchpad_file: str | os.PathLike, strm_lvl: str) -> Any:
    path = Path(launchpad_file)
    creds = read_launchpad_file(path)
    creds["strm_lvl"] = creds.get("strm_lvl") or strm_lvl
    where = creds.get("host") if creds.get("uri_mode") else f"{creds.get('host')}:{creds.get('port', 27017)}"
    return _launchpad_from_creds(creds, where, f"launchpad file {path}")


def _expand_env(value: Any) -> Any:
    """``${VAR}`` in the string values of a launchpad file, from the environment (compose secrets)."""
    if isinstance(value, str):
        return os.path.expandvars(value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def local_launchpad_creds(host: str, port: int) -> dict[str, Any]:
    return {"host": host, "port": int(port), "name": LOCAL_DB_NAME,
            "mongoclient_kwargs": {"serverSelectionTimeoutMS": DEFAULT_SERVER_SELECTION_TIMEOUT_MS}}


def write_local_launchpad_file(directory: Path, host: str, port: int) -> Path:
    """``PROJECT/server/my_launchpad.yaml`` for ``rlaunch -l`` / ``lpad -l`` on the project's server."""
    import yaml

    path = directory / "server" / "my_launchpad.yaml"
    text = yaml.safe_dump(local_launchpad_creds(host, port))
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _open_local_server(directory: Path, strm_lvl: str) -> tuple[Any, Path, str]:
    from sld_workflows.store.server import LocalServer

    record = LocalServer(directory).ensure_running()
    creds = {**local_launchpad_creds(record.host, record.port), "strm_lvl": strm_lvl}
    lpad = _launchpad_from_creds(creds, record.address, f"the server of project {directory}")
    return lpad, write_local_launchpad_file(directory, record.host, record.port), record.address


@contextlib.contextmanager
def open_session(
    launchpad_file: str | os.PathLike | None = None,
    project: str | os.PathLike | None = None,
    create: bool = False,
    strm_lvl: str = "ERROR",
    embedded: bool | None = None,
) -> Iterator[Session]:
    """Open the LaunchPad and trajectory store; on exit close it (embedded: save and release the lock).

    The embedded store is saved also when the body raises: every write made before the error is
    consistent (idempotent step frames), and commands validate input before writing anything.
    """
    install_sigterm_handler()
    if launchpad_file is not None:
        lpad = _open_real(launchpad_file, strm_lvl)
        try:
            yield Session(lpad, None, f"MongoDB via {launchpad_file}", launchpad_file=Path(launchpad_file))
        finally:
            lpad.connection.close()
        return
    backend, directory = choose_backend(project, create, embedded)
    if backend == "server":
        lpad, lp_file, address = _open_local_server(directory, strm_lvl)
        if create and read_project(directory) is None:
            write_project(directory, "server")
        try:
            yield Session(lpad, None, f"project {directory} (local server {address})", project=directory,
                          backend="server", launchpad_file=lp_file)
        finally:
            lpad.connection.close()
        return
    store_file = default_store_file(project) if project is not None or embedded is None else directory / STORE_FILENAME
    lpad, guard = _open_embedded(store_file, create, strm_lvl)
    patch_launchpad(lpad)
    if create and project is not None and read_project(directory) is None:
        write_project(directory, "embedded")
    try:
        yield Session(lpad, guard, f"embedded store {guard.filename}", project=Path(guard.filename).parent,
                      backend="embedded")
    finally:
        guard.close(save=True)
