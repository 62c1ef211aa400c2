"""The embedded store: FireWorks' mongomock-persistence file, made safe for one process at a time.

mongomock-persistence (``MONGOMOCK_SERVERSTORE_FILE``) reads the whole JSON file when a client is
created and rewrites it from a ``weakref.finalize`` hook at exit with a plain ``open(..., "w")``
(truncate first — a kill during the dump leaves an empty file), and it is process-local. We therefore

- take an exclusive ``fcntl.flock`` on ``<store>.lock`` *before* reading the store (released by the
  kernel when the process dies, so a ``kill -9`` leaves no stale lock); a second process gets
  :class:`StoreLockedError` naming the owner;
- replace the exit hook by an atomic writer (temp file in the same folder, fsync, ``os.replace``);
- flush at the end of every command and (``flush_if_due``) during long worker runs, so a ``kill -9``
  loses at most the work since the last flush — which recovery then recomputes bit for bit;
- refuse an empty (0-byte) or unreadable file instead of starting a new project over it.

Plain ``rlaunch`` with ``MONGOMOCK_SERVERSTORE_FILE`` also works: the first SLD task that runs in such
a process calls :func:`guard_launchpad`, which takes the same lock and installs the same atomic writer
(and refuses to run, without ever writing the file, if another process owns it or wrote it after this
process loaded it). Plain ``lpad`` is not guarded (it never runs our code): see docs/orchestration.md —
on the default local-server backend ``lpad`` is safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sld_workflows.store.trajectories import StoreError

DEFAULT_PROJECT_DIR = "sld_project"
STORE_FILENAME = "launchpad.json"
#: Seconds between flushes of the embedded store while a worker runs (env ``SLD_FLUSH_SECS``). A flush
#: rewrites the whole file (~0.1-0.5 s for a few MB), so flushing after every millisecond model step
#: would dominate; an engine call longer than this is always followed by a flush.
DEFAULT_FLUSH_SECS = 30.0


class StoreLockedError(StoreError):
    """Another process owns the embedded store."""


# ---------------------------------------------------------------------------------------------- lock
class StoreLock:
    """Exclusive, non-blocking ``flock`` on ``<store file>.lock`` holding the owner's pid and command."""

    def __init__(self, store_file: str | os.PathLike) -> None:
        self.path = Path(str(store_file) + ".lock")
        self._fh = None

    def acquire(self) -> None:
        fh = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown process"
            fh.close()
            raise StoreLockedError(
                f"the embedded store {self.path.with_suffix('')} is in use by another process ({owner}); "
                "it serves one process at a time — wait for it to finish (or stop it with SIGTERM, "
                "which saves the store), or use a real MongoDB (-l launchpad.yaml) for concurrent workers"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)[:200]}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None


# ---------------------------------------------------------------------------------------------- atomic write
def write_store_atomically(server_store: Any, filename: str | os.PathLike) -> None:
    """Dump a mongomock ``ServerStore`` to ``filename``: temp file, fsync, rename (never a partial file)."""
    import bson.json_util

    filename = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(filename))
    text = bson.json_util.dumps(server_store.to_dict())
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".launchpad-", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, filename)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class EmbeddedGuard:
    """Lock, atomic writer and flush policy of one embedded store owned by this process."""

    def __init__(self, server_store: Any, filename: str, lock: StoreLock) -> None:
        self.server_store = server_store
        self.filename = filename
        self.lock = lock
        self.last_flush = time.monotonic()
        self.closed = False
        original = getattr(server_store, "_finalizer", None)
        if original is not None:
            original.detach()  # never the non-atomic writer
        import weakref

        self._finalizer = weakref.finalize(server_store, _final_save, filename, lock, server_store.to_dict)

    def flush(self) -> None:
        if not self.closed:
            write_store_atomically(self.server_store, self.filename)
            self.last_flush = time.monotonic()

    def flush_if_due(self, interval_s: float | None = None) -> bool:
        interval = flush_interval() if interval_s is None else interval_s
        if time.monotonic() - self.last_flush >= interval:
            self.flush()
            return True
        return False

    def close(self, save: bool = True) -> None:
        if self.closed:
            return
        try:
            if save:
                self.flush()
        finally:
            self.closed = True
            self._finalizer.detach()
            self.lock.release()
            _GUARDS.pop(id(self.server_store), None)


