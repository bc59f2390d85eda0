"""OTLP over HTTP: protobuf and JSON bodies, gzip/deflate/zstd request encodings, the Collector's
status codes. The body limit applies to the bytes read and again after decompression, so a small
compressed bomb is refused without being inflated past the limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from google.rpc import status_pb2
from multidict import CIMultiDict

from gateway.auth import Identity
from gateway.receivers.cors import CorsPolicy
from gateway.receivers.ingest import WIRE_CODES, Ingest, Outcome, Result
from gateway.receivers.otlp_config import HttpConfig
from gateway.transport.compression import DECODED, BadEncoding, BodyTooLarge, decompress
from gateway.transport.http_fast import Answer, FastLane, FastRequest, Route
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


def _mimetype(content_type: str) -> str:
    """As aiohttp's `request.content_type` for the two types the receiver takes."""
    return content_type.partition(";")[0].strip().lower()


def _response(answer: Answer) -> web.Response:
    return web.Response(body=answer.body, status=answer.status, headers=CIMultiDict(answer.headers))


def _status_body(result: Result, content_type: str) -> bytes:
    status = status_pb2.Status(code=WIRE_CODES[result.outcome][0], message=result.message)
    if content_type == PROTOBUF:
        return bytes(status.SerializeToString())
    return otlp_json.encode(status)


_SET_BY_ANSWER = frozenset({"content-type", "retry-after"})
# The largest body the fast lane takes. A larger one comes over several reads: the lane would take it only
# once whole, out of the bytes it held meanwhile, copying it twice more than aiohttp's streaming reader,
# which is cheaper there.
FAST_BODY_MAX = 64 * 1024


class HttpServer:
    """The otlp receiver's HTTP side; another receiver's overrides `_route`."""

    name = "OTLP/HTTP"

    def __init__(self, config: HttpConfig, ingests: dict[Signal, Ingest], reuse_port: bool, *,
                 fast: bool = True) -> None:
        self.config = config
        self._fast = fast  # False only in tests: every request through aiohttp, to compare the answers
        self._ingests = ingests
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        cors = config.cors
        self._cors = CorsPolicy(cors) if cors is not None and cors.allowed_origins else None
        if cors is not None and not cors.allowed_origins and cors.allowed_headers:
            log.warning("the CORS configuration specifies allowed headers but no allowed origins, and is "
                        "therefore ignored")

    def _reply(self, ingest: Ingest, result: Result, content_type: str) -> Answer:
        # The configured headers, but those the answer sets itself (as in the Collector, whose handler
        # sets Content-Type and Retry-After over them): never the same name twice.
        headers = {k: v for k, v in self.config.response_headers.items() if k.lower() not in _SET_BY_ANSWER}
        if result.outcome == "ok":
            body = result.response
            if content_type == JSON:
                body = otlp_json.encode(otlp.SHAPES[ingest.signal].response.FromString(body))
            headers["Content-Type"] = content_type
            return Answer(200, tuple(headers.items()), body)
        if result.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(result.retry_after)))
        ctype = content_type if content_type in (PROTOBUF, JSON) else JSON
        headers["Content-Type"] = ctype
        return Answer(WIRE_CODES[result.outcome][1], tuple(headers.items()), _status_body(result, ctype))

    def _respond(self, ingest: Ingest, result: Result, content_type: str) -> web.Response:
        return _response(self._reply(ingest, result, content_type))

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
            except TimeoutError:
                result = ingest.fail("timeout", f"request body not received within read_timeout ({read_timeout}s)")
                response = self._respond(ingest, result, content_type)
                response.force_close()  # the rest of the body may still be on its way
                return response
            except BodyTooLarge:
                return self._respond(ingest, self._too_large(ingest), content_type)
            encoding = request.headers.get("Content-Encoding", "")
            return _response(await self._ingest(ingest, identity, content_type, raw, encoding, headers,
                                                request.headers.items()))

        return handle

    def _too_large(self, ingest: Ingest) -> Result:
        limit = self.config.max_request_body_size
        return ingest.fail("too_large", f"request body larger than max_request_body_size ({limit} bytes)")

    async def _ingest(self, ingest: Ingest, identity: Identity, content_type: str, raw: bytes, encoding: str,
                      headers: Mapping[str, str], items: Iterable[tuple[str, str]]) -> Answer:
        """A request past authentication, its body read: inflated, decoded, pushed; both lanes' way on."""
        try:
            body = decompress(raw, encoding, self.config.max_request_body_size)
        except BodyTooLarge:
            return self._reply(ingest, self._too_large(ingest), content_type)
        except BadEncoding as exc:
            return self._reply(ingest, ingest.fail("invalid", str(exc)), content_type)
        multi: dict[str, tuple[str, ...]] = {}
        if ingest.include_metadata:
            for k, v in items:
                multi[k.lower()] = (*multi.get(k.lower(), ()), v)
        context = ingest.context(identity, multi)
        traceparent = headers.get("traceparent") if ingest.traced else None
        if content_type == JSON:
            try:
                msg = otlp_json.decode(ingest.signal, body)
            except PermanentError as exc:
                return self._reply(ingest, ingest.fail("invalid", str(exc)), content_type)
            result = await ingest.push(None, msg, context, traceparent)
        else:
            result = await ingest.push(body, None, context, traceparent)
        return self._reply(ingest, result, content_type)

    def _fast_lane(self) -> FastLane | None:
        """The requests answered without aiohttp: `_fast_route`'s, with the heads `_fast_accepts` takes."""
        if not self._fast:
            return None
        routes = {self.config.path_for(signal): self._fast_route(ingest) for signal, ingest in self._ingests.items()}
        return FastLane(routes, min(self.config.max_request_body_size, FAST_BODY_MAX), self._fast_accepts)

    def _fast_accepts(self, headers: Mapping[str, str]) -> bool:
        content_type = headers.get("content-type")
        # With CORS, a request from a browser (Origin) stays with the middleware.
        return content_type is not None and _mimetype(content_type) in (PROTOBUF, JSON) \
            and headers.get("content-encoding", "").strip().lower() in DECODED and "origin" not in headers

    def _fast_route(self, ingest: Ingest) -> Route:
        vary = tuple(self._cors.actual("POST", {}).items()) if self._cors is not None else ()

        async def handle(request: FastRequest) -> Answer:
            headers = request.headers
            content_type = _mimetype(headers["content-type"])
            identity, failure = await ingest.authenticate(headers)
            if failure is not None:
                answer = self._reply(ingest, failure, content_type)
            else:
                answer = await self._ingest(ingest, identity, content_type, request.body,
                                            headers.get("content-encoding", ""), headers, headers.items())
            return Answer(answer.status, answer.headers + vary, answer.body) if vary else answer

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
                                                   limits=self.config.limits(), fast=self._fast_lane())
        log.info("%s receiver listening on %s", self.name, self.config.endpoint)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
