"""Where the dashboard reads from: the last saved embedded store file, or a live server database.

The dashboard never writes. Both sources hand the query layer a :class:`ReadOnlyDatabase`, a proxy
that exposes only the reading half of pymongo's API (``find``, ``find_one``, ``count_documents``,
``aggregate``, ``distinct``, ``estimated_document_count``); any other attribute raises
:class:`ReadOnlyError`. That is the "read-only path": no handler can reach ``insert``/``update``/
``create_index`` even by mistake.

Embedded store (:class:`SnapshotSource`): one process owns ``launchpad.json`` and its lock at a time
(a worker, ``sld submit``...). We never take that lock and never load the file through
mongomock-persistence (whose exit hook would rewrite the file). Instead we parse the file — written
atomically (temp file + rename) by its owner, so we always see a complete copy — into a private
in-memory mongomock client, and reload it when the file's mtime changes. Pages say how old the
snapshot is (``age_s``).

Server database (:class:`ServerSource`): a pymongo client built from a FireWorks ``launchpad.yaml``;
every request sees live data.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

READ_METHODS = frozenset({"find", "find_one", "count_documents", "aggregate", "distinct",
                          "estimated_document_count", "name"})


class ReadOnlyError(RuntimeError):
    """A write was attempted through the dashboard's read-only database proxy."""


class ReadOnlyCollection:
    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        if name not in READ_METHODS:
            raise ReadOnlyError(f"the dashboard is read-only: collection.{name} is not allowed")
        return getattr(self._collection, name)


class ReadOnlyDatabase:
    """Item access gives :class:`ReadOnlyCollection`; nothing else of the database is exposed."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def __getitem__(self, name: str) -> ReadOnlyCollection:
        return ReadOnlyCollection(self._db[name])

    def __getattr__(self, name: str) -> Any:
        raise ReadOnlyError(f"the dashboard is read-only: database.{name} is not allowed")

    def list_collection_names(self) -> list[str]:
        return list(self._db.list_collection_names())


class SourceError(RuntimeError):
    """The data source cannot be opened (one line, shown by ``sld dashboard``)."""


# ---------------------------------------------------------------------------------------------- embedded
def _private_mongomock_client() -> Any:
    """A mongomock client with its own empty in-memory store.

    ``mongomock_persistence`` (imported by FireWorks when ``MONGOMOCK_SERVERSTORE_FILE`` is set)
    patches ``ServerStore.__init__`` to load that file and rewrite it at exit; we bypass ``__init__``
    so that this client can never write the store file.
    """
    import mongomock
    from mongomock.store import ServerStore

    store = ServerStore.__new__(ServerStore)
    store._databases = {}
    return mongomock.MongoClient(_store=store)


def load_store_file(path: str | os.PathLike) -> tuple[Any, str]:
    """(in-memory mongomock database, its name) holding a copy of the store file's database."""
    import bson.json_util

    text = Path(path).read_text(encoding="utf-8")
    try:
        dump = bson.json_util.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise SourceError(f"embedded store {path} is not readable JSON: {exc}") from None
    names = [n for n, d in dump.items() if "sld_trajectories" in d] or list(dump) or ["fireworks"]
    name = names[0]
    client = _private_mongomock_client()
    db = client[name]
    for cname, cdump in (dump.get(name) or {}).items():
        pairs = cdump.get("documents", [])
        if not pairs:
            continue
        collection_store = client._store[name][cname]
        documents = getattr(collection_store, "_documents", None)
        if documents is not None:  # mongomock's own layout (what mongomock-persistence loads): no per-doc copy
            documents.update((key, doc) for key, doc in pairs)
        else:  # pragma: no cover - a mongomock without that layout
            db[cname].insert_many([doc for _, doc in pairs])
    return db, name


