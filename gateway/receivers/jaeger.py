"""The `jaeger` receiver: Jaeger spans as the Collector's `jaeger` receiver takes them, translated to
OTLP by `pipelines/jaeger`, traces only.

- `grpc` (`localhost:14250`): api_v2 `CollectorService/PostSpans`, on the otlp receiver's gRPC server
  (every key of its `grpc` block); a request that does not decode is INTERNAL, as grpc-go answers a
  message its codec refuses, one with a bad id INTERNAL too.
- `thrift_http` (`localhost:14268`): `POST /api/traces`, a Thrift binary Batch with Content-Type
  `application/x-thrift` or `application/vnd.apache.thrift.binary`, on the otlp receiver's HTTP server
  (its keys); 202 once held, 400 for a body or media type it cannot take, 500 when the pipelines
  cannot take it now (with Retry-After) or the body is over `max_request_body_size`, as the Collector.
- `thrift_compact` (`localhost:6831`), `thrift_binary` (`localhost:6832`): the agent's UDP `emitBatch`
  (`jaeger_udp`).

gRPC and HTTP answer once every pipeline holds the request (`Ingest`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from gateway.component import Consumer, ExtensionRef, ReceiverFactory, Settings
from gateway.config.model import AuthConfig
from gateway.receivers.ingest import Ingest, Result
from gateway.receivers.jaeger_udp import UdpConfig, UdpServer
from gateway.receivers.otlp import Servers, auth_refs, authenticator
from gateway.receivers.otlp_config import GrpcConfig, HttpConfig
from gateway.receivers.otlp_grpc import GrpcServer, collect, first_values, grpc_error
from gateway.receivers.otlp_http import HttpServer, _read_body
from gateway.transport.compression import BadEncoding, BodyTooLarge, decompress
from gateway.transport.grpc_server import GrpcError, Handler, Metadata
from gateway.transport.grpc_status import Status
from pipelines.batch import Signal
from pipelines.config_types import unsupported
from pipelines.errors import PermanentError
from pipelines.jaeger import model, proto, thrift

log = logging.getLogger("gateway.receiver.jaeger")

POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"
THRIFT_TYPES = ("application/x-thrift", "application/vnd.apache.thrift.binary")
_PATH_ONLY = "jaeger's thrift_http path is /api/traces"


@dataclass(frozen=True)
class JaegerGrpcConfig(GrpcConfig):
    endpoint: str = "localhost:14250"


@dataclass(frozen=True)
class ThriftHttpConfig(HttpConfig):
    endpoint: str = "localhost:14268"
    traces_url_path: str = unsupported(_PATH_ONLY, default="/api/traces")
    metrics_url_path: str = unsupported(_PATH_ONLY, default="/v1/metrics")
    logs_url_path: str = unsupported(_PATH_ONLY, default="/v1/logs")


@dataclass(frozen=True)
class CompactConfig(UdpConfig):
    endpoint: str = "localhost:6831"


@dataclass(frozen=True)
class BinaryConfig(UdpConfig):
    endpoint: str = "localhost:6832"


@dataclass(frozen=True)
class Protocols:
    grpc: JaegerGrpcConfig | None = None
    thrift_http: ThriftHttpConfig | None = None
    thrift_compact: CompactConfig | None = None
    thrift_binary: BinaryConfig | None = None


@dataclass(frozen=True)
class Config:
    protocols: Protocols = field(default_factory=Protocols)
    remote_sampling: Any = unsupported("the Collector refuses it too: use the jaegerremotesampling extension")

    def validate(self) -> list[str]:
        p = self.protocols
        if p.grpc is None and p.thrift_http is None and p.thrift_compact is None and p.thrift_binary is None:
            return ["protocols: must specify at least one protocol when using the Jaeger receiver"]
        return []


class _Grpc(GrpcServer):
    name = "jaeger gRPC"

    def _paths(self) -> dict[str, Ingest]:
        return {POST_SPANS: self._ingests["traces"]}

    @staticmethod
    def _handler(ingest: Ingest) -> Handler:
        async def post_spans(request: bytes, metadata: Metadata) -> bytes:
            identity, failure = await ingest.authenticate(first_values(metadata))
            if failure is not None:
                raise grpc_error(failure)
            try:
                msg = await _decode(lambda: model.proto_request(proto.decode(request)), len(request))
            except Exception as exc:
                reason = str(exc) if isinstance(exc, PermanentError) else f"cannot decode: {type(exc).__name__}"
                ingest.fail("invalid", reason)
                raise GrpcError(Status.INTERNAL, f"grpc: error unmarshalling request: {reason}") from None
            result = await ingest.push(None, msg, ingest.context(identity, collect(ingest, metadata)))
            if result.outcome != "ok":
                raise grpc_error(result)
            return b""  # PostSpansResponse{}

        return post_spans


class _ThriftHttp(HttpServer):
    name = "jaeger thrift_http"

    def _fast_lane(self) -> None:
        return None  # the fast lane's routes are OTLP's

    def _route(self, ingest: Ingest) -> Any:
        limit = self.config.max_request_body_size

        async def handle(request: web.Request) -> web.StreamResponse:
            headers = {k.lower(): v for k, v in request.headers.items()}
            identity, failure = await ingest.authenticate(headers)
            if failure is not None:
                return self._answer(failure)
            try:
                raw = await _read_body(request, limit, self.config.read_timeout)
                body = decompress(raw, request.headers.get("Content-Encoding", ""), limit)
            except TimeoutError:
                response = self._answer(ingest.fail("timeout", "request body not received within read_timeout"))
                response.force_close()
                return response
            except BodyTooLarge:
                # Go's MaxBytesReader fails the read, which the Collector answers 500
                return self._answer(ingest.fail("too_large", "Unable to process request body: http: request body "
                                                             "too large"))
            except BadEncoding as exc:
                return self._answer(ingest.fail("invalid", str(exc)))
            if request.content_type not in THRIFT_TYPES:
                return self._answer(ingest.fail("invalid", f"Unsupported content type: {request.content_type}"))
            try:
                msg = await _decode(lambda: thrift.decode_batch(body), len(body))
            except Exception as exc:
                reason = str(exc) if isinstance(exc, PermanentError) else f"cannot decode: {type(exc).__name__}"
                return self._answer(ingest.fail("invalid", f"Unable to process request body: {reason}"))
            context = ingest.context(identity, collect_http(ingest, request))
            return self._answer(await ingest.push(None, msg, context))

        return handle

    def _answer(self, result: Result) -> web.Response:
        headers = dict(self.config.response_headers)
        if result.outcome == "ok":
            return web.Response(status=202, headers=headers)
        status = {"unavailable": 500, "too_large": 500, "unauthenticated": 401, "timeout": 408}.get(result.outcome, 400)
        if result.retry_after:
            headers["Retry-After"] = str(max(1, round(result.retry_after)))
        return web.Response(status=status, text=result.message + "\n", headers=headers)


def collect_http(ingest: Ingest, request: web.Request) -> dict[str, tuple[str, ...]]:
    multi: dict[str, tuple[str, ...]] = {}
    if ingest.include_metadata:
        for k, v in request.headers.items():
            multi[k.lower()] = (*multi.get(k.lower(), ()), v)
    return multi


class JaegerReceiver(Servers):
    def __init__(self, settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> None:
        super().__init__()
        self.id = settings.id
        p = settings.config.protocols

        def ingest(transport: str, auth: AuthConfig | None = None, include_metadata: bool = False) -> Ingest:
            return Ingest(settings.id, transport, "traces", consumers["traces"], settings.telemetry,
                          authenticator(settings, auth), include_metadata)

        if p.grpc is not None:
            grpc: dict[Signal, Ingest] = {"traces": ingest("grpc", p.grpc.auth, p.grpc.include_metadata)}
            self._servers.append(_Grpc(p.grpc, grpc, settings.reuse_port))
        if p.thrift_http is not None:
            h = p.thrift_http
            http: dict[Signal, Ingest] = {"traces": ingest("collector_http", h.auth, h.include_metadata)}
            self._servers.append(_ThriftHttp(h, http, settings.reuse_port))
        udps: tuple[tuple[thrift.Protocol, UdpConfig | None], ...] = (("compact", p.thrift_compact),
                                                                      ("binary", p.thrift_binary))
        for name, udp in udps:
            if udp is not None:
                self._servers.append(UdpServer(udp, name, ingest(f"udp_thrift_{name}"), settings.telemetry,
                                               settings.reuse_port))


def create(settings: Settings[Config], consumers: Mapping[Signal, Consumer]) -> JaegerReceiver:
    return JaegerReceiver(settings, consumers)


def extension_refs(config: Config) -> list[ExtensionRef]:
    return auth_refs([("grpc", config.protocols.grpc), ("thrift_http", config.protocols.thrift_http)])


FACTORY = ReceiverFactory(type="jaeger", config=Config, create=create, signals=frozenset({"traces"}),
                          extension_refs=extension_refs)


T = TypeVar("T")

# Bodies up to this size decode on the event loop (milliseconds); bigger ones in a thread, so a
# 20 MiB batch (seconds of pure-Python Thrift) does not stall every other client.
_DECODE_INLINE = 256 * 1024


async def _decode(decode: Callable[[], T], size: int) -> T:
    if size > _DECODE_INLINE:
        return await asyncio.to_thread(decode)
    return decode()
