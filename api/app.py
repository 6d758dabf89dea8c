"""The FastAPI application: wiring of routes, error bodies, metrics, the console and the live feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from liftwatch import db, i18n
from liftwatch.api import auth
from liftwatch.api.errors import ApiError
from liftwatch.api.feed import IncidentFeed, StreamSlots
from liftwatch.api.metrics import ApiMetrics
from liftwatch.config import ApiSettings
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_STATIC = resources.files("liftwatch.api").joinpath("static")
# The console loads nothing but its own files (the browser enforces "no CDN"), cannot be framed
# by another site, and sends no referrer.
_CONSOLE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
DB_WAIT_S = 5.0
# Largest request body accepted: the biggest legitimate one (an elevator record) is under 2 KiB.
MAX_BODY_BYTES = 64 * 1024


@dataclass
class ApiState:
    """What the routes need, kept on ``app.state.api``."""

    settings: ApiSettings
    pool: AsyncConnectionPool[Any]
    feed: IncidentFeed | None
    metrics: ApiMetrics
    registry: CollectorRegistry
    streams: StreamSlots


def state(request: Request) -> ApiState:
    """The application's state (for routes)."""
    value: ApiState = request.app.state.api
    return value


def language(request: Request) -> i18n.Language:
    """The caller's language from ``Accept-Language`` (site default otherwise)."""
    return i18n.negotiate(request.headers.get("accept-language"), request.app.state.api.settings.default_language)


def _error(request: Request, http_status: int, code: str, /, details: Any = None, **params: object) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": i18n.t(f"errors.{code}", language(request), **params)}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=http_status)


def _problem(item: dict[str, Any], lang: i18n.Language) -> str:
    """One field's problem in the caller's language (pydantic's English text for rare kinds)."""
    key = f"errors.validation.{item.get('type')}"
    if not i18n.has(key, lang):
        return str(item.get("msg", ""))
    context = {name: str(value) for name, value in (item.get("ctx") or {}).items()}
    return i18n.t(key, lang, **context)


