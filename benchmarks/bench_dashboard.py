"""Dashboard page times with 20,000 frames and 1,000 trajectories, on the embedded store's snapshot and on
a local MongoDB-compatible server, beside a trivial peer request (``/api/ping``, reads nothing) in the same run.

The store is built from the documents of one real trajectory (bcc Fe, 16 atoms, model engine, run by
``sld submit`` + ``sld worker`` here): 999 trajectories of 8 steps and one of 1,008 steps (state and
evaluation frames of every step: 20,000 frames), one merged-layout Firework and launch per step, one
workflow per trajectory, 3 campaigns of 2 arms, 50 RUNNING trajectories on 5 worker hosts. The server is
``secantusd-py --standalone`` (SecantusDB, a separate process, stopped at the end), with the indexes the
writer side creates (``TrajectoryStore.ensure_indexes``, FireWorks' ``tuneup``, and ``(campaign, arm)``).

Every page is requested through a real HTTP server (werkzeug, threaded) ``--repeats`` times; printed:
the first (cold: the series of the long trajectory is computed then, cached after) and the median time,
and the median's ratio to the median of ``/api/ping``. Goal: every page, cold or warm, under 1 s.

    python benchmarks/bench_dashboard.py                 # both sources
    python benchmarks/bench_dashboard.py --only embedded # or server
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sld_workflows.cli.main import main  # noqa: E402
from sld_workflows.dashboard import ServerSource, SnapshotSource, create_app  # noqa: E402
from sld_workflows.dashboard.source import load_store_file  # noqa: E402

N_TRAJ = 1000
SHORT_STEPS = 8
LONG_STEPS = 1008
STATES = ["COMPLETED"] * 14 + ["READY"] * 4 + ["RUNNING"] + ["FIZZLED"]


def template_docs(tmp: Path) -> dict[str, list[dict]]:
    spec = {"name": "template", "structure": {"preset": "bcc_fe", "supercell": [2, 2, 2]},
            "spins": {"init": "random"}, "velocities": {"temperature_k": 300}, "engine": {"kind": "model"},
            "dynamics": {"dt_fs": 0.1, "steps": 9, "ensemble": "nvt", "temperature": 300, "alpha": 0.1,
                         "spin_scheme": "sib-fixed-field", "seed": 1}, "output": {"every": 1}}
    (tmp / "t.yaml").write_text(yaml.safe_dump(spec))
    project = tmp / "template_project"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["submit", str(tmp / "t.yaml"), "--project", str(project)]) == 0
        assert main(["worker", "--project", str(project), "--launch-dir", str(tmp / "launches")]) == 0
    db, _ = load_store_file(project / "launchpad.json")
    return {c: list(db[c].find()) for c in ("sld_trajectories", "sld_frames", "fireworks", "launches", "workflows")}


def synthesize(t: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The benchmark store: documents of the template trajectory, replicated with new ids and steps."""
    import bson
    import numpy as np

    rng = np.random.default_rng(0)
    traj0 = t["sld_trajectories"][0]
    frames0 = {(f["step"], f["kind"]): f for f in t["sld_frames"]}
    fw0, launch0, wf0 = t["fireworks"][-1], t["launches"][-1], t["workflows"][0]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    out: dict[str, list[dict]] = {k: [] for k in ("sld_trajectories", "sld_frames", "fireworks", "launches",
                                                  "workflows", "sld_campaigns")}
    fw_id = 0
    arms: dict[str, dict[str, list[str]]] = {f"camp_{c}": {"sld": [], "reference": []} for c in range(3)}
    for i in range(N_TRAJ):
        tid = f"sld-bench{i:07d}"
        steps = LONG_STEPS if i == 0 else SHORT_STEPS
        state = "COMPLETED" if i == 0 else STATES[i % len(STATES)]
        done = steps if state == "COMPLETED" else int(rng.integers(0, steps))
        campaign, arm = f"camp_{i % 3}", ("reference" if i % 10 == 0 else "sld")
        arms[campaign][arm].append(tid)
        doc = copy.deepcopy(traj0)
        doc.update(_id=tid, name=f"fe_{i:04d}", status=state, steps_requested=steps, steps_done=done,
                   last_energy_ev=float(-60.5 + rng.normal(scale=0.05)), engine_wall_time_s=float(rng.uniform(1, 50)),
                   campaign=campaign, arm=arm, root_fw_id=fw_id + 1, created_on=now, updated_on=now, worker=None)
        for step in range(steps + 1):  # frames of every step (the store holds them whatever the state)
            for kind in ("state", "evaluation"):
                f = copy.copy(frames0[(step % 10, kind)])
                f.update(_id=bson.ObjectId(), trajectory=tid, step=step, time_fs=0.1 * step)
                out["sld_frames"].append(f)
        nodes = []
        for step in range(steps):
            fw_id += 1
            nodes.append(fw_id)
            fw_state = ("COMPLETED" if step < done else "RUNNING" if (step == done and state == "RUNNING")
                        else "FIZZLED" if (step == done and state == "FIZZLED") else "WAITING")
            fw = copy.deepcopy(fw0)
            fw.update(_id=bson.ObjectId(), fw_id=fw_id, state=fw_state, name=f"fe_{i:04d}:{tid}:step{step}",
                      launches=[fw_id] if fw_state != "WAITING" else [])
            fw["spec"]["sld"] = {"trajectory": tid, "step": step, "kind": "step"}
            out["fireworks"].append(fw)
            if fw_state != "WAITING":
                launch = copy.deepcopy(launch0)
                host = f"node{fw_id % 5:02d}"
                launch.update(_id=bson.ObjectId(), launch_id=fw_id, fw_id=fw_id, state=fw_state, host=host,
                              launch_dir=f"/scratch/{host}/launcher_{fw_id:07d}")
                if fw_state == "RUNNING":
                    launch["state_history"] = [{"state": "RUNNING", "created_on": now.isoformat(),
                                                "updated_on": now.isoformat()}]
                    doc["worker"] = {"host": host, "pid": 1000 + i, "fw_id": fw_id, "since": time.time()}
                if fw_state == "FIZZLED":
                    launch["action"] = {"stored_data": {"_exception": {
                        "_stacktrace": "Traceback...\nVaspRunError: SCF did not converge in 120 iterations"}}}
                out["launches"].append(launch)
        wf = copy.deepcopy(wf0)
        wf.update(_id=bson.ObjectId(), nodes=nodes, name=f"fe_{i:04d}", links={}, parent_links={}, fw_states={})
        out["workflows"].append(wf)
        out["sld_trajectories"].append(doc)
    out["fw_id_assigner"] = [{"_id": bson.ObjectId(), "next_fw_id": fw_id + 1, "next_launch_id": fw_id + 1}]
    for name, a in arms.items():
        out["sld_campaigns"].append({"_id": bson.ObjectId(), "name": name, "created": now, "state": "RUNNING",
                                     "spec": {}, "arms": {
                                         "sld": {"kind": "sld", "n_structures": len(a["sld"]), "n_steps": SHORT_STEPS,
                                                 "trajectories": a["sld"]},
                                         "reference": {"kind": "reference", "n_structures": len(a["reference"]),
                                                       "n_statics": SHORT_STEPS, "trajectories": a["reference"]}}})
    return out


