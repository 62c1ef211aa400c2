"""What we rely on in the database server, checked directly against it (and on mongomock)."""

from __future__ import annotations

import multiprocessing
import uuid

import pymongo
import pytest


def _increment(args):
    uri, db_name, n = args
    from sld_workflows.store.fireworks_compat import CounterCollection

    with pymongo.MongoClient(uri) as client:
        counter = CounterCollection(client[db_name].fw_id_assigner)
        return [counter.find_one_and_update({}, {"$inc": {"next_fw_id": 1}})["next_fw_id"] for _ in range(n)]


@pytest.mark.server
def test_counter_gives_distinct_ids_under_concurrency(mongodb_uri):
    """FireWorks' fw_id counter read through CounterCollection: 4 processes x 150 increments, every id
    distinct and consecutive (the plain pre-image of SecantusDB 0.7.0b3 repeated ids here)."""
    db_name = f"sld_test_{uuid.uuid4().hex[:8]}"
    with pymongo.MongoClient(mongodb_uri) as client:
        client[db_name].fw_id_assigner.insert_one({"next_fw_id": 1, "next_launch_id": 1})
        try:
            with multiprocessing.get_context("spawn").Pool(4) as pool:
                ids = sum(pool.map(_increment, [(mongodb_uri, db_name, 150)] * 4), [])
            assert sorted(ids) == list(range(1, 601))
            assert client[db_name].fw_id_assigner.find_one()["next_fw_id"] == 601
        finally:
            client.drop_database(db_name)


def test_counter_proxy_leaves_other_updates_alone():
    import mongomock

    from sld_workflows.store.fireworks_compat import CounterCollection

    coll = mongomock.MongoClient().db.c
    coll.insert_one({"_id": 1, "n": 5, "m": 1})
    proxy = CounterCollection(coll)
    assert proxy.find_one_and_update({"_id": 1}, {"$inc": {"n": 2}}) == {"_id": 1, "n": 5, "m": 1}
    assert proxy.find_one_and_update({"_id": 1}, {"$set": {"m": 3}})["m"] == 1  # pre-image, as FireWorks expects
    assert proxy.find_one({"_id": 1}) == {"_id": 1, "n": 7, "m": 3}


def test_sld_fworker_selects_what_fireworks_selects():
    """The indexable ``$in`` form matches the same Fireworks as FireWorks' ``$or`` (missing, null, own name)."""
    import mongomock
    from fireworks.core.fworker import FWorker

    from sld_workflows.store.fireworks_compat import make_fworker

    coll = mongomock.MongoClient().db.fws
    coll.insert_many([{"i": 0, "state": "READY", "spec": {}}, {"i": 1, "state": "READY", "spec": {"_fworker": None}},
                      {"i": 2, "state": "READY", "spec": {"_fworker": "a"}},
                      {"i": 3, "state": "READY", "spec": {"_fworker": "b"}},
                      {"i": 4, "state": "READY", "spec": {"_category": "vasp"}}])
    for category in ("", "vasp"):
        ours = make_fworker(FWorker(name="a", category=category)).query
        theirs = FWorker(name="a", category=category).query
        assert "$or" not in ours
        assert ({d["i"] for d in coll.find(ours)} == {d["i"] for d in coll.find(theirs)})


def test_unpinned_checkout_query_has_no_fworker_clause():
    import mongomock
    from fireworks.core.fworker import FWorker

    from sld_workflows.store.fireworks_compat import make_fworker

    class Lpad:
        fireworks = mongomock.MongoClient().db.fws

    Lpad.fireworks.insert_one({"state": "READY", "spec": {"_category": "vasp"}})
    assert make_fworker(FWorker(category="vasp"), lpad=Lpad).query == {"spec._category": "vasp"}
    Lpad.fireworks.insert_one({"state": "READY", "spec": {"_fworker": "node7"}})
    assert "spec._fworker" in make_fworker(FWorker(category="vasp"), lpad=Lpad).query
