"""The dashboard's pages and JSON API on a small real project (Flask test client, no browser):
numbers against the store, bad input, escaping, read-only, the embedded-store snapshot, access rules."""

from __future__ import annotations

import hashlib
import math
import os

import pytest
from dashboard_project import XSS_NAME, build_project, load_db

from sld_workflows.dashboard import ReadOnlyError, SnapshotSource, create_app
from sld_workflows.dashboard.source import ReadOnlyDatabase


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("dash"))


@pytest.fixture(scope="module")
def client(project):
    app = create_app(SnapshotSource(project["store_file"]))
    return app.test_client()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_trajectory_table_matches_store(project, client):
    db = load_db(project["store_file"])
    data = client.get("/api/trajectories?per_page=100").get_json()
    assert data["total"] == db["sld_trajectories"].count_documents({}) == 4
    for row in data["rows"]:
        doc = db["sld_trajectories"].find_one({"_id": row["id"]})
        assert row["steps_done"] == doc["steps_done"] and row["steps_requested"] == doc["steps_requested"]
        assert row["state"] == doc["status"] and row["name"] == doc["name"]
        assert row["last_energy_ev"] == doc.get("last_energy_ev")
        assert row["material"] == "bcc_fe" and row["engine"] == "model"
    done = {r["name"]: r for r in data["rows"]}
    assert done["fe_a"]["steps_done"] == 12 and done["fe_a"]["state"] == "COMPLETED"
    assert done["fe_queued"]["steps_done"] == 0 and done["fe_queued"]["state"] == "READY"
    # the HTML table shows the same numbers
    html = client.get("/trajectories").get_data(as_text=True)
    assert f"{done['fe_a']['last_energy_ev']:.6f}" in html and "12 / 12" in html


def test_sort_filter_paginate(client):
    rows = client.get("/api/trajectories?sort=steps_done&order=desc").get_json()["rows"]
    assert [r["steps_done"] for r in rows] == sorted((r["steps_done"] for r in rows), reverse=True)
    rows = client.get("/api/trajectories?sort=last_energy_ev&order=asc&state=COMPLETED").get_json()["rows"]
    assert len(rows) == 3 and all(r["state"] == "COMPLETED" for r in rows)
    energies = [r["last_energy_ev"] for r in rows]
    assert energies == sorted(energies)
    assert [r["name"] for r in client.get("/api/trajectories?q=NPT").get_json()["rows"]] == ["fe_npt"]
    page1 = client.get("/api/trajectories?per_page=3&sort=name").get_json()
    page2 = client.get("/api/trajectories?per_page=3&sort=name&page=2").get_json()
    assert page1["pages"] == 2 and len(page1["rows"]) == 3 and len(page2["rows"]) == 1
    assert not {r["id"] for r in page1["rows"]} & {r["id"] for r in page2["rows"]}
    assert client.get("/api/trajectories?campaign=fe_demo&arm=probe").get_json()["total"] == 1


def test_series_against_frames(project, client):
    from sld_workflows.analysis.order import order_parameters
    from sld_workflows.evaluation import Evaluation
    from sld_workflows.state import SLDState

    tid = project["ids"]["fe_a"]
    db = load_db(project["store_file"])
    s = client.get(f"/api/trajectories/{tid}/series").get_json()
    assert s["n_stored_steps"] == 13 and s["n_points"] == 13 and s["material"] == "bcc_fe"
    c = s["columns"]
    assert c["step"] == list(range(13))
    for k in (3, 12):
        state = db["sld_frames"].find_one({"trajectory": tid, "step": k, "kind": "state"})
        ev = db["sld_frames"].find_one({"trajectory": tid, "step": k, "kind": "evaluation"})
        ref = order_parameters("bcc_fe", SLDState.from_dict(state["data"]), Evaluation.from_dict(ev["data"]))
        assert c["energy_ev"][k] == ev["energy_ev"]
        assert c["time_fs"][k] == pytest.approx(state["time_fs"], abs=1e-12)
        for key in ("m", "T_lattice_K", "T_spin_K"):
            assert c[key][k] == pytest.approx(ref[key], rel=1e-12)
    assert s["npt"] is False and s["dft"] is False
    # downsampling keeps the first and last stored step
    small = client.get(f"/api/trajectories/{tid}/series?max_points=4").get_json()
    assert small["n_points"] == 4 and small["columns"]["step"][0] == 0 and small["columns"]["step"][-1] == 12
    npt = client.get(f"/api/trajectories/{project['ids']['fe_npt']}/series").get_json()
    assert npt["npt"] is True and len(set(npt["columns"]["volume_A3"])) > 1  # the cell moves under NpT


