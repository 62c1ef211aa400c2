"""``sld dashboard``: serve the read-only web dashboard of a project's store."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard", help="serve the read-only web dashboard (campaigns, trajectories, workers)",
        description="Serve a read-only web dashboard of the store. On the embedded store it reads the last "
                    "saved file without taking its lock (a worker may own it) and shows how old it is; on a "
                    "server database (-l) it shows live data.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-l", "--launchpad", help="FireWorks launchpad.yaml of a server database (live data)")
    where.add_argument("--project", help="project folder of the embedded store (default ./sld_project)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --token or --basic-auth)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.add_argument("--token", default=os.environ.get("SLD_DASHBOARD_TOKEN") or None,
                   help="access token required on every request (?token=..., a cookie, or 'Authorization: "
                        "Bearer ...'); default $SLD_DASHBOARD_TOKEN")
    p.add_argument("--basic-auth", default=os.environ.get("SLD_DASHBOARD_AUTH") or None, metavar="USER:PASSWORD",
                   help="HTTP basic-auth credentials required on every request; default $SLD_DASHBOARD_AUTH")
    p.add_argument("--expiration", type=float, default=1800.0,
                   help="seconds without heartbeat after which a running launch is shown as lost (default 1800)")
    p.set_defaults(func=run_dashboard)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(host: str, token: str | None, basic_auth: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """Validate the access options; a non-loopback address needs a token or credentials."""
    creds = None
    if basic_auth:
        user, sep, password = basic_auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("--basic-auth must be USER:PASSWORD with both parts non-empty")
        creds = (user, password)
    if token is not None and len(token) < 16:
        raise ValueError("--token must be at least 16 characters (e.g. `python -c 'import secrets; "
                         "print(secrets.token_urlsafe())'`)")
    if not is_loopback(host) and token is None and creds is None:
        raise ValueError(f"refusing to serve on {host}, which is not a loopback address, without an access token "
                         "(--token or $SLD_DASHBOARD_TOKEN) or basic-auth credentials (--basic-auth USER:PASSWORD)")
    return token or None, creds


def open_source(launchpad: str | None, project: str | None):
    """The dashboard's data: a launchpad file's database; else the project's local server (started if
    it is not running: starting it writes nothing to the database); else the embedded store's last
    saved file, read without its lock."""
    from sld_workflows.dashboard.source import ServerSource, SnapshotSource, SourceError
    from sld_workflows.store.session import choose_backend, default_store_file, write_local_launchpad_file
    from sld_workflows.store.trajectories import StoreError

    if launchpad:
        return ServerSource(launchpad)
    try:
        backend, directory = choose_backend(project, create=False, embedded=None)
    except StoreError as exc:
        raise SourceError(str(exc)) from None
    if backend == "server":
        from sld_workflows.store.server import LocalServer

        try:
            record = LocalServer(directory).ensure_running()
        except StoreError as exc:
            raise SourceError(str(exc)) from None
        return ServerSource(write_local_launchpad_file(directory, record.host, record.port))
    return SnapshotSource(default_store_file(project))


def run_dashboard(args: argparse.Namespace) -> int:
    from sld_workflows.dashboard import create_app
    from sld_workflows.dashboard.source import SourceError

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    token, creds = check_access(args.host, args.token, args.basic_auth)
    try:
        source = open_source(args.launchpad, args.project)
    except SourceError as exc:
        raise ValueError(str(exc)) from None
    app = create_app(source, token=token, basic_auth=creds, expiration_s=args.expiration)
    print(f"sld dashboard on http://{args.host}:{args.port}/ reading {source.description}", file=sys.stderr)
    try:
        from werkzeug.serving import run_simple

        run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        source.close()
    return 0
