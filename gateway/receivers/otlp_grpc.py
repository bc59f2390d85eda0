"""OTLP over gRPC: the three Export services, requests kept as bytes until validated."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway.receivers.ingest import Ingest, Result
from gateway.receivers.otlp import GrpcConfig
from pipelines.batch import Signal

log = logging.getLogger("gateway.receiver.grpc")

SERVICES: dict[Signal, str] = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}


def _status_details(code: grpc.StatusCode, message: str, retry_after: float) -> bytes:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(retry_after * 1e9))
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    status.details.add().Pack(info)
    return bytes(status.SerializeToString())


class GrpcServer:
    def __init__(self, config: GrpcConfig, ingests: dict[Signal, Ingest], reuse_port: bool) -> None:
        self.config = config
        self._reuse_port = reuse_port
        self._ingests = ingests
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    def _handler(self, ingest: Ingest) -> Any:
        limit = self.config.max_recv_msg_size_mib * 1024 * 1024

        async def export(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            if len(request) > limit:
                await self._abort(context, ingest.fail(
                    "too_large", f"received message larger than max_recv_msg_size_mib ({len(request)} vs. {limit})"))
            metadata = context.invocation_metadata() or ()
            headers: dict[str, str] = {}
            multi: dict[str, tuple[str, ...]] = {}
            for key, value in metadata:
                if isinstance(value, bytes):
                    continue
                headers.setdefault(key, value)
                if ingest.include_metadata:
                    multi[key] = (*multi.get(key, ()), value)
            tenant, failure = ingest.authenticate(headers)
            result = failure or await ingest.push(request, None, ingest.context(tenant, multi))
            if result.outcome == "ok":
                return result.response
            await self._abort(context, result)
            raise AssertionError("unreachable: abort raises")

        return grpc.unary_unary_rpc_method_handler(export)

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext[bytes, bytes], result: Result) -> None:
        from gateway.receivers.ingest import WIRE_CODES

        code = getattr(grpc.StatusCode, WIRE_CODES[result.outcome][0])
        if result.retry_after is not None:
            details = _status_details(code, result.message, result.retry_after)
            context.set_trailing_metadata((("grpc-status-details-bin", details),))
        await context.abort(code, result.message)

    async def start(self) -> None:
        cfg = self.config
        # gRPC core refuses a message over its limit before any handler runs, so nobody could count the
        # refusal: core's limit is set to twice ours and the handler refuses (and counts) what lies between.
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", 2 * cfg.max_recv_msg_size_mib * 1024 * 1024),
            ("grpc.so_reuseport", 1 if self._reuse_port else 0),
        ]
        if cfg.max_concurrent_streams:
            options.append(("grpc.max_concurrent_streams", cfg.max_concurrent_streams))
        server = grpc.aio.server(options=options)
        handlers = [
            grpc.method_handlers_generic_handler(SERVICES[signal], {"Export": self._handler(ingest)})
            for signal, ingest in self._ingests.items()
        ]
        server.add_generic_rpc_handlers(tuple(handlers))
        if cfg.tls is not None:
            cert, key, client_ca = cfg.tls.read()
            creds = grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
            )
            self.port = server.add_secure_port(cfg.endpoint, creds)
        else:
            self.port = server.add_insecure_port(cfg.endpoint)
        if not self.port:
            raise OSError(f"cannot listen for OTLP/gRPC on {cfg.endpoint}")
        await server.start()
        self._server = server
        log.info("OTLP/gRPC receiver listening on %s", cfg.endpoint)

    async def shutdown(self) -> None:
        if self._server is not None:
            # Stop accepting; in-flight RPCs get a moment to finish and be acknowledged.
            await self._server.stop(grace=5.0)
            self._server = None
