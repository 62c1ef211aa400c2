"""The paper-scale BiFeO3 campaign on the model engine: 600 × 20 SLD + 600 × 10 reference + 1 test
trajectory (80 atoms, 16 Fe), against a local MongoDB-compatible server, then export of its 18,000
training frames to extxyz and DeePMD npy.

Reports (ratios first, the machine is shared):
- campaign wall time, engine wall time (sum of the recorded ``wall_time_s`` of every calculation) and
  the orchestration share 1 − engine/wall;
- Fireworks per second in successive slices of the run (per-step cost must not grow with the number
  of finished trajectories) and the most Fireworks ever on the LaunchPad (throttled submission);
- export seconds and frames per second for extxyz and deepmd, and the growth of the process's peak
  memory during each export (streaming: it must not scale with the 18,000 frames).

The server (``secantusd-py --standalone``, a separate process; GPL, never imported) is started here on
a free port with its data in a temporary directory and stopped at the end.

    python benchmarks/bench_campaign.py                 # paper scale (~5-10 min on 2 cores)
    python benchmarks/bench_campaign.py --structures 60 # quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("secantusd-py")
    if exe is None:
        sys.exit("secantusd-py is not installed (pip install secantusdb); it is the local MongoDB-compatible server")
    port = free_port()
    log = open(workdir / "server.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([exe, "--standalone", "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                             str(workdir / "db")], stdout=log, stderr=subprocess.STDOUT)
    import pymongo

    client = pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=500)
    for _ in range(100):
        try:
            client.admin.command("ping")
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    else:
        proc.terminate()
        sys.exit("the server did not start; see server.log")
    client.close()
    return proc, port


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=600)
    parser.add_argument("--slice", type=int, default=200, help="Fireworks per timing slice")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    from sld_workflows.campaigns.adapters import open_session
    from sld_workflows.campaigns.manage import campaign_status, create_campaign, run_campaign
    from sld_workflows.campaigns.spec import CampaignSpec
    from sld_workflows.datasets.export import export
    from sld_workflows.datasets.selection import ExportQuery

    work = Path(tempfile.mkdtemp(prefix="bench_campaign_"))
    proc, port = start_server(work)
    try:
        lp = work / "launchpad.yaml"
        lp.write_text(yaml.safe_dump({"host": "127.0.0.1", "port": port, "name": "bench_campaign"}))
        raw = yaml.safe_load((ROOT / "campaigns" / "bifeo3_paper.yaml").read_text())
        raw["pool"]["n_structures"] = args.structures
        spec = CampaignSpec.from_dict(raw)
        with open_session(lp) as session:
            t0 = time.perf_counter()
            create_campaign(session, spec)
            t_create = time.perf_counter() - t0
            slices = []
            max_fw = 0
            t1 = time.perf_counter()
            while True:
                ts = time.perf_counter()
                r = run_campaign(session, spec.name, str(work / "launches"), max_launches=args.slice)
                max_fw = max(max_fw, r["max_fireworks"])
                if r["launches"]:
                    slices.append(r["launches"] / (time.perf_counter() - ts))
                if not r["launches"] or session.lpad.db["sld_campaigns"].find_one(
                        {"name": spec.name}, {"state": 1})["state"] == "completed":
                    break
            t_run = time.perf_counter() - t1
            ts = time.perf_counter()
            status = campaign_status(session.lpad.db, spec.name)
            t_status = time.perf_counter() - ts
            engine = sum(a["engine_wall_time_s"] for a in status["arms"].values())
            points = {a: f"{r['points_done']}/{r['points_requested']}" for a, r in status["arms"].items()}
            print(f"campaign {spec.name}: {args.structures} structures; points {points}; state {status['state']}")
            print(f"  create (pool NpT run + {2 * args.structures + 1} trajectories stored): {t_create:.1f} s")
            print(f"  run: {t_run:.1f} s wall, engine {engine:.1f} s -> orchestration share {1 - engine / t_run:.1%}; "
                  f"wall/engine = {t_run / engine:.1f}")
            print(f"  total (create + run): {t_create + t_run:.1f} s (goal < 600 s); campaign_status {t_status:.2f} s")
            print(f"  Fireworks per second by slice of {args.slice}: " + ", ".join(f"{x:.1f}" for x in slices)
                  + (f"; last/first = {slices[-2] / slices[0]:.2f}" if len(slices) > 2 else ""))
            print(f"  most Fireworks on the LaunchPad at once: {max_fw} "
                  f"(max_active {spec.raw['submission']['max_active']}); at the end: "
                  f"{session.lpad.fireworks.count_documents({})}")
            print("  cost per point (reference units): " + ", ".join(
                f"{a} {r['cost_per_point_reference_units']:.2f}" for a, r in status["arms"].items()))
            results = {"create_s": t_create, "run_s": t_run, "engine_s": engine, "slices_fw_per_s": slices,
                       "max_fireworks": max_fw}
            query = ExportQuery(campaign=spec.name, arms=("sld", "reference"))
            for fmt in ("extxyz", "deepmd"):
                before = peak_rss_mb()
                te = time.perf_counter()
                manifest = export(session.lpad.db, work / f"export_{fmt}", fmt, query)
                dt = time.perf_counter() - te
                size = sum(f["bytes"] for f in manifest["files"].values()) / 2**20
                print(f"  export {fmt}: {manifest['total_frames']} frames in {dt:.1f} s "
                      f"({manifest['total_frames'] / dt:.0f} frames/s, goal < 10 s), {size:.0f} MiB written, "
                      f"peak memory +{peak_rss_mb() - before:.0f} MiB")
                results[f"export_{fmt}_s"] = dt
            print(json.dumps(results))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
