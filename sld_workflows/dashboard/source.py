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


#: hash indexes of the in-memory snapshot: the fields the dashboard's queries select on
SNAPSHOT_INDEXES = {
    "sld_frames": ("trajectory", "step"),
    "sld_trajectories": ("_id", "campaign", "status", "spec.spec.structure.preset", "spec.spec.engine.preset",
                         "spec.spec.engine.kind"),
    "sld_campaigns": ("name",),
    "fireworks": ("fw_id", "spec.sld.trajectory", "state"),
    "launches": ("launch_id", "state", "fw_id"),
    "workflows": ("nodes",),
}


def _slim_trajectory(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of a trajectory document the dashboard reads (mongomock copies whole documents on
    every match, and engine/spec/provenance bodies are most of a trajectory document's size)."""
    out = {k: v for k, v in doc.items() if k not in ("engine", "spec", "provenance")}
    engine = doc.get("engine") or {}
    out["engine"] = {k: engine[k] for k in ("@module", "@class") if k in engine}
    spec = ((doc.get("spec") or {}).get("spec")) if isinstance(doc.get("spec"), dict) else None
    if isinstance(spec, dict):
        out["spec"] = {"spec": {
            "structure": {"preset": (spec.get("structure") or {}).get("preset")},
            "engine": {k: (spec.get("engine") or {}).get(k) for k in ("kind", "preset")},
            "dynamics": {"ensemble": (spec.get("dynamics") or {}).get("ensemble")}}}
    prov = doc.get("provenance")
    if isinstance(prov, dict):
        out["provenance"] = {k: v for k, v in prov.items() if k != "engine_settings"}
    return out


def _field(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _simple_values(cond: Any) -> set[Any] | None:
    """The value set of an equality or ``$in`` clause on strings/integers; None for anything else
    (left to mongomock). Booleans and floats are left out: Python's 1 == True == 1.0 is not MongoDB's."""
    def ok(v: Any) -> bool:
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))

    if isinstance(cond, dict):
        if set(cond) == {"$in"} and isinstance(cond["$in"], list | tuple) and all(ok(v) for v in cond["$in"]):
            return set(cond["$in"])
        return None
    return {cond} if ok(cond) else None


def _referenced_fields(value: Any) -> set[str]:
    """Top-level fields named by ``"$field.sub"`` strings anywhere in an aggregation pipeline."""
    if isinstance(value, str):
        return {value[1:].split(".")[0]} if value.startswith("$") and not value.startswith("$$") else set()
    if isinstance(value, dict):
        return set().union(*(_referenced_fields(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_referenced_fields(v) for v in value)) if value else set()
    return set()


def _match_keys(query: dict[str, Any]) -> set[str]:
    keys = set()
    for k, v in query.items():
        if k in ("$and", "$or", "$nor") and isinstance(v, list):
            for sub in v:
                keys |= _match_keys(sub)
        elif not k.startswith("$"):
            keys.add(k)
    return keys


def _matches_any(value: Any, values: set[Any]) -> bool:
    if isinstance(value, list):  # MongoDB: a clause on an array field matches any element
        return any(_simple_values(v) is not None and v in values for v in value)
    return (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))) and value in values


