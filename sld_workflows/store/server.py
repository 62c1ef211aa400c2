"""A local MongoDB-compatible server for one project folder (``sld server start|stop|status``).

The server is SecantusDB (``secantusd-py``, WiredTiger storage, MongoDB wire protocol), run as a
separate process: its licence is GPL-2.0, so it is never imported, only started. Its data and its
address live in the project folder::

    PROJECT/project.json          {"backend": "server", ...}   (see :mod:`.session`)
    PROJECT/server/server.json    {pid, host, port, storage_path, started, create_time, command}
    PROJECT/server/data/          WiredTiger home
    PROJECT/server/server.log     the server's output
    PROJECT/server/secantusd.toml our (empty) config: passing --config stops it from picking up a
                                  ./secantusd.toml or ~/.secantus one

so every command of the project (``sld worker``, ``sld status``, ``lpad`` via ``sld lpad``) finds
the running server without flags. A record whose process is gone (``kill -9``, reboot) is *stale*:
detected by pid + process start time + a ping, and replaced by the next start.

Why a server and not the embedded mongomock file: see docs/orchestration.md (several processes at
once, every write durable at once, no whole-file rewrites).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from sld_workflows.store.trajectories import StoreError

SERVER_DIRNAME = "server"
RECORD_FILENAME = "server.json"
DEFAULT_HOST = "127.0.0.1"
#: seconds to wait for a new server to answer a ping
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
#: env: a pid whose death stops servers started on demand (tests: the pytest process)
WATCH_PID_ENV = "SLD_SERVER_WATCH_PID"
EXECUTABLE = "secantusd-py"


class ServerError(StoreError):
    """The local server cannot be started, reached or stopped (one line saying why)."""


@dataclasses.dataclass(frozen=True)
class ServerRecord:
    pid: int
    host: str
    port: int
    storage_path: str
    started: float
    create_time: float
    command: list[str]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}"


def free_port(host: str = DEFAULT_HOST) -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def ping(uri: str, timeout_ms: int = 1000) -> bool:
    import pymongo
    import pymongo.errors

    try:
        with contextlib.closing(pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms,
                                                    connectTimeoutMS=timeout_ms)) as client:
            client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False


def server_executable() -> str:
    """``secantusd-py`` beside this Python (a venv) or on PATH."""
    beside = Path(sys.executable).with_name(EXECUTABLE)
    if beside.is_file():
        return str(beside)
    found = shutil.which(EXECUTABLE)
    if found is None:
        raise ServerError(
            f"the local database server ({EXECUTABLE}) is not installed: pip install 'sld_workflows[server]' "
            "(or use --embedded, or a MongoDB with -l launchpad.yaml)"
        )
    return found


def _process_alive(pid: int, create_time: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - create_time) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class LocalServer:
    """Start, stop and find the server of one project folder."""

    def __init__(self, project: str | os.PathLike, host: str = DEFAULT_HOST, port: int | None = None,
                 sync_on_commit: bool = False) -> None:
        self.project = Path(os.path.abspath(project))
        self.dir = self.project / SERVER_DIRNAME
        self.record_path = self.dir / RECORD_FILENAME
        self.storage_path = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.host = host
        self.port = port
        self.sync_on_commit = sync_on_commit

    # ------------------------------------------------------------------ record
    def read_record(self) -> ServerRecord | None:
        try:
            raw = json.loads(self.record_path.read_text())
            return ServerRecord(**raw)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (ValueError, TypeError) as exc:
            raise ServerError(f"server record {self.record_path} is damaged ({exc}); "
                              "stop the server by its pid if it runs, then delete the record") from None

    def _write_record(self, record: ServerRecord) -> None:
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(record), indent=1))
        os.replace(tmp, self.record_path)

    def status(self) -> tuple[str, ServerRecord | None]:
        """("running", record) | ("stale", record: its process is gone) | ("stopped", None)."""
        record = self.read_record()
        if record is None:
            return "stopped", None
        if _process_alive(record.pid, record.create_time) and ping(record.uri, 2000):
            return "running", record
        if _process_alive(record.pid, record.create_time):
            return "unresponsive", record
        return "stale", record

    def running(self) -> ServerRecord | None:
        state, record = self.status()
        return record if state == "running" else None

    # ------------------------------------------------------------------ start / stop
    def _check_storage(self) -> None:
        try:
            self.storage_path.mkdir(parents=True, exist_ok=True)
            probe = self.storage_path / ".sld-write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ServerError(f"server storage folder {self.storage_path} is not writable: "
                              f"{exc.strerror or exc}") from None

    def start(self, watch_pid: int | None = None, timeout_s: float = START_TIMEOUT_S) -> ServerRecord:
        """Start the server; raise :class:`ServerError` if one runs (naming its address) or it cannot."""
        state, record = self.status()
        if state == "running":
            raise ServerError(f"the server of project {self.project} is already running at {record.address} "
                              f"(pid {record.pid})")
        if state == "unresponsive":
            raise ServerError(f"the server of project {self.project} (pid {record.pid}, {record.address}) "
                              "runs but does not answer; stop it with `sld server stop`")
        self._check_storage()  # also creates self.dir
        port = self.port
        if port is None:  # keep the address of a stale record when it is free (launchpad files stay valid)
            reuse = record is not None and not port_in_use(self.host, record.port)
            port = record.port if reuse else free_port(self.host)
        if port_in_use(self.host, port):
            raise ServerError(f"port {port} on {self.host} is already in use; choose another with --port")
        config = self.dir / "secantusd.toml"
        if not config.exists():
            config.write_text("# sld_workflows: no settings; flags are passed on the command line\n")
        cmd = [server_executable(), "--config", str(config), "--standalone", "--host", self.host,
               "--port", str(port), "--storage-path", str(self.storage_path), "--log-level", "WARNING"]
        if self.sync_on_commit:
            cmd.append("--sync-on-commit")
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.dir, start_new_session=True)
        import psutil

        record = ServerRecord(pid=proc.pid, host=self.host, port=port, storage_path=str(self.storage_path),
                              started=time.time(), create_time=psutil.Process(proc.pid).create_time(), command=cmd)
        deadline = time.monotonic() + timeout_s
        while not ping(record.uri, 500):
            if proc.poll() is not None:
                raise ServerError(f"the server exited at start (code {proc.returncode}): {self._last_log_line()}")
            if time.monotonic() > deadline:
                proc.kill()
                raise ServerError(f"the server did not answer within {timeout_s:g} s: {self._last_log_line()}")
            time.sleep(0.1)
        self._write_record(record)
        watch = watch_pid if watch_pid is not None else _env_watch_pid()
        if watch:
            start_watchdog(watch, record)
        return record

    def _last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no output"

    def ensure_running(self) -> ServerRecord:
        """The running server's record, starting it on demand (a stale record is replaced)."""
        record = self.running()
        if record is not None:
            return record
        try:
            return self.start()
        except ServerError:
            record = self.running()  # another command started it at the same moment
            if record is not None:
                return record
            raise

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> ServerRecord | None:
        """Stop the server (SIGTERM, SIGKILL after ``timeout_s``); None if none was running."""
        state, record = self.status()
        if record is None:
            return None
        if state in ("running", "unresponsive"):
            import psutil

            try:
                proc = psutil.Process(record.pid)
                proc.terminate()
                try:
                    proc.wait(timeout_s)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            except psutil.NoSuchProcess:
                pass
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()
        return record if state != "stale" else None


