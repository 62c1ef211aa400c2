"""The Flask application: HTML pages and the JSON API behind each of them (GET only, read-only).

``create_app(source)`` takes a :mod:`~sld_workflows.dashboard.source` object; every request asks it
for a :class:`ReadOnlyDatabase` and reads through :class:`~sld_workflows.dashboard.queries.Queries`.

Pages (each has its JSON twin under ``/api``)::

    /campaigns              /api/campaigns
    /campaigns/<name>       /api/campaigns/<name>
    /trajectories           /api/trajectories?q=&material=&engine=&state=&campaign=&sort=&order=&page=&per_page=
    /trajectories/<id>      /api/trajectories/<id>, .../series?max_points=, .../spins, .../fireworks
    /workers                /api/workers
                            /api/source (what is read, and how old an embedded snapshot is)

Bad input never shows a stack trace: unknown ids and paths give a 404 page (JSON for ``/api``),
malformed query parameters a 400 naming the parameter. Templates are autoescaped, and the browser
code writes database values only with ``textContent``, so a name like ``<script>`` shows as text.
Plotly's JavaScript is served from the installed ``plotly`` package (``/vendor/plotly.min.js``); the
pages load nothing from outside this server (a Content-Security-Policy of ``'self'`` enforces it).
"""

from __future__ import annotations

import base64
import hmac
import math
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, render_template, request, send_file

from sld_workflows.dashboard.queries import SORT_FIELDS, STATES, Queries, SeriesCache

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
MAX_PER_PAGE = 500
MAX_POINTS = 2000


class BadParameter(ValueError):
    """A malformed query parameter (answered with 400)."""