class SnapshotSource:
    """The last saved copy of an embedded store, reloaded when the file changes (never locked).

    Loading a large store takes seconds (JSON parse), so with ``background=True`` a newer file is
    loaded in a thread while requests keep reading the previous snapshot; the page says how old the
    snapshot it shows is.
    """

    live = False

    def __init__(self, store_file: str | os.PathLike, min_reload_interval_s: float = 1.0,
                 background: bool = True) -> None:
        self.store_file = Path(store_file)
        if not self.store_file.is_file():
            raise SourceError(f"no embedded store at {self.store_file} (name it with --project DIR, "
                              "or a server database with -l launchpad.yaml)")
        self.min_reload_interval_s = float(min_reload_interval_s)
        self.background = bool(background)
        self._loader: threading.Thread | None = None
        self.load_time_s: float | None = None
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked = 0.0
        self._db: Any = None
        self.generation = 0  # bumped on every reload (caches keyed by it)
        self.refresh()

    @property
    def description(self) -> str:
        return f"embedded store {self.store_file} (last saved snapshot)"

    def refresh(self) -> None:
        now = time.monotonic()
        if self._db is not None and now - self._checked < self.min_reload_interval_s:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = self.store_file.stat().st_mtime
            except OSError as exc:
                if self._db is not None:
                    return  # keep the last good snapshot while the owner replaces the file
                raise SourceError(f"cannot read {self.store_file}: {exc}") from None
            if mtime == self._mtime or (self._loader is not None and self._loader.is_alive()):
                return
            if self._db is None or not self.background:
                self._load(mtime)
            else:
                self._loader = threading.Thread(target=self._load_quietly, args=(mtime,), daemon=True,
                                                name="sld-dashboard-snapshot")
                self._loader.start()

    def _load(self, mtime: float) -> None:
        start = time.perf_counter()
        db, _ = load_store_file(self.store_file)
        self.load_time_s = time.perf_counter() - start
        self._db, self._mtime = db, mtime  # one reference swap: a request sees the old or the new copy
        self.generation += 1

    def _load_quietly(self, mtime: float) -> None:
        try:
            self._load(mtime)
        except Exception:  # noqa: BLE001 - a file half-way replaced: keep the last snapshot, retry later
            self._mtime = None if self._db is None else self._mtime

    def wait_for_reload(self, timeout_s: float = 60.0) -> None:
        """Block until a background reload (if any) has finished (tests, benchmarks)."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout_s)

    def db(self) -> ReadOnlyDatabase:
        self.refresh()
        return ReadOnlyDatabase(self._db)

    def info(self) -> dict[str, Any]:
        owner = ""
        try:  # reading the lock file's text (owner pid/command) does not take the lock
            owner = Path(str(self.store_file) + ".lock").read_text().strip()
        except OSError:
            pass
        return {"kind": "embedded", "live": False, "description": self.description,
                "saved_at": self._mtime, "age_s": None if self._mtime is None else max(0.0, time.time() - self._mtime),
                "owner": owner}

    def close(self) -> None:
        self._db = None


# ---------------------------------------------------------------------------------------------- server
def _client_from_launchpad(path: Path, timeout_ms: int) -> tuple[Any, str]:
    import pymongo
    from monty.serialization import loadfn

    if not path.is_file():
        raise SourceError(f"launchpad file {path} does not exist")
    try:
        creds = loadfn(path)
    except Exception as exc:
        raise SourceError(f"launchpad file {path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(creds, dict) or ("host" not in creds and not creds.get("uri_mode")):
        raise SourceError(f"launchpad file {path} must be a mapping with at least 'host' (FireWorks format)")
    kwargs = dict(creds.get("mongoclient_kwargs") or {})
    kwargs.setdefault("serverSelectionTimeoutMS", timeout_ms)
    kwargs.setdefault("connectTimeoutMS", timeout_ms)
    if creds.get("uri_mode"):
        client = pymongo.MongoClient(creds["host"], **kwargs)
        name = creds.get("name") or client.get_default_database().name
    else:
        if creds.get("username"):
            kwargs.setdefault("username", creds["username"])
            kwargs.setdefault("password", creds.get("password"))
            if creds.get("authsource"):
                kwargs.setdefault("authSource", creds["authsource"])
        client = pymongo.MongoClient(creds.get("host", "localhost"), int(creds.get("port", 27017)), **kwargs)
        name = creds.get("name", "fireworks")
    return client, name


class ServerSource:
    """A live MongoDB(-compatible) database named by a FireWorks launchpad file."""

    live = True
    generation = 0

    def __init__(self, launchpad_file: str | os.PathLike | None = None, *, client: Any = None,
                 db_name: str | None = None, timeout_ms: int = 5000) -> None:
        import pymongo.errors

        if client is None:
            self.where = str(launchpad_file)
            client, db_name = _client_from_launchpad(Path(launchpad_file), timeout_ms)
        else:
            self.where = "given client"
        self.client, self.db_name = client, db_name
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            client.close()
            raise SourceError(f"cannot connect to the database of {self.where} within {timeout_ms / 1000:g} s: "
                              f"{str(exc).splitlines()[0][:200]}") from None

    @property
    def description(self) -> str:
        return f"database {self.db_name!r} via {self.where} (live)"

    def refresh(self) -> None:
        pass

    def db(self) -> ReadOnlyDatabase:
        return ReadOnlyDatabase(self.client[self.db_name])

    def info(self) -> dict[str, Any]:
        return {"kind": "server", "live": True, "description": self.description, "age_s": 0.0}

    def close(self) -> None:
        self.client.close()
