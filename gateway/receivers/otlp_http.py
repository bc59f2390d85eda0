"""OTLP over HTTP: protobuf and JSON bodies, gzip/deflate/zstd request encodings, the Collector's
status codes. The body limit applies to the bytes read and again after decompression, so a small
compressed bomb is refused without being inflated past the limit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from google.rpc import status_pb2

from gateway.receivers.cors import CorsPolicy
from gateway.receivers.ingest import WIRE_CODES, Ingest, Outcome, Result
from gateway.receivers.otlp_config import HttpConfig
from gateway.transport.compression import BadEncoding, BodyTooLarge, decompress
from gateway.transport.http_guard import request_started
from gateway.transport.http_site import start_site
from pipelines import otlp, otlp_json
from pipelines.batch import Signal
from pipelines.errors import PermanentError

log = logging.getLogger("gateway.receiver.http")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


async def _read_body(request: web.Request, limit: int, read_timeout: float) -> bytes:
    """The whole body, refused as soon as it passes `limit`; a declared length over it is refused unread.
    With `read_timeout`, the whole request (from its first byte) must have arrived within it (TimeoutError)."""
    if read_timeout <= 0:
        return await _read_limited(request, limit)
    async with asyncio.timeout_at(request_started(request) + read_timeout):
        return await _read_limited(request, limit)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    # `content.read(n)` returns what has arrived so far, which for a large body is only a part.
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    total = 0
    while chunk := await request.content.read(limit + 1 - total):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge()
    return b"".join(chunks)


def _status_body(result: Result, content_type: str) -> bytes:
    status = status_pb2.Status(code=WIRE_CODES[result.outcome][0], message=result.message)
    if content_type == PROTOBUF:
        return bytes(status.SerializeToString())
    return otlp_json.encode(status)


class HttpServer:
    """The otlp receiver's HTTP side; another receiver's overrides `_route`."""

    name = "OTLP/HTTP"

    def __init__(self, config: HttpConfig, ingests: dict[Signal, Ingest], reuse_port: bool) -> None:
        self.config = config
        self._ingests = ingests
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        cors = config.cors
        self._cors = CorsPolicy(cors) if cors is not None and cors.allowed_origins else None
        if cors is not None and not cors.allowed_origins and cors.allowed_headers:
            log.warning("the CORS configuration specifies allowed headers but no allowed origins, and is "
                        "therefore ignored")

    def _respond(self, ingest: Ingest, result: Result, content_type: str) -> web.Response:
        headers = dict(self.config.response_headers)
        if result.outcome == "ok":
            body = result.response
            if content_type == JSON:
                body = otlp_json.encode(otlp.SHAPES[ingest.signal].response.FromString(body))
            return web.Response(body=body, status=200, content_type=content_type, headers=headers)
        if result.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(result.retry_after)))
        status = WIRE_CODES[result.outcome][1]
        ctype = content_type if content_type in (PROTOBUF, JSON) else JSON
        return web.Response(body=_status_body(result, ctype), status=status, content_type=ctype, headers=headers)

    def _route(self, ingest: Ingest) -> Any:
        limit = self.config.max_request_body_size
        read_timeout = self.config.read_timeout

        async def handle(request: web.Request) -> web.StreamResponse:
            content_type = request.content_type
            headers = {k.lower(): v for k, v in request.headers.items()}
            identity, failure = await ingest.authenticate(headers)
            if failure is not None:
                return self._respond(ingest, failure, content_type)
            if content_type not in (PROTOBUF, JSON):
                result = ingest.fail(
                    "unsupported", f"unsupported Content-Type {content_type!r} (want {PROTOBUF} or {JSON})"
                )
                return self._respond(ingest, result, JSON)
            try:
                raw = await _read_body(request, limit, read_timeout)
                body = decompress(raw, request.headers.get("Content-Encoding", ""), limit)
            except TimeoutError:
                result = ingest.fail("timeout", f"request body not received within read_timeout ({read_timeout}s)")
                response = self._respond(ingest, result, content_type)
                response.force_close()  # the rest of the body may still be on its way
                return response
            except BodyTooLarge:
                result = ingest.fail("too_large", f"request body larger than max_request_body_size ({limit} bytes)")
                return self._respond(ingest, result, content_type)
            except BadEncoding as exc:
                return self._respond(ingest, ingest.fail("invalid", str(exc)), content_type)
            multi: dict[str, tuple[str, ...]] = {}
            if ingest.include_metadata:
                for k, v in request.headers.items():
                    multi[k.lower()] = (*multi.get(k.lower(), ()), v)
            context = ingest.context(identity, multi)
            traceparent = headers.get("traceparent") if ingest.traced else None
            if content_type == JSON:
                try:
                    msg = otlp_json.decode(ingest.signal, body)
                except PermanentError as exc:
                    return self._respond(ingest, ingest.fail("invalid", str(exc)), content_type)
                result = await ingest.push(None, msg, context, traceparent)
            else:
                result = await ingest.push(body, None, context, traceparent)
            return self._respond(ingest, result, content_type)

        return handle

    @web.middleware
    async def _count_misses(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                outcome: Outcome = "not_found" if exc.status == 404 else "method_not_allowed"
                any_ingest = next(iter(self._ingests.values()))
                any_ingest.fail(outcome, exc.reason)
            raise

    @web.middleware
    async def _cors_headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Preflight answered before routing and authentication; CORS headers on every other answer."""
        assert self._cors is not None
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers=self._cors.preflight(request.headers))
        extra = self._cors.actual(request.method, request.headers)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(extra)
            raise
        response.headers.update(extra)
        return response

    async def start(self) -> None:
        middlewares = [self._count_misses] if self._cors is None else [self._cors_headers, self._count_misses]
        app = web.Application(client_max_size=self.config.max_request_body_size + 1, middlewares=middlewares)
        for signal, ingest in self._ingests.items():
            app.router.add_post(self.config.path_for(signal), self._route(ingest))
        ssl_ctx = self.config.tls.ssl_context() if self.config.tls is not None else None
        # aiohttp must not inflate bodies itself: `decompress` does, under the size limit.
        self._runner, self.port = await start_site(app, self.config.endpoint, ssl_context=ssl_ctx,
                                                   reuse_port=self._reuse_port, backlog=1024, auto_decompress=False,
                                                   limits=self.config.limits())
        log.info("%s receiver listening on %s", self.name, self.config.endpoint)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
