"""`create_app`: the quart-trio application and its routes.

Routes: `/` (the dashboard), `/static/*` (its files), `/v1/snapshot`,
`/v1/zstd-dictionary/<id>`, `/healthz`, `/readyz` and `/metrics`. Each handler reads the
shared `ServerContext` synchronously and answers; errors are JSON (`{"error": ...,
"status": ...}`) with the status the protocol's errors carry, and a bad request is
counted. Must not stream (the server's own sockets serve `/v1/sse` and `/v1/ws`) and
must not change the hub's or the fanout's state.
"""

from __future__ import annotations

import hashlib
import json

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ticker.app.dashboard import (
    STATIC_FOLDER,
    STATIC_PACKAGE,
    content_security_policy,
    page_html,
    stream_origin,
)
from ticker.app.health import readiness
from ticker.app.metrics import metrics_registry, render_metrics
from ticker.app.snapshot import parse_topics_query, render_snapshot
from ticker.auth.sources import QUERY_PARAMETER
from ticker.core.compression import DICTIONARY_ID, dictionary_bytes
from ticker.errors import ProtocolError
from ticker.server.context import ServerContext
from ticker.server.limits import cors_headers, shares_with
from ticker.server.stream_auth import OPEN, narrow_or_refuse

JSON = "application/json"
MAX_REQUEST_BODY_BYTES = 64 * 1024
"""No route takes a body; anything larger is refused before it is read."""
DICTIONARY_PATH = "/v1/zstd-dictionary/"
IMMUTABLE = "public, max-age=31536000, immutable"
"""A dictionary id names its bytes for good: a new dictionary gets a new id."""


def _json_response(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body, separators=(",", ":")), status, content_type=JSON)
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(context: ServerContext) -> QuartTrio:
    """The application serving one server's dashboard, snapshot, health and metrics.

    Args:
        context: the server's shared state; read at request time, never modified.
    """
    app = QuartTrio(STATIC_PACKAGE, static_folder=STATIC_FOLDER, static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BODY_BYTES
    # The page's files are small: browsers revalidate them (ETag) instead of caching them
    # for Quart's default 12 h, so a new release never runs with an old script.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None
    registry = metrics_registry(context)
    page = page_html()

    @app.get("/")
    async def dashboard() -> Response:
        extra = stream_origin(request.args.get("stream"), request.host)
        response = Response(page, 200, content_type="text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = content_security_policy(extra)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/v1/snapshot")
    async def snapshot() -> Response:
        topics = request.args.getlist("topics")
        gate = context.auth
        principal = OPEN if gate is None else gate.authenticate(
            request.headers.get("Authorization", ""),
            request.args.get(QUERY_PARAMETER),
            request.headers.get("Cookie", ""),
        )  # fmt: skip
        # Validate and build without awaiting: the document reflects one position.
        patterns = parse_topics_query(
            topics[-1] if topics else None,
            context.known_symbols,
            context.config.max_subscriptions,
        )
        narrowed = narrow_or_refuse(context, principal, patterns)
        body = render_snapshot(context.hub, narrowed.allowed, narrowed.forbidden)
        response = Response(body, 200, content_type=JSON)
        response.headers["Cache-Control"] = "no-store"
        return response

    dictionary = dictionary_bytes()
    dictionary_etag = f'"{hashlib.sha256(dictionary).hexdigest()[:32]}"'

    @app.get("/v1/zstd-dictionary/<int:dictionary_id>")
    async def zstd_dictionary(dictionary_id: int) -> Response:
        # The dictionary `ticker.v1.zstd` frames are compressed with, for clients that
        # do not ship it (a browser); its id is in the hello and in every frame.
        if dictionary_id != DICTIONARY_ID:
            return _json_response(
                {
                    "error": f"no zstd dictionary {dictionary_id}; ours is {DICTIONARY_ID}",
                    "status": 404,
                },
                404,
            )
        if dictionary_etag in request.headers.get("If-None-Match", ""):
            response = Response(b"", 304)
        else:
            response = Response(dictionary, 200, content_type="application/octet-stream")
        response.headers["ETag"] = dictionary_etag
        response.headers["Cache-Control"] = IMMUTABLE
        return response

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json_response({"alive": True})

    @app.get("/readyz")
    async def readyz() -> Response:
        state = readiness(context)
        body: dict[str, object] = {"ready": state.ready}
        if not state.ready:
            body["reason"] = state.reason
        if context.cluster is not None:
            body["role"] = context.cluster.role
            body["leading"] = context.cluster.leading
            body["position"] = str(context.hub.position)
        return _json_response(body, 200 if state.ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = render_metrics(registry, request.headers.get("Accept"))
        response = Response(body, 200, content_type=content_type)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(ProtocolError)
    async def protocol_error(error: ProtocolError) -> Response:
        context.stats.bad_requests += 1
        response = _json_response(
            {"error": str(error), "status": error.http_status}, error.http_status
        )
        if error.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="ticker"'
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = _json_response({"error": error.description, "status": status}, status)
        if error.code == 405:
            response.headers["Allow"] = "GET, HEAD"
        return response

    @app.after_request
    async def common_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path == "/v1/snapshot" or request.path.startswith(DICTIONARY_PATH):
            # Pages of `cors_origins` may read these (a preflight included), as the stream.
            origin = request.headers.get("Origin", "")
            allowed = context.config.cors_origins
            if origin and not shares_with(origin, allowed):
                context.stats.limited["cors_origin"] += 1
            for name, value in cors_headers(origin, allowed, preflight=request.method == "OPTIONS"):
                response.headers[name] = value
        return response

    return app
