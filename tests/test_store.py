"""Trajectory store: unique (trajectory, step, kind), insert-or-verify upserts, the 16 MB guard,
embedded-store lock and atomic writes, connection errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pymongo.errors
import pytest
from conftest import CHECKOUT_ROOT

from sld_workflows.store import (
    ConnectionFailedError,
    DocumentTooLargeError,
    FrameConflictError,
    StoreLockedError,
    TrajectoryStore,
    open_session,
)
from sld_workflows.store.connection import StoreLock, write_store_atomically


def test_frames_are_unique_and_upserts_idempotent(sld_backend):
    with sld_backend.open() as session:
        store = session.store
        assert store.put_frame("t1", 3, "state", {"x": [1.0, -0.0, 2.5]}) is True
        assert store.put_frame("t1", 3, "state", {"x": (1.0, -0.0, 2.5)}) is False  # same data again: no-op
        with pytest.raises(FrameConflictError, match="step 3 of trajectory t1"):
            store.put_frame("t1", 3, "state", {"x": [1.0, 0.0, 2.6]})
        assert store.count_frames("t1") == 1
        assert store.get_frame("t1", 3, "state")["data"] == {"x": [1.0, -0.0, 2.5]}  # kept intact
        with pytest.raises(Exception, match="frame kind must be one of"):
            store.put_frame("t1", 3, "bogus", {})
    # reopen: the unique index is re-created (mongomock-persistence does not persist indexes)
    with sld_backend.open() as session:
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            session.store.frames.insert_one({"trajectory": "t1", "step": 3, "kind": "state", "data": {}})
        assert session.store.count_frames("t1") == 1


def test_size_guard_refuses_documents_near_16_mb(sld_backend):
    with sld_backend.open() as session:
        store = session.store
        big = {"forces": [0.123456789] * (2_200_000)}  # ~19.8 MB as BSON doubles (+ keys)
        with pytest.raises(DocumentTooLargeError, match="exceeds the store's limit"):
            store.put_frame("t2", 0, "evaluation", big)
        assert store.count_frames("t2") == 0
        with pytest.raises(DocumentTooLargeError):
            store.create_trajectory({"_id": "t2", "spec": {"blob": "x" * (16 * 2**20)}})
        assert store.trajectories.count_documents({"_id": "t2"}) == 0
        # just under the limit is accepted
        small = TrajectoryStore(session.lpad.db, max_document_bytes=2_000_000)
        small.put_frame("t3", 0, "state", {"x": [1.0] * 100_000})
        with pytest.raises(DocumentTooLargeError):
            small.put_frame("t3", 1, "state", {"x": [1.0] * 300_000})


def test_lock_refuses_second_owner(tmp_path):
    store_file = tmp_path / "launchpad.json"
    store_file.write_text("{}")
    lock = StoreLock(store_file)
    lock.acquire()
    try:
        with pytest.raises(StoreLockedError, match=r"in use by another process \(pid"):
            StoreLock(store_file).acquire()
        env = dict(os.environ, PYTHONPATH=str(CHECKOUT_ROOT))
        proc = subprocess.run([sys.executable, "-m", "sld_workflows.cli.main", "status", "--project", str(tmp_path)],
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert "in use by another process" in proc.stderr and str(os.getpid()) in proc.stderr
    finally:
        lock.release()
    StoreLock(store_file).acquire()  # free again (and a kill -9 frees it too: flock dies with the process)


def test_lock_is_released_when_owner_is_killed(tmp_path):
    store_file = tmp_path / "launchpad.json"
    store_file.write_text("{}")
    code = (f"import sys,time; sys.path.insert(0, {str(CHECKOUT_ROOT)!r}); "
            "from sld_workflows.store.connection import StoreLock; "
            f"L = StoreLock({str(store_file)!r}); L.acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError):
            StoreLock(store_file).acquire()
    finally:
        proc.kill()
        proc.wait()
    lock = StoreLock(store_file)
    lock.acquire()
    lock.release()


def test_atomic_write_never_leaves_a_partial_store(tmp_path, monkeypatch):
    with open_session(project=tmp_path, create=True, embedded=True) as session:
        session.store.put_frame("a", 0, "state", {"x": [1.0]})
    store_file = tmp_path / "launchpad.json"
    before = store_file.read_text()
    assert "sld_frames" in before

    class Exploding:
        def to_dict(self):
            return {"db": {"c": {"name": "c", "documents": []}}}

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_store_atomically(Exploding(), store_file)
    monkeypatch.undo()
    assert store_file.read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".launchpad-")]  # temp file cleaned up
    with open_session(project=tmp_path) as session:
        assert session.store.get_frame("a", 0, "state")["data"] == {"x": [1.0]}


def test_missing_project_is_a_clear_error(tmp_path):
    from sld_workflows.store import StoreError

    with pytest.raises(StoreError, match="no project at"):
        with open_session(project=tmp_path / "nowhere"):
            pass
    assert not (tmp_path / "nowhere").exists()


def test_unreachable_mongodb_fails_fast_with_clear_message(tmp_path):
    lp = tmp_path / "my_launchpad.yaml"
    lp.write_text("host: 127.0.0.1\nport: 9\nname: sld\nmongoclient_kwargs:\n  serverSelectionTimeoutMS: 1500\n")
    start = time.monotonic()
    with pytest.raises(ConnectionFailedError, match=r"cannot connect to MongoDB at 127.0.0.1:9 .* within 1.5 s"):
        with open_session(launchpad_file=lp):
            pass
    assert time.monotonic() - start < 10
    # without a timeout in the file we add 5 s
    lp.write_text("host: 127.0.0.1\nport: 9\nname: sld\n")
    start = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="within 5 s"):
        with open_session(launchpad_file=lp):
            pass
    assert time.monotonic() - start < 15
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with open_session(launchpad_file=tmp_path / "missing.yaml"):
            pass


def test_embedded_store_file_is_plain_json_readable_by_fireworks(tmp_path):
    with open_session(project=tmp_path, create=True, embedded=True) as session:
        session.initialize_launchpad()
        session.store.put_frame("a", 0, "state", {"x": [0.1]})
    data = json.loads((tmp_path / "launchpad.json").read_text())
    assert "fireworks" in data and "sld_frames" in data["fireworks"]


def test_embedded_store_ignores_heartbeats_from_other_threads(sld_backend):
    """mongomock is not thread-safe; FireWorks' heartbeat thread must not write to the embedded store."""
    import threading

    from sld_workflows.store.connection import guard_launchpad

    if not sld_backend.embedded:
        pytest.skip("heartbeats are kept on a real MongoDB (thread-safe); the embedded case is the one at risk")
    with sld_backend.open() as session:
        lpad = session.lpad
        guard_launchpad(lpad)
        errors = []

        def heartbeat():
            try:
                lpad.ping_launch(12345)  # no such launch: would raise ValueError if it reached the store
            except Exception as exc:  # pragma: no cover - the failure mode under test
                errors.append(exc)

        thread = threading.Thread(target=heartbeat)
        thread.start()
        thread.join()
        assert errors == []
        with pytest.raises(ValueError, match="No Launch exists"):
            lpad.ping_launch(12345)  # the owning thread's pings still reach the store


def test_empty_or_damaged_embedded_store_is_reported_never_reset(tmp_path, capsys):
    """A 0-byte store (a process killed while writing it) or a damaged one: one clear error line,
    exit 2, and the file is left exactly as it was."""
    from sld_workflows.cli.main import main

    store_file = tmp_path / "launchpad.json"
    for content, message in (("", "is empty (0 bytes)"), ('{"sld": {"sld_frames": ', "not readable JSON")):
        store_file.write_text(content)
        assert main(["status", "--project", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert store_file.read_text() == content
