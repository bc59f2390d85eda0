"""The jaeger receiver's agent side: `emitBatch` messages over UDP, Thrift compact (6831) or binary (6832).

As the Collector's: a packet is read into at most `max_packet_size` bytes (the rest of a longer one is
lost, and it then fails to decode), waits in a queue of `queue_size` packets (a packet arriving at a
full queue is dropped), and `workers` tasks decode and hand them to the pipelines. UDP has no answer:
a packet that does not decode, or finds the queue full, is dropped and counted in
`otelcol_gateway_receiver_failed_requests_total` (`reason` `invalid` or `queue_full`); spans the
pipelines refuse in `otelcol_receiver_refused_spans_total`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from gateway.auth import ANONYMOUS
from gateway.receivers.ingest import Ingest
from gateway.telemetry import Telemetry
from gateway.transport.http_site import split_endpoint
from pipelines.errors import PermanentError
from pipelines.jaeger import thrift

log = logging.getLogger("gateway.receiver.jaeger")


@dataclass(frozen=True)
class UdpConfig:
    endpoint: str = ""
    queue_size: int = 1000
    max_packet_size: int = 65000
    workers: int = 10
    socket_buffer_size: int = 0  # 0: the system's

    def validate(self) -> list[str]:
        errors = [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]
        for key in ("queue_size", "max_packet_size", "workers"):
            if getattr(self, key) <= 0:
                errors.append(f"{key} must be positive")
        if self.socket_buffer_size < 0:
            errors.append("socket_buffer_size must not be negative")
        return errors


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: UdpServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._server.received(data)


class UdpServer:
    def __init__(self, config: UdpConfig, protocol: thrift.Protocol, ingest: Ingest, telemetry: Telemetry,
                 reuse_port: bool) -> None:
        self.config = config
        self._protocol: thrift.Protocol = protocol
        self._ingest = ingest
        self._reuse_port = reuse_port
        self._full = telemetry.receiver_failed_request(ingest.receiver, ingest.transport, "queue_full")
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(config.queue_size)
        self._transport: asyncio.DatagramTransport | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.port: int | None = None

    def received(self, data: bytes) -> None:
        try:
            self._queue.put_nowait(data[:self.config.max_packet_size])
        except asyncio.QueueFull:
            self._full.inc()

    async def _work(self) -> None:
        while True:
            packet = await self._queue.get()
            try:
                msg = thrift.decode_agent(packet, self._protocol)
            except Exception as exc:  # any packet, however odd, costs this worker nothing but the packet
                reason = str(exc) if isinstance(exc, PermanentError) else f"cannot decode: {type(exc).__name__}"
                self._ingest.fail("invalid", reason)
                log.debug("%s: dropped a %s packet: %s", self._ingest.receiver, self._protocol, reason)
                continue
            if msg is not None:
                try:
                    await self._ingest.push(None, msg, self._ingest.context(ANONYMOUS, None))
                except Exception:  # the pipeline's own failure is counted there; the worker goes on
                    log.exception("%s: a %s packet could not be handed on", self._ingest.receiver, self._protocol)

    async def start(self) -> None:
        host, port = split_endpoint(self.config.endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if self.config.socket_buffer_size > 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.socket_buffer_size)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for jaeger thrift_{self._protocol} on {self.config.endpoint}: {exc}") \
                from exc
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self.port = sock.getsockname()[1]
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.config.workers)]
        log.info("jaeger thrift_%s (UDP) receiver listening on %s", self._protocol, self.config.endpoint)

    async def shutdown(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