def test_spins_and_fireworks(project, client):
    tid = project["ids"]["fe_a"]
    db = load_db(project["store_file"])
    spins = client.get(f"/api/trajectories/{tid}/spins").get_json()
    last = db["sld_frames"].find_one({"trajectory": tid, "step": 12, "kind": "state"})
    assert spins["step"] == 12 and spins["spins"] == last["data"]["spins"]
    fw = client.get(f"/api/trajectories/{tid}/fireworks").get_json()
    stored = db["fireworks"].count_documents({"spec.sld.trajectory": tid})
    assert fw["total"] == stored == 12 and fw["states"] == {"COMPLETED": 12}
    assert all(r["launch_dir"] and os.path.isdir(r["launch_dir"]) for r in fw["rows"])
    html = client.get(f"/trajectories/{tid}").get_data(as_text=True)
    assert fw["rows"][0]["launch_dir"] in html and "/vendor/plotly.min.js" in html


def test_campaign_progress_and_cost(project, client):
    db = load_db(project["store_file"])
    c = client.get("/api/campaigns/fe_demo").get_json()
    arm = c["arms"]["sld"]
    docs = list(db["sld_trajectories"].find({"campaign": "fe_demo", "arm": "sld"}))
    assert arm["trajectories"] == 3 and arm["steps_done"] == sum(d["steps_done"] for d in docs) == 20
    assert arm["steps_requested"] == 25 and arm["states"] == {"COMPLETED": 2, "READY": 1}
    assert arm["kind"] == "sld" and arm["planned_structures"] == 3
    # no reference arm: one engine evaluation = one unit (20 steps + 3 initial evaluations)
    assert c["cost_method"] == "engine evaluations" and arm["cost_units"] == 23
    assert c["cost_units"] == 23 + 5
    html = client.get("/campaigns/fe_demo").get_data(as_text=True)
    assert "20 / 25" in html and "28.0" in html
    assert "fe_demo" in client.get("/campaigns").get_data(as_text=True)


def test_workers_page(project, client):
    w = client.get("/api/workers").get_json()
    assert w["running"] == 0 and len(w["workers"]) == 1
    assert w["workers"][0]["fworker"] == "sld-worker" and w["workers"][0]["launches_seen"] > 20
    assert client.get("/workers").status_code == 200


