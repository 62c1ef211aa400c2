"""The worker's runtime: one object per worker process owning its store handles, its caches and its
SIGTERM policy (no module-level state).

SIGTERM (``scancel``, walltime, ``docker stop``, ``kill``) on every backend. FireWorks' Rocket catches
``BaseException`` around a task, so a ``SystemExit`` raised inside a task would only fizzle the step
and the worker would go on. Inside an SLD task we therefore do not raise:

- during the engine call (no database write in progress) we *abandon* the step at once: its
  Firework is put back to READY (``lpad.rerun_fw``), the trajectory marked READY, the embedded
  store (if any) saved, and the process exits with 143 — the step is rerunnable at once, no
  ``sld recover`` needed;
- elsewhere in a task we note the request and do the same at the next safe point (between two
  database operations, :meth:`WorkerRuntime.safe_point`);
- outside SLD tasks SIGTERM raises ``SystemExit(143)``, whose ``finally`` blocks close the session.

The runtime that owns the policy is the one whose bound method is the process's SIGTERM handler
(:meth:`WorkerRuntime.current`): the signal disposition is per process anyway, so that is where the
one runtime of a process is found — by tasks started by a plain ``rlaunch`` too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from sld_workflows.store.trajectories import TrajectoryStore

SIGTERM_EXIT_CODE = 143
#: decoded frames kept per worker: ~3 entries per trajectory, 80 trajectories interleaved by one worker
FRAME_CACHE_SIZE = 256


class FrameCache:
    """LRU of decoded frames keyed (trajectory, step, kind). Frames never change once stored
    (insert-or-verify), so a worker may keep what it decoded or computed."""

    def __init__(self, size: int = FRAME_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int, str], Any] = OrderedDict()

    def __contains__(self, key: tuple[str, int, str]) -> bool:
        return key in self._items

    def __getitem__(self, key: tuple[str, int, str]) -> Any:
        return self._items[key]

    def put(self, key: tuple[str, int, str], obj: Any) -> None:
        self._items[key] = obj
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class WorkerRuntime:
    """State of one worker process: store handles, frame/engine/settings caches, SIGTERM policy."""

    def __init__(self) -> None:
        self.frames = FrameCache()
        self.engines: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self._stores: dict[int, TrajectoryStore] = {}
        self._task_depth = 0
        self._engine_depth = 0
        self._terminate_requested = False
        self._current: tuple[Any, Any, str | None] | None = None  # (lpad, fw_id, trajectory)

    # ------------------------------------------------------------------ finding the process's runtime
    @classmethod
    def current(cls) -> WorkerRuntime:
        """The runtime owning this process's SIGTERM handler (created and installed if none)."""
        handler = signal.getsignal(signal.SIGTERM)
        owner = getattr(handler, "__self__", None)
        if isinstance(owner, WorkerRuntime):
            return owner
        runtime = cls()
        runtime.install()
        return runtime

    def install(self) -> None:
        """Make this runtime the process's SIGTERM policy (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    # ------------------------------------------------------------------ store handles
    def store_for(self, lpad: Any) -> TrajectoryStore:
        """The trajectory store on ``lpad``'s database (one per database; indexes created once)."""
        store = self._stores.get(id(lpad.db))
        if store is None or store.db is not lpad.db:
            store = TrajectoryStore(lpad.db)
            self._stores = {id(lpad.db): store}
        return store

    def clear(self) -> None:
        """Forget everything cached (a worker that reopens a different database)."""
        self.frames.clear()
        self.engines.clear()
        self.settings.clear()
        self._stores.clear()

    # ------------------------------------------------------------------ SIGTERM policy
    @contextlib.contextmanager
    def task(self, lpad: Any = None, fw_id: Any = None, trajectory: str | None = None) -> Iterator[None]:
        """Scope of one SLD task: SIGTERM inside abandons this Firework (see module docstring)."""
        saved = self._current
        self._task_depth += 1
        self._current = (lpad, fw_id, trajectory)
        try:
            self.safe_point()
            yield
        finally:
            self._task_depth -= 1
        self.safe_point()
        self._current = saved

    @contextlib.contextmanager
    def engine_call(self) -> Iterator[None]:
        self._engine_depth += 1
        try:
            self.safe_point()
            yield
        finally:
            self._engine_depth -= 1
        self.safe_point()

    def safe_point(self) -> None:
        if self._terminate_requested:
            self._abandon_and_exit()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._engine_depth:
            self._abandon_and_exit()
        if self._task_depth:
            self._terminate_requested = True
            return
        raise SystemExit(SIGTERM_EXIT_CODE)

    def _abandon_and_exit(self) -> None:
        from sld_workflows.store import embedded

        message = "terminated by SIGTERM"
        lpad, fw_id, trajectory = self._current or (None, None, None)
        if lpad is not None and fw_id is not None:
            try:
                lpad.rerun_fw(int(fw_id))
                if trajectory:
                    self.store_for(lpad).update_trajectory(trajectory, status="READY", worker=None)
                message += f"; Firework {fw_id} put back to READY"
            except Exception as exc:  # still exit: `sld recover` reruns it (this pid is gone)
                message += f"; could not requeue Firework {fw_id} ({type(exc).__name__}: {exc}), run `sld recover`"
        embedded.flush_all_and_release()
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        os._exit(SIGTERM_EXIT_CODE)


def in_engine_call() -> contextlib.AbstractContextManager[None]:
    """The engine-call scope of this process's runtime (used by :mod:`sld_workflows.workflows.phases`)."""
    return WorkerRuntime.current().engine_call()


def install_sigterm_handler() -> WorkerRuntime:
    """Install (if needed) and return the process's runtime (commands call this before working)."""
    return WorkerRuntime.current()
