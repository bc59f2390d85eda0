"""A gRPC channel for unary calls (`H2Client`): the target's addresses (`resolve`), connections to them
(`grpc_client`) as the balancer wants, and each call put on one of them.

As grpc-go under the Collector's `otlp` exporter: `round_robin` (the Collector's default) keeps a
connection to every address and takes them in turn; `pick_first` stays on the first address that
connects until it fails. A `dns:` target is resolved again every `resolve_interval`, and soon after an
address cannot be reached, so the pods behind a headless Service are followed as they come and go;
addresses no longer resolved finish their calls, then close. A call that a GOAWAY says was never
processed, or that a connection could not take, goes out again at once on another connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import ssl
import time
from collections.abc import Sequence
from typing import Literal

from gateway.transport.compression import compress
from gateway.transport.grpc_client import (
    ACCEPT_ENCODING,
    GrpcCallError,
    Keepalive,
    _Connection,
    _NotSent,
    _Refused,
    _Unprocessed,
    grpc_timeout,
    no_connection,
)
from gateway.transport.grpc_status import Status
from gateway.transport.h2 import U32, hpack_indexed_name, hpack_literal
from gateway.transport.resolve import Address, parse_target, resolve

log = logging.getLogger("gateway.exporter.h2")

Balancer = Literal["pick_first", "round_robin"]
BALANCERS: tuple[Balancer, ...] = ("pick_first", "round_robin")
RESOLVE_INTERVAL = 30.0
RECONNECT_BACKOFF = 1.0  # an address that failed to connect is not tried again in the background sooner
OFFLOAD_COMPRESSION = 1024 * 1024  # compress messages at least this large in a worker thread
ATTEMPTS = 8  # connections tried for one call before it fails


class _Endpoint:
    """One address and its connection: made when wanted, made again after it fails or goes away."""

    def __init__(self, client: H2Client, address: Address) -> None:
        self.client = client
        self.address = address
        self.conn: _Connection | None = None
        self.connecting: asyncio.Task[_Connection] | None = None
        self.draining: set[_Connection] = set()  # told to go away, finishing their calls
        self.failed_at = -math.inf
        self.retired = False

    def ready(self) -> _Connection | None:
        conn = self.conn
        return conn if conn is not None and conn.usable() else None

    def start(self) -> None:
        """Connect in the background, unless connected, connecting, or failed a moment ago."""
        if (self.connecting is None and self.ready() is None and not self.retired
                and time.monotonic() - self.failed_at >= RECONNECT_BACKOFF):
            self._set_aside()
            self._task()

    async def connection(self) -> _Connection:
        conn = self.ready()
        if conn is not None:
            return conn
        self._set_aside()
        conn = await asyncio.shield(self.connecting or self._task())
        if not conn.usable():
            raise no_connection(f"the connection to {self.client.name} closed as it opened")
        return conn

    def _set_aside(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            if conn.too_many_pings:
                self.client.slow_keepalive()
            # After GOAWAY its calls finish, then it closes; `close()` must still find it meanwhile.
            self.draining = {c for c in (*self.draining, conn) if c.transport is not None}

    def _task(self) -> asyncio.Task[_Connection]:
        task = self.connecting = asyncio.get_running_loop().create_task(self.client.connect(self.address))
        task.add_done_callback(self._connected)
        return task

    def _connected(self, task: asyncio.Task[_Connection]) -> None:
        if self.connecting is task:
            self.connecting = None
        if task.cancelled():
            return
        if task.exception() is not None:
            self.failed_at = time.monotonic()
            self.client.unreachable()
            return
        conn = task.result()
        if self.client.closed or self.retired:
            conn.close("the client is closed" if self.client.closed else "the address is no longer resolved")
        else:
            self.conn = conn

    def retire(self) -> None:
        """No longer resolved: no new calls; its connections close once their calls are answered."""
        self.retired = True
        if self.connecting is not None:
            self.connecting.cancel()
        for conn in (self.conn, *self.draining):
            if conn is not None:
                conn.drain()

    def close(self) -> list[_Connection]:
        if self.connecting is not None:
            self.connecting.cancel()
        conns = [c for c in (self.conn, *self.draining) if c is not None]
        self.conn = None
        self.draining.clear()
        for conn in conns:
            conn.close("the client is closed")
        return conns


class H2Client:
    """Unary gRPC calls to a target ("host:port", "dns:///host:port", "dns://server/host:port")."""

    def __init__(
        self,
        target: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        authority: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        compression: str = "",
        user_agent: str = "grpc-h2client",
        max_response: int = 16 * 1024 * 1024,
        connect_timeout: float = 20.0,
        keepalive: Keepalive | None = None,
        balancer: Balancer = "round_robin",
        resolve_interval: float = RESOLVE_INTERVAL,
    ) -> None:
        self.target = parse_target(target, 443 if ssl_context is not None else 80)
        self.name = target
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname or self.target.host
        self.compression = "" if compression in ("", "none", "identity") else compression
        self.max_response = max_response
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.round_robin = balancer == "round_robin"
        self.resolve_interval = resolve_interval
        base = (b"\x83" + (b"\x87" if ssl_context is not None else b"\x86")  # :method POST, :scheme
                + hpack_indexed_name(1, authority or self.target.authority)
                + hpack_indexed_name(31, "application/grpc") + hpack_literal("te", "trailers")
                + hpack_indexed_name(58, user_agent) + hpack_literal("grpc-accept-encoding", ACCEPT_ENCODING))
        if self.compression:
            base += hpack_literal("grpc-encoding", self.compression)
        base += b"".join(hpack_literal(k.lower(), v) for k, v in metadata)
        self._base = base
        self._paths: dict[str, bytes] = {}
        self._endpoints: list[_Endpoint] = [] if self.target.dns else [_Endpoint(self, (self.target.host,
                                                                                         self.target.port))]
        self._retired: set[_Endpoint] = set()
        self._next = 0  # round_robin: the next endpoint to try; pick_first: the one in use
        self._resolver: asyncio.Task[None] | None = None
        self._resolve_now = asyncio.Event()
        self.closed = False

    async def unary(self, path: str, message: bytes | bytearray | memoryview | Sequence[bytes],
                    metadata: Sequence[tuple[str, str]] = (),
                    time_limit: float | None = None) -> bytes:
        """Call `path` with `message` (bytes, or pieces whose concatenation is the message, written as
        they are); return the response message or raise `GrpcCallError`. `time_limit` (seconds) bounds
        the whole call, connecting included, and is sent as `grpc-timeout`."""
        deadline = time.monotonic() + time_limit if time_limit else None
        pieces = [message] if isinstance(message, (bytes, bytearray, memoryview)) else list(message)
        connected = False
        try:
            async with asyncio.timeout(time_limit or None) as scope:
                flag = 0
                if self.compression:
                    size = sum(map(len, pieces))
                    packed = (await asyncio.to_thread(compress, pieces, self.compression)
                              if size >= OFFLOAD_COMPRESSION else compress(pieces, self.compression))
                    if len(packed) < size:
                        pieces, flag = [packed], 1
                prefix = bytes((flag,)) + U32.pack(sum(map(len, pieces)))
                error: GrpcCallError | None = None
                for attempt in range(ATTEMPTS):
                    conn = await self._pick()
                    connected = True
                    try:
                        return await conn.call(self._block(path, metadata, deadline), [prefix, *pieces])
                    except _NotSent:
                        continue
                    except _Unprocessed as exc:
                        error = exc
                    except _Refused as exc:
                        error = exc
                        await asyncio.sleep(0.005 * (attempt + 1))
                if error is not None:
                    raise error
                raise no_connection(f"no connection to {self.name} takes new calls")
        except TimeoutError:
            if scope.expired():
                # Still connecting: the server is out of reach; else it did not answer in time.
                where = "" if connected else f" connecting to {self.name}"
                raise GrpcCallError(Status.DEADLINE_EXCEEDED, f"deadline of {time_limit}s exceeded{where}",
                                    answered=False, unreachable=not connected) from None
            raise

    def _block(self, path: str, metadata: Sequence[tuple[str, str]], deadline: float | None) -> bytes:
        head = self._paths.get(path)
        if head is None:
            head = self._paths[path] = hpack_indexed_name(4, path) + self._base  # :path
        block = head + b"".join(hpack_literal(k, v) for k, v in metadata)
        if deadline is not None:
            block += hpack_literal("grpc-timeout", grpc_timeout(deadline - time.monotonic()))
        return block

    # -- picking a connection
    async def _pick(self) -> _Connection:
        eps = self._endpoints
        n = len(eps)
        if self.round_robin and n > 1:
            start = self._next
            for i in range(n):
                ep = eps[(start + i) % n]
                conn = ep.ready()
                if conn is not None:
                    self._next = (start + i + 1) % n
                    return conn
                ep.start()  # it joins the rotation once connected
        elif n:
            conn = eps[self._next % n].ready()
            if conn is not None:
                return conn
        return await self._reach()

    async def _reach(self) -> _Connection:
        """No connection is ready: resolve if never done, then connect to the addresses in turn."""
        if self.closed:
            raise no_connection("the client is closed")
        if self.target.dns:
            if self._resolver is None:
                self._resolver = asyncio.get_running_loop().create_task(self._resolve_periodically())
            if not self._endpoints:
                try:
                    self._update(await resolve(self.target))
                except OSError as exc:
                    raise no_connection(f"cannot resolve {self.name}: {exc}") from None
        eps = self._endpoints
        if not eps:
            raise no_connection(f"{self.name} resolves to no address")
        error = no_connection(f"cannot connect to {self.name}")
        for i in range(len(eps)):
            index = (self._next + i) % len(eps)
            try:
                conn = await eps[index].connection()
            except GrpcCallError as exc:
                error = exc
                continue
            self._next = index + 1 if self.round_robin else index
            return conn
        raise error

    def unreachable(self) -> None:
        """An address could not be connected to: resolve again soon (the pod may be gone)."""
        self._resolve_now.set()

    def slow_keepalive(self) -> None:
        """The server said "too_many_pings": as grpc-go, ping half as often on new connections."""
        if self.keepalive is not None:
            self.keepalive = dataclasses.replace(self.keepalive, time=self.keepalive.time * 2)
            log.warning("gRPC %s: the server finds our keepalive PINGs too frequent; now every %gs",
                        self.name, self.keepalive.time)

    # -- resolution
    async def _resolve_periodically(self) -> None:
        while not self.closed:
            try:
                async with asyncio.timeout(self.resolve_interval):
                    await self._resolve_now.wait()
                # Resolved again on a failure, but not more often than this.
                await asyncio.sleep(min(RECONNECT_BACKOFF, self.resolve_interval))
            except TimeoutError:
                pass
            self._resolve_now.clear()
            try:
                self._update(await resolve(self.target))
            except OSError as exc:
                log.warning("gRPC %s: cannot resolve %s (keeping %d addresses): %s", self.name,
                            self.target.host, len(self._endpoints), exc)

    def _update(self, addresses: list[Address]) -> None:
        if not addresses:
            log.warning("gRPC %s: %s resolves to no address (keeping %d)", self.name, self.target.host,
                        len(self._endpoints))
            return
        old: dict[Address, _Endpoint | None] = {ep.address: ep for ep in self._endpoints}
        in_use = self._endpoints[self._next % len(self._endpoints)].address if self._endpoints else None
        eps = [old.pop(a, None) or _Endpoint(self, a) for a in dict.fromkeys(addresses)]
        for gone in old.values():
            assert gone is not None
            gone.retire()
            self._retired.add(gone)
        self._retired = {ep for ep in self._retired if ep.draining or ep.conn is not None}
        self._endpoints = eps
        if self.round_robin:
            for ep in eps:
                ep.start()
        else:
            self._next = next((i for i, ep in enumerate(eps) if ep.address == in_use), 0)

    # -- connecting
    async def connect(self, address: Address) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = address
        conn: _Connection | None = None
        keepalive = self.keepalive
        where = self.name if host == self.target.host else f"{self.name} ({host})"
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.ssl_context is not None:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self.max_response, keepalive), host, port, ssl=self.ssl_context,
                        server_hostname=self.server_hostname)
                    transport = conn.transport
                    alpn = transport.get_extra_info("ssl_object").selected_alpn_protocol() if transport else None
                    if alpn not in (None, "h2"):
                        raise GrpcCallError(Status.UNAVAILABLE, f"{where} negotiated {alpn!r}, not HTTP/2")
                else:
                    _, conn = await loop.create_connection(lambda: _Connection(self.max_response, keepalive),
                                                           host, port)
                await conn.settled
                return conn
        except GrpcCallError as exc:
            if conn is not None:
                conn.close(exc.message)
            raise no_connection(f"cannot connect to {where}: {exc.message}") from None
        except (OSError, EOFError) as exc:  # refused, unreachable, TLS handshake or verification, timeout
            if conn is not None:
                conn.close(str(exc))
            why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise no_connection(f"cannot connect to {where}: {why}") from None
        except BaseException:
            if conn is not None:
                conn.close("connect cancelled")
            raise

    async def close(self) -> None:
        """Fail calls in flight (Status.UNAVAILABLE) and close every connection."""
        self.closed = True
        if self._resolver is not None:
            self._resolver.cancel()
        conns = [c for ep in (*self._endpoints, *self._retired) for c in ep.close()]
        if conns:
            await asyncio.wait([c.lost for c in conns], timeout=1.0)
