"""The `zipkin` receiver: Zipkin spans over HTTP (default `localhost:9411`), translated to OTLP as the
Collector's `zipkin` receiver does (`pipelines/zipkin`).

Like the Collector it answers on any path: one containing `api/v1/spans` takes v1 JSON, any other v2
JSON, or v2 protobuf when the Content-Type is `application/x-protobuf`. A request is answered 202 once
every pipeline holds it, 400 with the reason when it does not decode (or the pipelines refuse it for
good), 500 when they refuse it for now. Bodies may be gzip, deflate or zstd encoded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from gateway.auth import ANONYMOUS
from gateway.component import Consumer, ReceiverFactory, Settings
from gateway.receivers.ingest import Ingest, Result
from gateway.receivers.otlp_http import _read_body
from gateway.transport.compression import BadEncoding, BodyTooLarge, decompress
from gateway.transport.http_guard import ConnectionLimits
from gateway.transport.http_site import start_site
from gateway.transport.tls import TLSServerConfig
from pipelines.batch import Signal
from pipelines.config_types import unsupported
from pipelines.errors import PermanentError
from pipelines.zipkin import model, v1_json, v2_json, v2_proto

log = logging.getLogger("gateway.receiver.zipkin")

Format = Literal["http_v1_json", "http_v1_thrift", "http_v2_json", "http_v2_proto"]
# Our guard on connections (the Collector's zipkin server sets none of these timeouts).
LIMITS = ConnectionLimits(header_timeout=60.0, read_timeout=60.0, write_timeout=30.0, idle_timeout=60.0,
                          max_connections=4096)
_NOT_SUPPORTED = "not supported by the gateway's zipkin receiver"


# Bodies up to this size decode on the event loop (a few milliseconds at most); bigger ones in a thread.
_DECODE_INLINE = 256 * 1024


@dataclass(frozen=True)
class Config:
    endpoint: str = "localhost:9411"
    parse_string_tags: bool = False
    tls: TLSServerConfig | None = None
    max_request_body_size: int = 20 * 1024 * 1024
    transport: str = unsupported("the zipkin receiver listens on tcp", default="tcp")
    include_metadata: bool = unsupported("request headers are not kept as metadata", default=False)
    auth: Any = unsupported("the zipkin receiver takes no authenticator")
    cors: Any = unsupported("the zipkin receiver answers no CORS preflight")
    response_headers: Any = unsupported(_NOT_SUPPORTED)
    compression_algorithms: Any = unsupported("the accepted request encodings are fixed: gzip, deflate, zstd")
    middlewares: Any = unsupported("the gateway has no middleware extensions")
    include_tls_metadata: bool = unsupported(_NOT_SUPPORTED, default=False)
    keep_alives_enabled: Any = unsupported(_NOT_SUPPORTED)
    read_timeout: Any = unsupported("the gateway's own connection limits apply (60s to read a request)")
    read_header_timeout: Any = unsupported("the gateway's own connection limits apply (60s for the headers)")
    write_timeout: Any = unsupported("the gateway's own connection limits apply (30s to answer)")
    idle_timeout: Any = unsupported("the gateway's own connection limits apply (60s idle)")

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        if self.max_request_body_size <= 0:
            errors.append("max_request_body_size must be positive")
        return errors


def _format(request: web.Request) -> Format:
    protobuf = request.headers.get("Content-Type", "") == "application/x-protobuf"
    if "api/v1/spans" in request.path:
        return "http_v1_thrift" if request.headers.get("Content-Type", "") == "application/x-thrift" \
            else "http_v1_json"
    return "http_v2_proto" if protobuf else "http_v2_json"


def translate(fmt: Format, body: bytes, parse_string_tags: bool) -> Any:
    """The OTLP request for a body of `fmt`; PermanentError when it does not decode."""
    if fmt == "http_v1_json":
        return v1_json.decode(body, parse_string_tags)
    if fmt == "http_v1_thrift":
        raise PermanentError("zipkin v1 thrift (application/x-thrift) is not supported by this gateway; "
                             "send v1 JSON or v2")
    spans = v2_proto.decode(body) if fmt == "http_v2_proto" else v2_json.decode(body)
    return model.to_request(spans, parse_string_tags)


class ZipkinReceiver:
    def __init__(self, settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._reuse_port = settings.reuse_port
        self._ingests: dict[Format, Ingest] = {
            fmt: Ingest(settings.id, fmt, "traces", consumers["traces"], settings.telemetry, None, False)
            for fmt in ("http_v1_json", "http_v1_thrift", "http_v2_json", "http_v2_proto")
        }
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fmt = _format(request)
        ingest = self._ingests[fmt]
        limit = self.config.max_request_body_size
        try:
            raw = await _read_body(request, limit, LIMITS.read_timeout)
            body = decompress(raw, request.headers.get("Content-Encoding", ""), limit)
        except TimeoutError:
            response = _answer(ingest.fail("timeout", f"request body not received within {LIMITS.read_timeout}s"))
            response.force_close()
            return response
        except BodyTooLarge:
            # The Collector reads at most the limit and fails to decode the rest: a 400 there too.
            return _answer(ingest.fail("too_large", f"request body larger than max_request_body_size ({limit} bytes)"))
        except BadEncoding as exc:
            return _answer(ingest.fail("invalid", str(exc)))
        try:
            if len(body) > _DECODE_INLINE:
                # A big body decodes off the event loop: a second of JSON must not stall every client.
                msg = await asyncio.to_thread(translate, fmt, body, self.config.parse_string_tags)
            else:
                msg = translate(fmt, body, self.config.parse_string_tags)
        except PermanentError as exc:
            return _answer(ingest.fail("invalid", str(exc)))
        except Exception as exc:
            return _answer(ingest.fail("invalid", f"cannot decode the {fmt} body: {type(exc).__name__}"))
        return _answer(await ingest.push(None, msg, ingest.context(ANONYMOUS, None)))

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_request_body_size + 1)
        app.router.add_route("*", "/{path:.*}", self._handle)
        ssl_ctx = self.config.tls.ssl_context() if self.config.tls is not None else None
        self._runner, self.port = await start_site(app, self.config.endpoint, ssl_context=ssl_ctx,
                                                   reuse_port=self._reuse_port, backlog=1024, auto_decompress=False,
                                                   limits=LIMITS)
        log.info("zipkin receiver listening on %s", self.config.endpoint)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _answer(result: Result) -> web.Response:
    if result.outcome == "ok":
        return web.Response(status=202)
    if result.outcome == "unavailable":
        headers = {"Retry-After": str(max(1, round(result.retry_after)))} if result.retry_after else {}
        return web.Response(status=500, text='"Internal Server Error"', headers=headers)
    if result.outcome == "timeout":
        return web.Response(status=408, text=result.message + "\n")
    return web.Response(status=400, text=result.message + "\n")


def create(settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> ZipkinReceiver:
    return ZipkinReceiver(settings, consumers)


FACTORY = ReceiverFactory(type="zipkin", config=Config, create=create, signals=frozenset({"traces"}))