def write_embedded(docs: dict[str, list[dict]], path: Path) -> None:
    import bson.json_util

    dump = {"fireworks": {c: {"name": c, "documents": [[d["_id"], d] for d in ds]} for c, ds in docs.items()}}
    path.write_text(bson.json_util.dumps(dump))


def start_server(tmp: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "secantusd.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(["secantusd-py", "--standalone", "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", str(tmp / "server_data"), "--log-level", "WARNING"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return proc, port
        if proc.poll() is not None:
            raise RuntimeError(f"secantusd-py exited: {(tmp / 'secantusd.log').read_text()[-2000:]}")
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("secantusd-py did not listen within 60 s")


def fill_server(docs: dict[str, list[dict]], port: int):
    import pymongo
    from fireworks import LaunchPad

    from sld_workflows.store.trajectories import TrajectoryStore

    client = pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=10000)
    db = client["bench"]
    for name, ds in docs.items():
        for i in range(0, len(ds), 2000):
            db[name].insert_many(ds[i:i + 2000], ordered=False)
    # the indexes the writer side creates
    TrajectoryStore(db).ensure_indexes()
    LaunchPad(host="127.0.0.1", port=port, name="bench", strm_lvl="ERROR").tuneup(bkground=False)
    db["sld_trajectories"].create_index([("campaign", 1), ("arm", 1)])
    db["sld_campaigns"].create_index("name", unique=True)
    return client


def serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        body = resp.read()
        assert resp.status == 200, (url, resp.status)
    elapsed = time.perf_counter() - start
    assert len(body) > 10, url
    return elapsed


def pages(long_id: str, short_id: str) -> list[tuple[str, str]]:
    return [
        ("overview /", "/"),
        ("campaigns", "/campaigns"),
        ("one campaign", "/campaigns/camp_1"),
        ("trajectories p1", "/trajectories"),
        ("trajectories sorted p7", "/trajectories?sort=last_energy_ev&order=desc&page=7"),
        ("trajectories filtered", "/trajectories?state=RUNNING&material=bcc_fe&q=fe_0"),
        ("trajectory (long) page", f"/trajectories/{long_id}"),
        ("  its series (1009 steps)", f"/api/trajectories/{long_id}/series"),
        ("  its spins", f"/api/trajectories/{long_id}/spins"),
        ("trajectory (short) page", f"/trajectories/{short_id}"),
        ("  its series", f"/api/trajectories/{short_id}/series"),
        ("workers", "/workers"),
        ("API 500 rows", "/api/trajectories?per_page=500"),
    ]


def measure(label: str, source, repeats: int, long_id: str, short_id: str) -> list[tuple[str, float, float, float]]:
    base, server = serve(create_app(source))
    try:
        get(base + "/api/ping")
        ping = [get(base + "/api/ping") for _ in range(max(repeats, 10))]
        ping_med = statistics.median(ping)
        rows = []
        for name, path in pages(long_id, short_id):
            times = [get(base + path) for _ in range(repeats)]
            rows.append((name, times[0], statistics.median(times), statistics.median(times) / ping_med))
    finally:
        server.shutdown()
    print(f"\n== {label}: trivial peer /api/ping median {ping_med * 1e3:.2f} ms")
    print(f"{'page':28s} {'cold (ms)':>10s} {'median (ms)':>12s} {'ratio to ping':>14s}")
    for name, cold, med, ratio in rows:
        print(f"{name:28s} {cold * 1e3:10.1f} {med * 1e3:12.1f} {ratio:14.1f}")
    worst = max(max(c, m) for _, c, m, _ in rows)
    print(f"slowest page: {worst * 1e3:.0f} ms -> {'OK' if worst < 1.0 else 'OVER'} the 1 s goal")
    return rows


def main_bench(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["embedded", "server"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    try:
        t0 = time.perf_counter()
        docs = synthesize(template_docs(tmp))
        n_frames, n_traj = len(docs["sld_frames"]), len(docs["sld_trajectories"])
        print(f"store: {n_traj} trajectories, {n_frames} frames, {len(docs['fireworks'])} Fireworks, "
              f"{len(docs['launches'])} launches (built in {time.perf_counter() - t0:.1f} s)")
        assert n_frames == 20_000 and n_traj == 1000
        long_id, short_id = docs["sld_trajectories"][0]["_id"], docs["sld_trajectories"][7]["_id"]
        worst = []
        if args.only in (None, "embedded"):
            path = tmp / "sld_project" / "launchpad.json"
            path.parent.mkdir()
            write_embedded(docs, path)
            t0 = time.perf_counter()
            source = SnapshotSource(path)
            print(f"\nembedded store file {path.stat().st_size / 2**20:.1f} MiB; snapshot load "
                  f"{time.perf_counter() - t0:.2f} s (once per save, in a background thread after the first)")
            rows = measure("embedded store (snapshot)", source, args.repeats, long_id, short_id)
            worst.append(max(max(c, m) for _, c, m, _ in rows))
        if args.only in (None, "server"):
            proc, port = start_server(tmp)
            try:
                t0 = time.perf_counter()
                client = fill_server(docs, port)
                print(f"\nsecantusd-py on 127.0.0.1:{port} filled in {time.perf_counter() - t0:.1f} s")
                rows = measure("local server (secantusd-py --standalone)",
                               ServerSource(client=client, db_name="bench"), args.repeats, long_id, short_id)
                worst.append(max(max(c, m) for _, c, m, _ in rows))
                client.close()
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        return 0 if all(w < 1.0 for w in worst) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("SLD_FLUSH_SECS", "30")
    sys.exit(main_bench())