class SnapshotDatabase:
    """An immutable in-memory copy of the store with hash indexes (pymongo's read API).

    mongomock scans every document of a collection for every query (measured: 6 s for one
    trajectory's page at 20,000 frames). The snapshot never changes, so at load time we index the
    fields of :data:`SNAPSHOT_INDEXES`; a query whose filter selects on one of them by value or
    ``$in`` runs on the matching documents only (a throwaway mongomock collection over the same
    document objects — mongomock's own matching, sorting, projection and aggregation, unchanged).
    """

    def __init__(self, db: Any) -> None:
        from mongomock.store import DatabaseStore

        self._db = db
        self._database_store = DatabaseStore
        self._indexes: dict[str, dict[str, dict[Any, list[dict[str, Any]]]]] = {}
        store = db.client._store[db.name]
        for cname, fields in SNAPSHOT_INDEXES.items():
            docs = list(store[cname]._documents.values()) if cname in store._collections else []
            per_field: dict[str, dict[Any, list[dict[str, Any]]]] = {}
            for field in fields:
                index: dict[Any, list[dict[str, Any]]] = {}
                for doc in docs:
                    value = _field(doc, field)
                    for v in (value if isinstance(value, list) else [value]):
                        if _hashable(v):
                            index.setdefault(v, []).append(doc)
                per_field[field] = index
            self._indexes[cname] = per_field

    @property
    def name(self) -> str:
        return self._db.name

    def list_collection_names(self) -> list[str]:
        return self._db.list_collection_names()

    def __getitem__(self, name: str) -> SnapshotCollection:
        return SnapshotCollection(self, name)

    def narrowed(self, name: str, query: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        """(collection to run on, remaining filter): the indexed clause with the fewest candidates."""
        query = dict(query or {})
        best: tuple[int, str, list[dict[str, Any]]] | None = None
        for field, index in self._indexes.get(name, {}).items():
            if field not in query:
                continue
            cond = query[field]
            if isinstance(cond, dict) and set(cond) == {"$in"} and all(_hashable(v) for v in cond["$in"]):
                values = list(dict.fromkeys(cond["$in"]))
            elif _hashable(cond) and cond is not None:
                values = [cond]
            else:
                continue
            seen: dict[int, dict[str, Any]] = {}
            for v in values:
                for doc in index.get(v, ()):
                    seen[id(doc)] = doc
            if best is None or len(seen) < best[0]:
                best = (len(seen), field, list(seen.values()))
        if best is None:
            return self._db[name], query
        from collections import OrderedDict

        from mongomock.collection import Collection

        docs = best[2]
        query.pop(best[1])
        for field in [f for f in query if not f.startswith("$")]:  # further equality / $in clauses, in Python
            values = _simple_values(query[field])
            if values is None:
                continue
            docs = [d for d in docs if _matches_any(_field(d, field), values)]
            query.pop(field)
        db_store = self._database_store()
        db_store[name]._documents = OrderedDict((doc["_id"], doc) for doc in docs)
        return Collection(self._db, name, db_store), query


class SnapshotCollection:
    """Read methods of one snapshot collection, narrowed by the snapshot's hash indexes."""

    def __init__(self, db: SnapshotDatabase, name: str) -> None:
        self._sdb = db
        self._name = name

    def find(self, filter: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        coll, rest = self._sdb.narrowed(self._name, filter)
        return coll.find(rest, *args, **kwargs)

    def find_one(self, filter: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        coll, rest = self._sdb.narrowed(self._name, filter)
        return coll.find_one(rest, *args, **kwargs)

    def count_documents(self, filter: dict[str, Any], **kwargs: Any) -> int:  # noqa: A002
        coll, rest = self._sdb.narrowed(self._name, filter)
        cursor = coll.find(rest, {"_id": 1})  # mongomock's count_documents copies whole documents
        if kwargs.get("skip"):
            cursor = cursor.skip(int(kwargs["skip"]))
        if kwargs.get("limit"):
            cursor = cursor.limit(int(kwargs["limit"]))
        return sum(1 for _ in cursor)

    def distinct(self, key: str, filter: dict[str, Any] | None = None) -> list[Any]:  # noqa: A002
        index = self._sdb._indexes.get(self._name, {}).get(key)
        if not filter and index is not None:  # the index's keys are the distinct values
            return [v for v in index if v is not None]
        coll, rest = self._sdb.narrowed(self._name, filter)
        return coll.distinct(key, rest)

    def aggregate(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> Any:
        """mongomock copies every whole document into a pipeline; we first cut the documents down to the
        top-level fields the pipeline names (``$field`` references and ``$match`` keys)."""
        pipeline = list(pipeline)
        has_match = bool(pipeline) and set(pipeline[0]) == {"$match"}
        coll, rest = self._sdb.narrowed(self._name, pipeline[0]["$match"] if has_match else {})
        stages = ([{"$match": rest}] if rest else []) + (pipeline[1:] if has_match else pipeline)
        fields = {"_id"} | {k.split(".")[0] for k in _match_keys(rest)} | _referenced_fields(stages)
        projected = [{k: d[k] for k in fields if k in d} for d in coll.find({}, {f: 1 for f in fields})]
        from collections import OrderedDict

        from mongomock.collection import Collection

        db_store = self._sdb._database_store()
        db_store[self._name]._documents = OrderedDict((i, d) for i, d in enumerate(projected))
        return Collection(self._sdb._db, self._name, db_store).aggregate(stages, **kwargs)

    def estimated_document_count(self) -> int:
        return self._sdb._db[self._name].estimated_document_count()


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
        if cname == "sld_trajectories":
            pairs = [(key, _slim_trajectory(doc)) for key, doc in pairs]
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
        db = SnapshotDatabase(load_store_file(self.store_file)[0])
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

    from sld_workflows.store.session import read_launchpad_file
    from sld_workflows.store.trajectories import StoreError

    try:
        creds = read_launchpad_file(path)
    except (FileNotFoundError, StoreError) as exc:
        raise SourceError(str(exc)) from None
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
