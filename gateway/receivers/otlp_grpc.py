"""OTLP over gRPC: the three Export services, requests kept as bytes until validated."""

from __future__ import annotations

import logging
import socket

from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.receivers.ingest import WIRE_CODES, Ingest, Result
from gateway.receivers.otlp_config import GrpcConfig
from gateway.transport.grpc_server import GrpcError, H2GrpcServer, Handler, Metadata
from gateway.transport.grpc_status import Status
from gateway.transport.http_site import split_endpoint
from pipelines import otlp
from pipelines.batch import Signal

log = logging.getLogger("gateway.receiver.grpc")

def _status_details(code: Status, message: str, retry_after: float) -> bytes:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after * 1e9))
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(info)
    return bytes(status.SerializeToString())


def first_values(metadata: Metadata) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in metadata:
        headers.setdefault(key, value)
    return headers


def collect(ingest: Ingest, metadata: Metadata) -> dict[str, tuple[str, ...]]:
    """The request's metadata, every value of each key, when the receiver keeps it."""
    multi: dict[str, tuple[str, ...]] = {}
    if ingest.include_metadata:
        for key, value in metadata:
            multi[key] = (*multi.get(key, ()), value)
    return multi


def grpc_error(result: Result) -> GrpcError:
    code = WIRE_CODES[result.outcome][0]
    # The details repeat the message: cut there, so they fit in the trailers with it and the
    # RetryInfo always reaches the client.
    details = _status_details(code, result.message[:1024], result.retry_after) \
        if result.retry_after is not None else None
    return GrpcError(code, result.message, details)


class GrpcServer:
    """The otlp receiver's gRPC side: the three Export methods on our asyncio HTTP/2 server
    (`gateway.transport.grpc_server`). Another receiver's gRPC side overrides `_paths` and `_handler`."""

    name = "OTLP/gRPC"

    def __init__(self, config: GrpcConfig, ingests: dict[Signal, Ingest], reuse_port: bool) -> None:
        self.config = config
        self._reuse_port = reuse_port
        self._ingests = ingests
        self._server: H2GrpcServer | None = None
        self.port: int | None = None

    @staticmethod
    def _handler(ingest: Ingest) -> Handler:
        async def export(request: bytes, metadata: Metadata) -> bytes:
            headers = first_values(metadata)
            identity, failure = await ingest.authenticate(headers)
            result = failure or await ingest.push(request, None, ingest.context(identity, collect(ingest, metadata)),
                                                  headers.get("traceparent") if ingest.traced else None)
            if result.outcome == "ok":
                return result.response
            raise grpc_error(result)

        return export

    def _paths(self) -> dict[str, Ingest]:
        return {otlp.GRPC_EXPORT_PATHS[signal]: ingest for signal, ingest in self._ingests.items()}

    async def start(self) -> None:
        cfg = self.config
        paths = self._paths()
        limit = cfg.max_recv_msg_size_mib * 1024 * 1024

        def too_large(path: str, size: int | None) -> str:
            got = f"({size} vs. {limit})" if size is not None else f"after decompression (max {limit})"
            message = f"received message larger than max_recv_msg_size_mib {got}"
            ingest = paths.get(path)
            if ingest is not None:
                ingest.fail("too_large", message)
            return message

        server = H2GrpcServer(
            {path: self._handler(ingest) for path, ingest in paths.items()},
            max_message=limit,
            limits=cfg.limits(),
            ssl_context=cfg.tls.ssl_context() if cfg.tls is not None else None,
            reuse_port=self._reuse_port,
            on_too_large=too_large,
        )
        host, port = split_endpoint(cfg.endpoint)
        family = {"tcp": socket.AF_UNSPEC, "tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}[cfg.transport]
        try:
            self.port = await server.start(host, port, family)
        except OSError as exc:
            raise OSError(f"cannot listen for {self.name} on {cfg.endpoint}: {exc}") from exc
        self._server = server
        log.info("%s receiver listening on %s", self.name, cfg.endpoint)

    async def shutdown(self) -> None:
        if self._server is not None:
            # Stop accepting; in-flight calls get a moment to finish and be acknowledged.
            await self._server.stop(grace=5.0)
            self._server = None