def _final_save(filename: str, lock: StoreLock, to_dict: Any) -> None:
    """Exit hook (normal exit or SystemExit from SIGTERM) of a store nobody closed explicitly."""

    class _Snapshot:
        def to_dict(self) -> Any:
            return to_dict()

    try:
        if lock.held:
            write_store_atomically(_Snapshot(), filename)
    finally:
        lock.release()


_GUARDS: dict[int, EmbeddedGuard] = {}


def flush_interval() -> float:
    try:
        return float(os.environ.get("SLD_FLUSH_SECS", DEFAULT_FLUSH_SECS))
    except ValueError:
        raise StoreError(f"SLD_FLUSH_SECS must be a number of seconds, got {os.environ['SLD_FLUSH_SECS']!r}") from None


def _server_store(lpad: Any) -> Any | None:
    """The mongomock ServerStore behind a LaunchPad, or None for a real MongoDB."""
    store = getattr(lpad.connection, "_store", None)
    if store is None or not getattr(store, "_filename", None):
        return None
    return store


def guard_for(lpad: Any) -> EmbeddedGuard | None:
    store = _server_store(lpad)
    return None if store is None else _GUARDS.get(id(store))


def _process_start_epoch() -> float:
    """This process's start time, to ~10 ms. psutil's ``create_time`` adds the boot time of
    ``/proc/stat``, which is whole seconds: an ``rlaunch`` started within a second of the store's
    last write then took its fresh copy for a stale one (issue 9). We take the start tick of
    ``/proc/self/stat`` and the boot epoch from ``CLOCK_BOOTTIME`` instead."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        boot_epoch = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return boot_epoch + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        try:
            import psutil

            return psutil.Process().create_time() + 1.0
        except Exception:
            return float("inf")


def guard_launchpad(lpad: Any) -> EmbeddedGuard | None:
    """Make an embedded-store LaunchPad safe in this process (idempotent); None for a real MongoDB.

    Called by every SLD task, so plain ``rlaunch`` runs are protected too. If another process owns
    the store, or the file changed after this process started (its in-memory copy is stale), the
    original exit hook is detached — this process will never overwrite the file — and an error raised.
    """
    store = _server_store(lpad)
    if store is None:
        return None
    _drop_foreign_thread_heartbeats(lpad)
    guard = _GUARDS.get(id(store))
    if guard is not None:
        return guard
    _absolute_store_filename(store)
    lock = StoreLock(store._filename)
    try:
        lock.acquire()
        if os.path.getmtime(store._filename) > _process_start_epoch() + 0.02:
            lock.release()
            raise StoreLockedError(
                f"the embedded store {store._filename} was written by another process after this one "
                "loaded it; refusing to work on a stale copy — run the command again"
            )
    except StoreError:
        finalizer = getattr(store, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        raise
    guard = EmbeddedGuard(store, store._filename, lock)
    _GUARDS[id(store)] = guard
    return guard


def _absolute_store_filename(store: Any) -> None:
    """A relative ``MONGOMOCK_SERVERSTORE_FILE`` was read relative to the directory the process
    started in, but the Rocket has since changed into its launch directory (issue 9: the Firework
    fizzled). The shell's ``$PWD`` still names the start directory."""
    name = store._filename
    if os.path.isabs(name):
        return
    start_dir = os.environ.get("PWD")
    candidate = os.path.join(start_dir, name) if start_dir else None
    if candidate is None or not os.path.isfile(candidate):
        raise StoreError(f"MONGOMOCK_SERVERSTORE_FILE={name!r} is relative and cannot be found from here; "
                         "give an absolute path")
    store._filename = os.path.abspath(candidate)


