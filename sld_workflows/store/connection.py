"""Former home of session opening, the embedded store and the SIGTERM policy (kept so that existing
imports keep working). New code imports from :mod:`.session`, :mod:`.embedded` and :mod:`.runtime`."""

from sld_workflows.store.embedded import (
    DEFAULT_FLUSH_SECS,
    DEFAULT_PROJECT_DIR,
    STORE_FILENAME,
    EmbeddedGuard,
    StoreLock,
    StoreLockedError,
    flush_if_due,
    flush_interval,
    guard_for,
    guard_launchpad,
    write_store_atomically,
)
from sld_workflows.store.runtime import SIGTERM_EXIT_CODE, WorkerRuntime, in_engine_call, install_sigterm_handler
from sld_workflows.store.session import (
    DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    ConnectionFailedError,
    Session,
    default_store_file,
    open_session,
)

__all__ = [
    "DEFAULT_FLUSH_SECS",
    "DEFAULT_PROJECT_DIR",
    "DEFAULT_SERVER_SELECTION_TIMEOUT_MS",
    "SIGTERM_EXIT_CODE",
    "STORE_FILENAME",
    "ConnectionFailedError",
    "EmbeddedGuard",
    "Session",
    "StoreLock",
    "StoreLockedError",
    "WorkerRuntime",
    "default_store_file",
    "flush_if_due",
    "flush_interval",
    "guard_for",
    "guard_launchpad",
    "in_engine_call",
    "install_sigterm_handler",
    "open_session",
    "write_store_atomically",
]
