"""A server connection's life: the limits it runs under, and its timers (grpc-go's keepalive semantics).

- `connection_timeout`: the preface and the client's first SETTINGS must arrive within it (grpc-go's
  ConnectionTimeout, 120 s), and so must the rest of any header block once its first frame is in.
- `max_connection_idle`: no stream for that long: GOAWAY NO_ERROR, then close.
- `max_connection_age` (+/-10% jitter, as grpc-go): GOAWAY(2^31-1) and a PING; at its ACK the final
  GOAWAY naming the last stream taken; `max_connection_age_grace` later the connection is closed.
- `time` / `timeout`: after `time` with nothing read, a PING; nothing read `timeout` later: closed.
- enforcement (`min_time`, `permit_without_stream`): a client PING sooner than `min_time` after the
  last (or, with no stream open and not permitted, sooner than 2 hours) is a strike; past 2 strikes,
  GOAWAY ENHANCE_YOUR_CALM "too_many_pings". Sending HEADERS or DATA forgives the strikes.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from typing import Protocol

INFINITY = math.inf
MAX_PING_STRIKES = 2
PING_WITHOUT_STREAM_INTERVAL = 2 * 3600.0  # grpc-go's defaultPingTimeout


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_concurrent_streams: int = 100
    max_connections: int = 4096
    connection_timeout: float = 120.0
    max_connection_idle: float = INFINITY
    max_connection_age: float = INFINITY
    max_connection_age_grace: float = INFINITY
    keepalive_time: float = 2 * 3600.0
    keepalive_timeout: float = 20.0
    min_ping_interval: float = 300.0
    permit_without_stream: bool = False
    read_size: int = 0  # bytes read per system call; 0: asyncio's default
    write_high_water: int = 0  # stop reading from a peer not reading our writes past this; 0: asyncio's


class Owner(Protocol):
    def graceful_goaway(self) -> None: ...
    def idle_goaway(self) -> None: ...
    def keepalive_ping(self) -> None: ...
    def close_now(self, why: str) -> None: ...
    def is_idle(self) -> bool: ...


class Lifecycle:
    """One connection's timers; every callback re-checks its condition, so none is cancelled eagerly."""

    __slots__ = (
        "forgive",
        "handshake",
        "idle_since",
        "last_ping",
        "last_read",
        "limits",
        "loop",
        "owner",
        "strikes",
        "timers",
    )

    def __init__(self, owner: Owner, limits: ServerLimits) -> None:
        self.owner = owner
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.idle_since = now
        self.last_read = now
        self.last_ping = -INFINITY
        self.strikes = 0
        self.forgive = False
        self.timers: list[asyncio.TimerHandle] = []
        self.handshake: asyncio.TimerHandle | None = self._later(limits.connection_timeout, self._handshake_expired)
        if limits.max_connection_idle < INFINITY:
            self._later(limits.max_connection_idle, self._check_idle)
        if limits.max_connection_age < INFINITY:
            self._later(limits.max_connection_age * random.uniform(0.9, 1.1), self._aged)
        if limits.keepalive_time < INFINITY:
            self._later(limits.keepalive_time, self._check_keepalive)

    def _later(self, delay: float, callback: object) -> asyncio.TimerHandle:
        handle = self.loop.call_later(delay, callback)  # type: ignore[arg-type]
        timers = self.timers
        if len(timers) >= 16:
            # Timers that fired or were cancelled go, so a long-lived connection that re-arms them
            # (a header block per request, keepalive) keeps a handful, not one per event.
            now = self.loop.time()
            timers[:] = [t for t in timers if not t.cancelled() and t.when() > now]
        timers.append(handle)
        return handle

    def stop(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()

    # -- the preface, and header blocks
    def handshake_done(self) -> None:
        if self.handshake is not None:
            self.handshake.cancel()
            self.handshake = None

    def block_started(self) -> None:
        self.handshake = self._later(self.limits.connection_timeout, self._handshake_expired)

    def _handshake_expired(self) -> None:
        self.owner.close_now("the preface or a header block took longer than connection_timeout")

    # -- idle and age
    def _check_idle(self) -> None:
        if not self.owner.is_idle():
            self._later(self.limits.max_connection_idle, self._check_idle)
            return
        left = self.idle_since + self.limits.max_connection_idle - self.loop.time()
        if left > 0:
            self._later(left, self._check_idle)
        else:
            self.owner.idle_goaway()

    def _aged(self) -> None:
        self.owner.graceful_goaway()
        if self.limits.max_connection_age_grace < INFINITY:
            self._later(self.limits.max_connection_age_grace,
                        lambda: self.owner.close_now("max_connection_age_grace passed"))

    # -- keepalive pings, ours and the client's
    def _check_keepalive(self) -> None:
        left = self.last_read + self.limits.keepalive_time - self.loop.time()
        if left > 0:
            self._later(left, self._check_keepalive)
            return
        self.owner.keepalive_ping()
        sent = self.loop.time()

        def check() -> None:
            if self.last_read < sent:
                self.owner.close_now("no answer to a keepalive ping")
            else:
                self._check_keepalive()

        self._later(self.limits.keepalive_timeout, check)

    def client_ping(self, streams: int) -> bool:
        """A PING from the client; False when it is one too many."""
        now = self.loop.time()
        last, self.last_ping = self.last_ping, now
        if self.forgive:
            self.forgive = False
            self.strikes = 0
            return True
        if streams == 0 and not self.limits.permit_without_stream:
            interval = PING_WITHOUT_STREAM_INTERVAL
        else:
            interval = self.limits.min_ping_interval
        if now - last < interval:
            self.strikes += 1
        return self.strikes <= MAX_PING_STRIKES