def test_bad_input(project, client):
    for url in ("/trajectories/sld-nope", "/api/trajectories/sld-nope", "/api/trajectories/sld-nope/series",
                "/api/trajectories/sld-nope/spins", "/campaigns/nope", "/api/campaigns/nope", "/no/such/page"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert "Traceback" not in r.get_data(as_text=True)
    assert "unknown trajectory id 'sld-nope'" in client.get("/api/trajectories/sld-nope").get_json()["error"]
    assert "404" in client.get("/trajectories/sld-nope").get_data(as_text=True)
    for url in ("/trajectories?page=x", "/trajectories?page=0", "/trajectories?per_page=100000",
                "/trajectories?sort=__class__", "/trajectories?order=sideways", "/trajectories?state=BOGUS",
                "/trajectories?colour=red", "/trajectories?page=99", "/api/trajectories?q=%00",
                f"/api/trajectories/{project['ids']['fe_a']}/series?max_points=1",
                f"/api/trajectories/{project['ids']['fe_a']}/series?max_points=abc"):
        r = client.get(url)
        assert r.status_code == 400, url
        assert "Traceback" not in r.get_data(as_text=True)
    msg = client.get("/api/trajectories?page=x").get_json()["error"]
    assert msg == "query parameter 'page' must be an integer, got 'x'"
    # a regex-looking search is literal text, not a pattern
    assert client.get("/api/trajectories?q=.*").get_json()["total"] == 0


def test_values_are_escaped(project, client):
    html = client.get("/trajectories").get_data(as_text=True)
    assert XSS_NAME not in html and "&lt;script&gt;alert(" in html
    page = client.get(f"/trajectories/{project['ids']['xss']}").get_data(as_text=True)
    assert XSS_NAME not in page and "&lt;script&gt;alert(" in page
    assert "script-src 'self'" in client.get("/trajectories").headers["Content-Security-Policy"]


def test_no_request_writes(project, client):
    """Every route, then the store file is byte-identical; writes through the proxy raise; POST is refused."""
    before = (_digest(project["store_file"]), os.stat(project["store_file"]).st_mtime_ns)
    tid = project["ids"]["fe_a"]
    urls = ["/", "/campaigns", "/campaigns/fe_demo", "/trajectories", "/trajectories?sort=worker&order=desc",
            f"/trajectories/{tid}", "/workers", "/api/source", "/api/campaigns", "/api/campaigns/fe_demo",
            "/api/trajectories", f"/api/trajectories/{tid}", f"/api/trajectories/{tid}/series",
            f"/api/trajectories/{tid}/spins", f"/api/trajectories/{tid}/fireworks", "/api/workers",
            "/vendor/plotly.min.js", "/static/style.css", "/static/trajectory.js"]
    for url in urls:
        assert client.get(url).status_code == 200, url
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/api/trajectories").status_code == 405
    assert (_digest(project["store_file"]), os.stat(project["store_file"]).st_mtime_ns) == before
    ro = ReadOnlyDatabase(load_db(project["store_file"]))
    for attempt in (lambda: ro["sld_trajectories"].insert_one({}), lambda: ro["sld_frames"].delete_many({}),
                    lambda: ro["sld_frames"].create_index("x"), lambda: ro.drop_collection("sld_frames"),
                    lambda: ro["sld_trajectories"].update_one({}, {"$set": {"a": 1}})):
        with pytest.raises(ReadOnlyError):
            attempt()
    assert ro["sld_trajectories"].count_documents({}) == 4


def test_snapshot_while_store_is_locked_and_reload(project, tmp_path):
    """A worker owns the store (its lock is held): the dashboard reads the saved file, says how old it is,
    and picks up a newer save."""
    import shutil
    import time

    from sld_workflows.store.connection import StoreLock

    store = tmp_path / "launchpad.json"
    shutil.copy(project["store_file"], store)
    os.utime(store, (time.time() - 120, time.time() - 120))
    lock = StoreLock(store)
    lock.acquire()
    try:
        source = SnapshotSource(store, min_reload_interval_s=0.0, background=False)
        client = create_app(source).test_client()
        info = client.get("/api/source").get_json()
        assert info["kind"] == "embedded" and 119 < info["age_s"] < 200 and f"pid {os.getpid()}" in info["owner"]
        assert "saved" in client.get("/trajectories").get_data(as_text=True)
        assert client.get("/api/trajectories").get_json()["total"] == 4
        # the owner saves a newer store (atomically, as the store layer does): the next request sees it
        from sld_workflows.store.connection import write_store_atomically

        db = load_db(store)
        db["sld_trajectories"].delete_one({"name": "fe_queued"})

        class _Dump:
            def to_dict(self):
                client_store = db.client._store
                return {name: {c: {"name": c, "documents": [(d["_id"], d) for d in db[c].find()]}
                               for c in db.list_collection_names()} for name in client_store._databases}

        write_store_atomically(_Dump(), store)
        assert client.get("/api/trajectories").get_json()["total"] == 3
        assert client.get("/api/source").get_json()["age_s"] < 5
        assert lock.held
    finally:
        lock.release()


def test_access_rules(project, capsys):
    from sld_workflows.cli.main import main

    assert main(["dashboard", "--project", str(project["project"]), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0" in err and "--token" in err
    assert main(["dashboard", "--project", str(project["project"]), "--host", "0.0.0.0", "--token", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert main(["dashboard", "--project", str(project["project"]), "--basic-auth", "nopassword"]) == 2
    assert "USER:PASSWORD" in capsys.readouterr().err
    assert main(["dashboard", "--project", str(project["project"] / "absent")]) == 2
    assert "no project at" in capsys.readouterr().err
    token = "t0ken-" + "x" * 20
    client = create_app(SnapshotSource(project["store_file"]), token=token).test_client()
    assert client.get("/api/trajectories").status_code == 401
    assert client.get("/api/trajectories", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = client.get(f"/trajectories?token={token}")
    assert r.status_code == 200 and "sld_token" in r.headers.get("Set-Cookie", "")
    assert client.get("/api/trajectories").status_code == 200  # the cookie set above
    import base64

    basic = create_app(SnapshotSource(project["store_file"]), basic_auth=("ann", "pw")).test_client()
    assert basic.get("/").status_code == 401 and "Basic" in basic.get("/").headers["WWW-Authenticate"]
    good = base64.b64encode(b"ann:pw").decode()
    assert basic.get("/", headers={"Authorization": f"Basic {good}"}).status_code == 200
    bad = base64.b64encode(b"ann:nope").decode()
    assert basic.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401


def test_energy_values_are_finite(project, client):
    s = client.get(f"/api/trajectories/{project['ids']['fe_a']}/series").get_json()
    assert all(math.isfinite(x) for x in s["columns"]["energy_ev"])


def test_background_reload_keeps_serving_the_old_snapshot(project, tmp_path):
    """With background reloads (the default), a newer save is swapped in once loaded."""
    import shutil

    store = tmp_path / "launchpad.json"
    shutil.copy(project["store_file"], store)
    source = SnapshotSource(store, min_reload_interval_s=0.0)
    client = create_app(source).test_client()
    assert client.get("/api/trajectories").get_json()["total"] == 4
    generation = source.generation
    import bson.json_util

    dump = bson.json_util.loads(store.read_text())
    db = dump["fireworks"]
    db["sld_trajectories"]["documents"] = [p for p in db["sld_trajectories"]["documents"] if p[1]["name"] != "fe_a"]
    tmp = tmp_path / "new.json"
    tmp.write_text(bson.json_util.dumps(dump))
    os.replace(tmp, store)
    assert client.get("/api/trajectories").get_json()["total"] in (3, 4)  # old or new copy, never an error
    source.wait_for_reload()
    assert source.generation == generation + 1
    assert client.get("/api/trajectories").get_json()["total"] == 3


def test_failures_and_dft_columns_from_stored_fields(project, tmp_path):
    """A FIZZLED step's error (FireWorks' stored stack trace) reaches the campaign page; SCF iterations,
    Custodian corrections and restart-chain breaks of evaluation frames reach the series (fields as the
    VASP path stores them: top-level scf_iterations/custodian_corrections, info.restart_chain)."""
    import shutil

    import bson.json_util

    store = tmp_path / "launchpad.json"
    shutil.copy(project["store_file"], store)
    dump = bson.json_util.loads(store.read_text())
    db = dump["fireworks"]
    tid = project["ids"]["fe_a"]
    fws = [d for _, d in db["fireworks"]["documents"] if d["spec"].get("sld", {}).get("trajectory") == tid]
    victim = max(fws, key=lambda d: d["fw_id"])
    victim["state"] = "FIZZLED"
    launch = next(d for _, d in db["launches"]["documents"] if d["launch_id"] == victim["launches"][-1])
    launch["state"] = "FIZZLED"
    launch["action"] = {"stored_data": {"_exception": {
        "_stacktrace": "Traceback (most recent call last):\n  ...\nVaspRunError: <b>SCF</b> did not converge"}}}
    for _, f in db["sld_frames"]["documents"]:
        if f["trajectory"] == tid and f["kind"] == "evaluation":
            f["scf_iterations"] = 10 + f["step"]
            f["custodian_corrections"] = [{"handler": "x"}] if f["step"] == 5 else []
            f["info"] = {"restart_chain": {"seeded_from": "/prev" if f["step"] else None, "copied": ["WAVECAR"],
                                           "broken_by": ["x"] if f["step"] == 5 else [], "intact": f["step"] != 5}}
    store.write_text(bson.json_util.dumps(dump))
    client = create_app(SnapshotSource(store)).test_client()
    failures = client.get("/api/campaigns/fe_demo").get_json()["failures"]
    assert failures == [{"fw_id": victim["fw_id"], "trajectory": tid, "step": victim["spec"]["sld"]["step"],
                         "reason": "VaspRunError: <b>SCF</b> did not converge"}]
    html = client.get("/campaigns/fe_demo").get_data(as_text=True)
    assert "VaspRunError: &lt;b&gt;SCF&lt;/b&gt; did not converge" in html
    c = client.get(f"/api/trajectories/{tid}/series").get_json()
    assert client.get(f"/api/trajectories/{tid}/series").get_json()["dft"] is True
    assert c["columns"]["scf_iterations"] == [10.0 + k for k in range(13)]
    assert c["columns"]["custodian_corrections"][5] == 1 and c["columns"]["custodian_corrections"][4] == 0
    assert c["columns"]["restart_break"] == [1.0 if k == 5 else 0.0 for k in range(13)]


def test_server_source_reads_live_data(project, tmp_path):
    """The same pages on a MongoDB-compatible server (secantusd-py --standalone, a separate process)."""
    import shutil
    import socket
    import subprocess
    import time

    import bson.json_util
    import pymongo
    import yaml

    from sld_workflows.dashboard import ServerSource

    exe = shutil.which("secantusd-py") or pytest.fail("secantusd-py is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--standalone", "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                             str(tmp_path / "data"), "--log-level", "WARNING"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "secantusd-py did not start"
                time.sleep(0.2)
        client = pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=10000)
        dump = bson.json_util.loads(project["store_file"].read_text())["fireworks"]
        for name, coll in dump.items():
            docs = [d for _, d in coll["documents"]]
            if docs:
                client["live"][name].insert_many(docs)
        lp = tmp_path / "lp.yaml"
        lp.write_text(yaml.safe_dump({"host": "127.0.0.1", "port": port, "name": "live"}))
        app = create_app(ServerSource(lp)).test_client()
        assert app.get("/api/source").get_json()["live"] is True
        assert app.get("/api/trajectories").get_json()["total"] == 4
        tid = project["ids"]["fe_a"]
        assert app.get(f"/api/trajectories/{tid}/series").get_json()["n_points"] == 13
        assert app.get(f"/api/trajectories/{tid}/fireworks").get_json()["total"] == 12
        for url in ("/", "/campaigns/fe_demo", "/trajectories", f"/trajectories/{tid}", "/workers"):
            assert app.get(url).status_code == 200, url
        # live: a change on the server shows at the next request
        client["live"]["sld_trajectories"].update_one({"_id": tid}, {"$set": {"status": "STOPPED"}})
        assert app.get("/api/trajectories?state=STOPPED").get_json()["total"] == 1
        client.close()
    finally:
        proc.terminate()
        proc.wait(30)
