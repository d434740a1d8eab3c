"""The live dashboard: one page (``page.py``: HTML, CSS and script inline, nothing fetched from elsewhere)
and the JSON API it polls.

Mounted at ``/dashboard`` by the server (with live counters of the running process) and by ``berth ui``
(standalone, over the monitoring directory). The page asks ``/dashboard/api/overview`` and
``/dashboard/api/report`` every few seconds and redraws; plots arrive as inline SVG drawn on the server.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from starlette.responses import HTMLResponse, JSONResponse, Response

from berth.errors import render_error
from berth.monitoring.store import Store, parse_duration

CACHE_SECONDS = 3.0
CACHE_ENTRIES = 64
LiveStatus = Callable[[], dict[str, Any]]


def page_html() -> str:
    from berth.monitoring.dashboard.page import PAGE

    return PAGE


class ReportCache:
    """Reports by (model, window), recomputed at most every ``CACHE_SECONDS``: several open dashboards cost
    one computation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def get(self, model: str, window: str) -> dict[str, Any]:
        key = (model, window)
        with self._lock:
            cached = self._entries.get(key)
            if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
            data = dashboard_report(self.store, model, window)
            if len(self._entries) >= CACHE_ENTRIES:  # keys come from clients: keep the newest few only
                self._entries.pop(min(self._entries, key=lambda k: self._entries[k][0]))
            self._entries[key] = (time.monotonic(), data)
            return data


def dashboard_report(store: Store, model: str, window: str) -> dict[str, Any]:
    from berth.monitoring import plots
    from berth.monitoring.report import build_report, drift_bars, strip_plots

    since = dt.datetime.now(dt.UTC) - parse_duration(window)
    if model not in store.models():  # served, but nothing flushed yet
        return {"report": {"model": model, "rows": 0, "summary": ["No predictions logged yet."], "drift": None,
                           "performance": {}, "quality": None, "traffic": None}, "plots": {"features": {}}}
    report = build_report(model, since=since, store=store)
    svgs: dict[str, Any] = {"features": {}}
    if report.get("drift"):
        svgs["drift"] = plots.drift_scores(drift_bars(report))
        for feature in [*report["drift"]["features"], report.get("prediction_drift") or {}]:
            if feature.get("plot"):
                svgs["features"][feature["feature"]] = plots.distribution(feature["feature"], feature["plot"])
    if report.get("timeline"):
        svgs["timeline"] = plots.drift_timeline(report["timeline"])
    if report.get("traffic"):
        svgs["traffic"] = plots.traffic(report["traffic"])
    if (report.get("performance") or {}).get("overall"):
        svgs["performance"] = plots.performance(report["performance"])
    if report.get("comparison"):
        from berth.monitoring.compare import render_section

        svgs["comparison"] = render_section(report["comparison"])
    return {"report": strip_plots(report), "plots": svgs}


def create_router(store: Store, live: LiveStatus | None = None) -> APIRouter:
    """Routes of the dashboard over ``store``; ``live`` adds the running server's own status."""
    router = APIRouter(tags=["monitoring"])
    cache = ReportCache(store)

    @router.get("/dashboard", response_class=HTMLResponse, summary="Live monitoring dashboard")
    def dashboard() -> Response:
        return HTMLResponse(page_html())

    @router.get("/dashboard/api/overview", summary="Models, versions and live status")
    def overview() -> Response:
        status = live() if live else {}
        served = status.get("models", {})
        names = sorted(set(store.models()) | set(served))
        models = [{"name": name, "versions": list(store.versions(name)) if name in store.models() else [],
                   "live": served.get(name)} for name in names]
        return JSONResponse({"models": models, "server": status.get("server"), "store": str(store.root),
                             "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})

    @router.get("/dashboard/api/report", summary="Drift, quality, performance and traffic of one model",
                responses={400: {"description": "Invalid window or model", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"error": {"type": "object"}}}}}}})
    def report(model: str, window: str = Query("1h", description="e.g. 15m, 24h, 7d")) -> Response:
        try:
            return JSONResponse(cache.get(model, window))
        except Exception as exc:
            status, body = render_error(exc)
            return JSONResponse(body, status_code=status)

    return router


def create_app(store: Store | None = None) -> FastAPI:
    """The standalone dashboard of ``berth ui``."""
    app = FastAPI(title="berth monitoring", docs_url=None, redoc_url=None)
    app.include_router(create_router(store or Store()))

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return Response(status_code=307, headers={"location": "/dashboard"})

    return app