def _drop_foreign_thread_heartbeats(lpad: Any) -> None:
    """Ignore ``ping_launch`` calls from threads other than the one that guarded this LaunchPad.

    FireWorks' Rocket pings from a heartbeat thread, and pings once more as the task ends, while the
    main thread completes the launch. mongomock is not thread-safe: measured here, that race raised
    "OrderedDict mutated during iteration" inside mongomock. On the embedded store heartbeats carry
    no information (the lock guarantees one live process, and ``sld recover`` reruns every RUNNING
    Firework it finds there), so they are dropped; the task thread's own pings (checkpoints) pass.
    """
    if getattr(lpad, "_sld_heartbeats_dropped", False):
        return
    owner = threading.current_thread()
    ping = lpad.ping_launch

    def ping_launch(launch_id: int, ptime: Any = None, checkpoint: Any = None) -> None:
        if threading.current_thread() is owner:
            ping(launch_id, ptime=ptime, checkpoint=checkpoint)

    lpad.ping_launch = ping_launch
    lpad._sld_heartbeats_dropped = True


def flush_if_due(lpad: Any) -> None:
    guard = guard_for(lpad)
    if guard is not None:
        guard.flush_if_due()


def default_store_file(project: str | os.PathLike | None = None) -> Path:
    """Embedded store file: ``--project DIR`` › ``$MONGOMOCK_SERVERSTORE_FILE`` › ``$SLD_PROJECT`` › ./sld_project."""
    if project is not None:
        return Path(project) / STORE_FILENAME
    if os.environ.get("MONGOMOCK_SERVERSTORE_FILE"):
        return Path(os.environ["MONGOMOCK_SERVERSTORE_FILE"])
    return Path(os.environ.get("SLD_PROJECT", DEFAULT_PROJECT_DIR)) / STORE_FILENAME


def _open_embedded(store_file: Path, create: bool, strm_lvl: str) -> tuple[Any, EmbeddedGuard]:
    import fireworks.core.launchpad as fw_launchpad
    import mongomock.gridfs
    import mongomock_persistence

    if fw_launchpad.GRIDFS_FALLBACK_COLLECTION:
        mongomock.gridfs.enable_gridfs_integration()
    store_file = store_file.resolve() if store_file.exists() else Path(os.path.abspath(store_file))
    if not store_file.exists():
        if not create:
            raise StoreError(
                f"no embedded store at {store_file}: submit a trajectory first (`sld submit`), "
                "or name the project with --project DIR, or a real MongoDB with -l launchpad.yaml"
            )
        store_file.parent.mkdir(parents=True, exist_ok=True)
    lock = StoreLock(store_file)
    lock.acquire()
    try:
        if not store_file.exists():
            with open(store_file, "w", encoding="utf-8") as fh:
                fh.write("{}")
        elif store_file.stat().st_size == 0:
            raise StoreError(
                f"embedded store {store_file} is empty (0 bytes): it was damaged (e.g. a process killed while "
                "writing it); it is left as it is — restore it from a copy, or start a new project elsewhere"
            )
        saved_env = os.environ.get("MONGOMOCK_SERVERSTORE_FILE")
        saved_client = fw_launchpad.MongoClient
        os.environ["MONGOMOCK_SERVERSTORE_FILE"] = str(store_file)
        fw_launchpad.MongoClient = mongomock_persistence.MongoClient
        try:
            lpad = fw_launchpad.LaunchPad(strm_lvl=strm_lvl)
        except ValueError as exc:
            raise StoreError(f"embedded store {store_file} is not readable JSON: {exc}") from None
        finally:
            fw_launchpad.MongoClient = saved_client
            if saved_env is None:
                os.environ.pop("MONGOMOCK_SERVERSTORE_FILE", None)
            else:
                os.environ["MONGOMOCK_SERVERSTORE_FILE"] = saved_env
    except BaseException:
        lock.release()
        raise
    store = lpad.connection._store
    guard = EmbeddedGuard(store, str(store_file), lock)
    _GUARDS[id(store)] = guard
    return lpad, guard




def flush_all_and_release() -> None:
    """Save every embedded store this process owns and release its lock (SIGTERM exit path)."""
    for guard in list(_GUARDS.values()):
        with contextlib.suppress(Exception):
            guard.flush()
        guard.lock.release()
