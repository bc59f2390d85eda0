"""healthcheckv2's gRPC service: the standard grpc.health.v1.Health (`Check`, `Watch`) on grpcio's asyncio
server, in the gateway's event loop. The service name is "" for the gateway overall, a pipeline id
(`traces`, `traces/http`) for a pipeline, or `extensions`.

`Check` of an unknown service is NOT_FOUND. `Watch` sends the current status, then every change of it;
SERVICE_UNKNOWN while the service is unknown (it stays open, for a pipeline a reload may add). With
`include_recoverable_errors`, a recoverable error turns NOT_SERVING when `recovery_duration` has passed
since it began, and the stream says so then, without waiting for another event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.extensions.health_status import Aggregate, Rules, scope

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# (the status tree now, a way to hear of changes that returns its stop function)
View = Callable[[], Aggregate]
Watch = Callable[[Callable[[], None]], Callable[[], None]]


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # the stubs leave it untyped
    def __init__(self, view: View, watch: Watch, rules: Rules) -> None:
        self._view, self._watch, self._rules = view, watch, rules
        self._closing = asyncio.Event()

    def _serving(self, service: str) -> tuple[int, float | None]:
        """The serving status of `service` and when it will change by itself (a recovery running out)."""
        agg = scope(self._view(), service)
        if agg is None:
            return _UNKNOWN, None
        now = time.time()
        turns = self._rules.turns_at(agg)
        status = _SERVING if self._rules.serving(agg, now) else _NOT_SERVING
        return status, turns if turns is not None and turns > now else None

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse],
                    ) -> health_pb2.HealthCheckResponse:
        status, _ = self._serving(request.service)
        if status == _UNKNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, "Service not found.")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse],
                    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        changed = asyncio.Event()
        stop = self._watch(changed.set)
        closing = asyncio.ensure_future(self._closing.wait())
        last: int | None = None
        try:
            while not self._closing.is_set():
                changed.clear()
                status, turns = self._serving(request.service)
                if status != last:
                    last = status
                    yield health_pb2.HealthCheckResponse(status=status)
                woken = asyncio.ensure_future(changed.wait())
                timeout = None if turns is None else max(0.0, turns - time.time()) + 0.001
                await asyncio.wait({woken, closing}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            closing.cancel()
            stop()
        await context.abort(grpc.StatusCode.CANCELLED, "Server shutting down.")

    def close(self) -> None:
        """End every Watch stream (at shutdown), so the server need not wait for them."""
        self._closing.set()


async def serve(service: HealthService, endpoint: str, reuse_port: bool) -> tuple[grpc.aio.Server, int]:
    """Start a grpcio server with only the health service on `endpoint`; return it and its port."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
    health_pb2_grpc.add_HealthServicer_to_server(service, server)
    port = server.add_insecure_port(endpoint)
    await server.start()
    return server, port