def _env_watch_pid() -> int | None:
    value = os.environ.get(WATCH_PID_ENV)
    return int(value) if value and value.isdigit() else None


def start_watchdog(watch_pid: int, record: ServerRecord) -> None:
    """A small detached process that stops the server when ``watch_pid`` is gone (test sessions)."""
    code = ("import sys,time,psutil\n"
            "w,s,ct=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3])\n"
            "while psutil.pid_exists(w) and psutil.Process(w).status()!=psutil.STATUS_ZOMBIE:\n"
            "    time.sleep(1)\n"
            "try:\n"
            "    p=psutil.Process(s)\n"
            "    if abs(p.create_time()-ct)<1: p.terminate(); p.wait(10)\n"
            "except Exception: pass\n")
    subprocess.Popen([sys.executable, "-c", code, str(watch_pid), str(record.pid), str(record.create_time)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def describe(state: str, record: ServerRecord | None, project: Path) -> str:
    if state == "running":
        return f"server of {project} running at {record.address} (pid {record.pid}, data {record.storage_path})"
    if state == "stale":
        return f"server of {project} is not running (stale record of pid {record.pid} at {record.address})"
    if state == "unresponsive":
        return f"server of {project} (pid {record.pid}) does not answer at {record.address}"
    return f"no server running for {project}"