def _int_param(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"query parameter {name!r} must be an integer, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadParameter(f"query parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


def _choice_param(name: str, default: str | None, choices: Any) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise BadParameter(f"query parameter {name!r} must be one of {sorted(choices)}, got {raw[:40]!r}")
    return raw


def _text_param(name: str, max_len: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len or any(ord(c) < 32 for c in raw):
        raise BadParameter(f"query parameter {name!r} must be printable text of at most {max_len} characters")
    return raw


def table_params() -> dict[str, Any]:
    known = {"q", "material", "engine", "state", "campaign", "arm", "sort", "order", "page", "per_page", "token"}
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise BadParameter(f"unknown query parameter {unknown[0]!r} (known: {', '.join(sorted(known - {'token'}))})")
    return {
        "q": _text_param("q"), "material": _text_param("material"), "engine": _text_param("engine"),
        "state": _choice_param("state", None, STATES), "campaign": _text_param("campaign"),
        "arm": _text_param("arm"),
        "sort": _choice_param("sort", "created", SORT_FIELDS), "order": _choice_param("order", "asc", {"asc", "desc"}),
        "page": _int_param("page", 1, 1, 10**6), "per_page": _int_param("per_page", 50, 1, MAX_PER_PAGE),
    }


def _plotly_js() -> Path:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package ({path})")
    return path


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + " UTC"


def _query_args(params: dict[str, Any], *drop: str, **override: Any) -> dict[str, Any]:
    """Non-empty table parameters without ``drop``, with ``override`` (links keep the current filters)."""
    out = {k: v for k, v in params.items() if v not in (None, "") and k not in drop}
    out.update(override)
    return out


def create_app(source: Any, token: str | None = None, basic_auth: tuple[str, str] | None = None,
               expiration_s: float = 1800.0) -> Flask:
    """The dashboard app on ``source``; ``token``/``basic_auth`` (if given) are required on every request."""
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(JSON_SORT_KEYS=False, TEMPLATES_AUTO_RELOAD=False, MAX_CONTENT_LENGTH=0)
    app.extensions["sld_source"] = source
    cache = SeriesCache()
    app.extensions["sld_series_cache"] = cache
    plotly_path = _plotly_js()
    app.jinja_env.filters.update(age=_fmt_age, num=_fmt_num, when=_fmt_time)
    app.jinja_env.globals["qargs"] = _query_args

    def queries() -> Queries:
        cache.check_generation((id(source), getattr(source, "generation", 0)))
        return Queries(source.db(), cache)

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    # ---------------------------------------------------------------- access control and headers
    @app.before_request
    def _guard() -> Response | None:
        if request.method not in ("GET", "HEAD"):
            return _error(405, f"the dashboard is read-only: {request.method} is not allowed")
        if token is None and basic_auth is None:
            return None
        if token is not None:
            given = request.args.get("token") or request.cookies.get("sld_token") or ""
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                given = header[7:]
            if hmac.compare_digest(given.encode(), token.encode()):
                request.environ["sld.set_token_cookie"] = "token" in request.args
                return None
        if basic_auth is not None:
            header = request.headers.get("Authorization", "")
            if header.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, password = "", ""
                if hmac.compare_digest(user.encode(), basic_auth[0].encode()) and \
                        hmac.compare_digest(password.encode(), basic_auth[1].encode()):
                    return None
        resp = _error(401, "authentication required")
        if basic_auth is not None:
            resp.headers["WWW-Authenticate"] = 'Basic realm="sld dashboard"'
        return resp

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        if not request.path.startswith(("/static/", "/vendor/")):
            resp.headers["Cache-Control"] = "no-store"
        if request.environ.get("sld.set_token_cookie") and token is not None:
            resp.set_cookie("sld_token", token, httponly=True, samesite="Strict")
        return resp

    # ---------------------------------------------------------------- errors
    def _error(status: int, message: str) -> Response:
        if wants_json():
            resp = jsonify({"error": message, "status": status})
        else:
            resp = Response(render_template("error.html", status=status, message=message, source=_source_info()),
                            mimetype="text/html")
        resp.status_code = status
        return resp

    @app.errorhandler(BadParameter)
    def _bad(exc: BadParameter) -> Response:
        return _error(400, str(exc))

    @app.errorhandler(404)
    def _not_found(exc: Any) -> Response:
        return _error(404, getattr(exc, "description", None) or "not found")

    @app.errorhandler(405)
    def _not_allowed(exc: Any) -> Response:
        return _error(405, "the dashboard is read-only: only GET is allowed")

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> Response:
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return _error(exc.code or 500, exc.description or exc.name)
        app.logger.exception("dashboard request failed")  # the trace goes to the server log only
        return _error(500, f"internal error ({type(exc).__name__}); see the dashboard's log")

    def _source_info() -> dict[str, Any]:
        try:
            return source.info()
        except Exception:  # noqa: BLE001 - the error page must render even if the source is broken
            return {"description": "unavailable"}

    def page(template: str, **context: Any) -> str:
        return render_template(template, source=_source_info(), **context)

    # ---------------------------------------------------------------- static: plotly from its package
    @app.get("/vendor/plotly.min.js")
    def plotly_js() -> Response:
        return send_file(plotly_path, mimetype="text/javascript", max_age=86400)

    # ---------------------------------------------------------------- pages
    @app.get("/")
    def home() -> str:
        q = queries()
        return page("home.html", counts=q.counts(), campaigns=q.campaigns(), w=q.workers(expiration_s))

    @app.get("/campaigns")
    def campaigns_page() -> str:
        return page("campaigns.html", campaigns=queries().campaigns())

    @app.get("/campaigns/<name>")
    def campaign_page(name: str) -> str:
        c = queries().campaign(name)
        if c is None:
            abort(404, f"unknown campaign {name!r}")
        return page("campaign.html", c=c)

    @app.get("/trajectories")
    def trajectories_page() -> str:
        params = table_params()
        result = queries().trajectories(params)
        if params["page"] > result["pages"] and result["total"]:
            raise BadParameter(f"query parameter 'page' must be at most {result['pages']}, got {params['page']}")
        return page("trajectories.html", t=result, params=params, sort_fields=SORT_FIELDS)

    @app.get("/trajectories/<trajectory_id>")
    def trajectory_page(trajectory_id: str) -> str:
        q = queries()
        doc = q.trajectory(trajectory_id)
        if doc is None:
            abort(404, f"unknown trajectory id {trajectory_id!r}")
        return page("trajectory.html", t=doc, fw=q.fireworks(trajectory_id, doc.get("root_fw_id")))

    @app.get("/workers")
    def workers_page() -> str:
        return page("workers.html", w=queries().workers(expiration_s))

    # ---------------------------------------------------------------- JSON API
    @app.get("/api/source")
    def api_source() -> Response:
        source.refresh()
        return jsonify(_source_info())

    @app.get("/api/campaigns")
    def api_campaigns() -> Response:
        return jsonify({"campaigns": queries().campaigns(), "source": _source_info()})

    @app.get("/api/campaigns/<name>")
    def api_campaign(name: str) -> Response:
        c = queries().campaign(name)
        if c is None:
            abort(404, f"unknown campaign {name!r}")
        return jsonify(c)

    @app.get("/api/trajectories")
    def api_trajectories() -> Response:
        params = table_params()
        return jsonify(queries().trajectories(params))

    @app.get("/api/trajectories/<trajectory_id>")
    def api_trajectory(trajectory_id: str) -> Response:
        q = queries()
        doc = q.trajectory(trajectory_id)
        if doc is None:
            abort(404, f"unknown trajectory id {trajectory_id!r}")
        return jsonify(doc)

    @app.get("/api/trajectories/<trajectory_id>/series")
    def api_series(trajectory_id: str) -> Response:
        max_points = _int_param("max_points", 150, 2, MAX_POINTS)
        try:
            return jsonify(queries().series(trajectory_id, max_points))
        except KeyError:
            abort(404, f"unknown trajectory id {trajectory_id!r}")

    @app.get("/api/trajectories/<trajectory_id>/spins")
    def api_spins(trajectory_id: str) -> Response:
        q = queries()
        if q.trajectory(trajectory_id) is None:
            abort(404, f"unknown trajectory id {trajectory_id!r}")
        spins = q.spins(trajectory_id)
        if spins is None:
            abort(404, f"trajectory {trajectory_id!r} has no stored state yet")
        return jsonify(spins)

    @app.get("/api/trajectories/<trajectory_id>/fireworks")
    def api_fireworks(trajectory_id: str) -> Response:
        q = queries()
        doc = q.trajectory(trajectory_id)
        if doc is None:
            abort(404, f"unknown trajectory id {trajectory_id!r}")
        return jsonify(q.fireworks(trajectory_id, doc.get("root_fw_id")))

    @app.get("/api/workers")
    def api_workers() -> Response:
        return jsonify(queries().workers(expiration_s))

    @app.get("/api/ping")
    def api_ping() -> Response:
        """A request that reads nothing: the benchmark's trivial peer."""
        return jsonify({"ok": True})

    return app
