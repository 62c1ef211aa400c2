"""Work-arounds on a FireWorks LaunchPad for what the database servers we use get wrong.

1. Stale pre-images of ``findAndModify`` with ``$inc`` (SecantusDB 0.7.0b3, measured here: four
   processes each incrementing one counter 200 times got only 578 distinct pre-images for 800
   increments, while the post-images were all distinct). FireWorks draws every ``fw_id`` and launch
   id that way (``get_new_fw_id``, ``get_new_launch_id``, ``bulk_add_wfs``), so two workers adding
   successors at the same moment got the same fw_id — one workflow then points at a Firework of
   another ("Could not find workflow in database"). :class:`CounterCollection` asks for the
   post-image and subtracts the increment, which gives the same value as a correct pre-image.
2. An indexable checkout: FireWorks' checkout query sorts READY Fireworks by ``spec._priority``;
   with no index on it the server scans the whole collection per checkout. We create
   ``sld_checkout`` on (state, spec._category, spec._priority, created_on) and ``sld_trajectory`` on
   ``spec.sld.trajectory`` (every SLD query), see :func:`ensure_fireworks_indexes`.

Both are harmless on MongoDB and mongomock; :func:`patch_launchpad` is idempotent.
"""

from __future__ import annotations

from typing import Any

import pymongo

from sld_workflows.store.keys import FwSpec


class _CollectionProxy:
    """A pymongo collection that delegates everything; subclasses override one method."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def __getitem__(self, name: str) -> Any:
        return self._collection[name]


class CounterCollection(_CollectionProxy):
    """A collection proxy whose ``find_one_and_update`` with a pure ``$inc`` and the default
    (pre-image) return reads the post-image and subtracts the increments."""

    def find_one_and_update(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        incs = update.get("$inc") if isinstance(update, dict) and set(update) == {"$inc"} else None
        if incs is None or args or "return_document" in kwargs:
            return self._collection.find_one_and_update(filter, update, *args, **kwargs)
        after = self._collection.find_one_and_update(filter, update, return_document=pymongo.ReturnDocument.AFTER,
                                                     **kwargs)
        if after is None:
            return None
        return {k: (v - incs[k] if k in incs else v) for k, v in after.items()}


class ReservingCollection(_CollectionProxy):
    """Proxy of ``lpad.fireworks`` that stamps a checkout's RESERVED update with the worker's identity
    (``sld_reserved_by``), so ``sld recover`` can tell a checkout cut by a kill (its pid gone) from
    one in progress. FireWorks itself records nothing until the launch is stored."""

    def __init__(self, collection: Any, identity: dict[str, Any]) -> None:
        super().__init__(collection)
        self._identity = identity

    def find_one_and_update(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        sets = update.get("$set") if isinstance(update, dict) else None
        if isinstance(sets, dict) and sets.get("state") == "RESERVED" and set(update) == {"$set"}:
            update = {"$set": {**sets, "sld_reserved_by": self._identity}}
        return self._collection.find_one_and_update(filter, update, *args, **kwargs)


def stamp_checkouts(lpad: Any, identity: dict[str, Any]) -> Any:
    if not isinstance(lpad.fireworks, ReservingCollection):
        lpad.fireworks = ReservingCollection(lpad.fireworks, identity)
    return lpad


def ensure_fireworks_indexes(lpad: Any) -> None:
    lpad.fireworks.create_index([("state", 1), ("spec._category", 1), ("spec._priority", -1), ("created_on", 1)],
                                name="sld_checkout")
    lpad.fireworks.create_index([(FwSpec.TRAJECTORY, 1), ("state", 1)], name="sld_trajectory")


def patch_launchpad(lpad: Any, indexes: bool = True) -> Any:
    """Apply the work-arounds above to ``lpad`` (once) and return it."""
    if not isinstance(lpad.fw_id_assigner, CounterCollection):
        lpad.fw_id_assigner = CounterCollection(lpad.fw_id_assigner)
    if indexes and not getattr(lpad, "_sld_indexes", False):
        ensure_fireworks_indexes(lpad)
        lpad._sld_indexes = True
    return lpad


def worker_identity() -> dict[str, Any]:
    """Host, pid and start time of this worker process, recorded in every launch it checks out."""
    import os
    import socket
    import time

    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def make_fworker(base: Any = None, name: str = "sld-worker", lpad: Any = None) -> Any:
    """An :class:`SLDFWorker` copying ``base`` (an FWorker from ``-w fworker.yaml``) or a default one.

    With ``lpad``: if no Firework there is pinned to a worker (``spec._fworker``) when the worker
    starts, its checkout query leaves the ``_fworker`` clause out (see :class:`SLDFWorker`)."""
    worker = SLDFWorker(name=getattr(base, "name", name), category=getattr(base, "category", ""),
                        query=getattr(base, "_query", None), env=dict(getattr(base, "env", None) or {}))
    if lpad is not None:
        worker.pinned_fireworks = bool(lpad.fireworks.count_documents(
            {"spec._fworker": {"$exists": True, "$ne": None}}, limit=1))
    return worker


def _fworker_class() -> Any:
    from fireworks.core.fworker import FWorker

    return FWorker


class SLDFWorker(_fworker_class()):  # type: ignore[misc]
    """A FireWorks worker whose checkout query an index can serve, and whose launches say who ran them.

    - FireWorks' query matches ``_fworker`` with ``$or`` of three clauses. Measured on SecantusDB
      0.7.0b3 with 2,000 READY Fireworks of another category: any ``_fworker`` clause (that ``$or``, or
      the equivalent ``{"$in": [None, name]}``) makes its planner scan the collection (COLLSCAN,
      ~70 ms per query here) even with a hint, while ``{state, spec._category}`` uses the
      ``sld_checkout`` index (IXSCAN, ~6 ms). We use the ``$in`` form, and leave the clause out
      entirely when no Firework was pinned to a worker as the worker started (``pinned_fireworks``
      False, set by :func:`make_fworker`): the usual case, SLD never pins.
    - ``env.sld_worker`` = host, pid, start time: stored in each launch (``launch.fworker.env``), so
      ``sld recover`` knows at once that the worker of a RUNNING Firework is dead even if it was killed
      right after the checkout, before our task recorded anything.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env = {**(self.env or {}), "sld_worker": worker_identity()}
        self.pinned_fireworks = True

    @property
    def query(self) -> dict[str, Any]:
        q = dict(super().query)
        fworker_check = [{"spec._fworker": {"$exists": False}}, {"spec._fworker": None}, {"spec._fworker": self.name}]
        if q.get("$or") == fworker_check:
            del q["$or"]
            if self.pinned_fireworks:
                q["spec._fworker"] = {"$in": [None, self.name]}
        return q
