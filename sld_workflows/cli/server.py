"""``sld server start|stop|status`` and ``sld lpad ...``: the project's local database server.

The server keeps its data and address in the project folder (``PROJECT/server/``), so every other
command of the project finds it without flags; ``sld lpad ARGS`` runs FireWorks' ``lpad`` on it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("server", help="the project's local MongoDB-compatible server (start/stop/status)")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--project", metavar="DIR", help="project folder (default $SLD_PROJECT, else ./sld_project)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--sync-on-commit", action="store_true",
                   help="fsync the server's log on every commit (survives power loss; much slower writes)")
    p.set_defaults(func=cmd_server)

    p = subparsers.add_parser("lpad", help="FireWorks' lpad on the project's database (arguments passed on)",
                              add_help=False)
    p.add_argument("--project", metavar="DIR", help="project folder (default $SLD_PROJECT, else ./sld_project)")
    p.add_argument("lpad_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_lpad)


def cmd_server(args: argparse.Namespace) -> int:
    from sld_workflows.store.server import LocalServer, describe
    from sld_workflows.store.session import project_dir, read_project, write_local_launchpad_file, write_project

    directory = project_dir(args.project)
    server = LocalServer(directory, port=args.port, sync_on_commit=args.sync_on_commit)
    if args.action == "status":
        state, record = server.status()
        print(describe(state, record, directory))
        return 0 if state == "running" else 3
    if args.action == "stop":
        record = server.stop()
        print(f"stopped the server of {directory} ({record.address}, pid {record.pid})" if record
              else f"no server running for {directory}")
        return 0
    recorded = read_project(directory)
    if recorded is not None and recorded["backend"] != "server":
        raise ValueError(f"project {directory} uses the {recorded['backend']} backend; it has no server")
    state, stale = server.status()
    record = server.start()
    if recorded is None:
        write_project(directory, "server")
    write_local_launchpad_file(directory, record.host, record.port)
    note = f" (replaced a stale record of pid {stale.pid})" if state == "stale" else ""
    print(f"server of {directory} running at {record.address} (pid {record.pid}){note}")
    return 0


def cmd_lpad(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from sld_workflows.store.session import open_session

    with open_session(project=args.project) as session:
        if session.launchpad_file is None:
            raise ValueError(f"{session.description} is the embedded store: use lpad with "
                             f"MONGOMOCK_SERVERSTORE_FILE only while no worker runs")
        lpad_file = str(session.launchpad_file)
    exe = shutil.which("lpad") or "lpad"
    return subprocess.call([exe, "-l", lpad_file, *args.lpad_args])


if __name__ == "__main__":  # pragma: no cover
    from sld_workflows.cli.main import main

    sys.exit(main())