def _invalid(request: Request, items: list[Any]) -> JSONResponse:
    """422 ``validation_error``: each field's problem for programs, the first three in the caller's language."""
    request.app.state.api.metrics.rejected.labels(reason="validation").inc()
    items = items[:20]
    details = [
        {"loc": [str(part) for part in item.get("loc", ())], "type": item.get("type"), "msg": item.get("msg")}
        for item in items
    ]
    lang = language(request)
    summary = "; ".join(
        f"{'.'.join(detail['loc'])}: {_problem(item, lang)}"
        for detail, item in zip(details[:3], items[:3], strict=True)
    )
    return _error(request, 422, "validation_error", details, detail=summary)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        if error.status in (400, 422, 429):
            request.app.state.api.metrics.rejected.labels(reason=error.reason).inc()
        response = _error(request, error.status, error.reason, **error.params)
        response.headers.update(error.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return _invalid(request, list(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 401: "unauthenticated"}.get(
            error.status_code, "validation_error"
        )
        return _error(request, error.status_code, code, detail=str(error.detail))

    @app.exception_handler(PoolTimeout)
    async def pool_timeout(request: Request, error: PoolTimeout) -> JSONResponse:
        return _error(request, 503, "unavailable")

    @app.exception_handler(psycopg.OperationalError)
    async def db_down(request: Request, error: psycopg.OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", error)
        return _error(request, 503, "unavailable")

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(request, 500, "internal")


class _BodyLimitMiddleware:
    """Refuses request bodies over ``MAX_BODY_BYTES`` (413), declared or streamed, before they are parsed."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"content-length", b"")
        declared = int(header) if header.isdigit() else 0
        received = 0

        async def guarded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            if max(declared, received) > MAX_BODY_BYTES:
                self.metrics.rejected.labels(reason="too_large").inc()
                # FastAPI re-raises HTTPExceptions from body reading: answered by the error handler.
                raise StarletteHTTPException(413)
            return message

        await self.app(scope, guarded, send)


class _UrlTextMiddleware:
    """Refuses a NUL character in the path or any query parameter (422) before a route sees it.

    PostgreSQL text cannot hold NUL, so such a value would fail in the database (500) on any route
    that passes URL text to SQL; checking here covers every route, present and future, at once.
    Body text is checked by the models (``models.Input``, the base of every body).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problems = [
                {"loc": ("query", name), "type": "nul_character", "msg": "must not contain NUL characters"}
                for name, value in QueryParams(scope["query_string"]).multi_items()
                if "\x00" in name or "\x00" in value
            ]
            if "\x00" in scope["path"]:
                problems.insert(
                    0, {"loc": ("path",), "type": "nul_character", "msg": "must not contain NUL characters"}
                )
            if problems:
                await _invalid(Request(scope), problems)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _MetricsMiddleware:
    """Counts requests and times them by route template (not by raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                if path != "/api/v1/incidents/stream":
                    self.metrics.latency.labels(scope["method"], path).observe(time.perf_counter() - started)
                self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


def create_app(settings: ApiSettings, *, registry: CollectorRegistry | None = None) -> FastAPI:
    """The API application; opens its database pool and starts the live feed on startup."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ApiMetrics.create(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.async_pool(
            settings.require_database_url(), min_size=1, max_size=settings.api_db_pool_size, name="liftwatch-api"
        )
        # A request waits this long for a connection, then answers 503 (psycopg_pool's default is 30 s:
        # a console would hang that long while PostgreSQL is away).
        pool.timeout = DB_WAIT_S
        feed = IncidentFeed(settings, metrics) if settings.kafka_bootstrap else None
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop)) if feed is not None else None
        admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        streams = StreamSlots(settings.sse_streams_per_token, settings.sse_streams_max)
        app.state.api = ApiState(settings, pool, feed, metrics, registry, streams)
        app.state.tokens = auth.TokenStore(pool, admin)
        app.state.metrics = metrics
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await pool.close()

    app = FastAPI(
        title="liftwatch",
        version="1",
        summary="Elevator remote monitoring: registry, incidents, live feed, telemetry.",
        lifespan=lifespan,
        docs_url=None,  # served below from local files: FastAPI's default page loads Swagger UI from a CDN
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.add_middleware(_BodyLimitMiddleware, metrics=metrics)
    app.add_middleware(_UrlTextMiddleware)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    from liftwatch.api import alarm_load, catalog, centre, fleet, history, incidents, ops, orders, suppression
    from liftwatch.api import registry as registry_routes
    from liftwatch.reports import api as statistics

    app.include_router(ops.router)
    app.include_router(catalog.router)
    app.include_router(centre.router)  # before incidents: its /{id}/{action} would take /{id}/comments
    app.include_router(centre.groups)
    app.include_router(incidents.router)
    app.include_router(registry_routes.router)
    app.include_router(suppression.router)
    app.include_router(alarm_load.router)
    app.include_router(fleet.router)
    app.include_router(history.router)
    app.include_router(orders.router)
    app.include_router(statistics.build_router())

    static_dir = str(_STATIC)
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    _install_offline_docs(app)

    # The page is static but for the site's default language (used when the browser prefers neither).
    page = (
        _STATIC.joinpath("index.html")
        .read_text(encoding="utf-8")
        .replace('<html lang="zh-CN">', f'<html lang="zh-CN" data-default-lang="{settings.default_language}">', 1)
    )

    @app.get("/", include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(page, headers=_CONSOLE_HEADERS)

    return app


def _install_offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI from the ``fastapi-offline`` package: works on a site without internet."""
    assets = str(resources.files("fastapi_offline").joinpath("static"))
    app.mount("/static-docs", StaticFiles(directory=assets), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="liftwatch API",
            swagger_js_url="/static-docs/swagger-ui-bundle.js",
            swagger_css_url="/static-docs/swagger-ui.css",
            swagger_favicon_url="/static-docs/favicon.png",
        )
