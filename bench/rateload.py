"""The open-loop load (`python -m bench rate`): N client connections, each sending one OTLP/gRPC
request of S spans every 1/rate seconds whatever the target does with the previous one, as a fleet
of SDKs does. Each connection starts at a random phase within the period and every send is moved by
a random jitter (a fraction of the period), so the connections do not synchronize into bursts.

The connections are split over a few sender processes (one grpcio aio channel, so one TCP
connection, per client connection), each with its own event loop, so one process does not hold a
thousand channels and its CPU is never mixed with the target's. The senders connect, meet at a
barrier with the runner, then send for `warmup + duration` seconds. Each records how late it sent
against its schedule and how many sends fell in the measurement window (after the warm-up), so a
generator that cannot hold the offered rate shows up in the report instead of a lower load passing
for the offered one.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import resource
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from bench.loadgen import TRACES_PATH, LoadResult, export
from bench.payload import PayloadSpec, build_pool, stream

CONNECTIONS_PER_SENDER = 250
MAX_SENDERS = 4


@dataclass(frozen=True)
class RateSpec:
    target: str = ""  # host:port, filled in by the runner
    connections: int = 1000
    rate: float = 1.0  # requests per second per connection
    duration: float = 30.0  # the measurement window
    warmup: float = 2.0  # sending before the window opens
    jitter: float = 0.1  # each send moves by up to this fraction of the period, either way
    senders: int = 0  # processes; 0: one per 250 connections, at most 4
    payload: PayloadSpec = field(default_factory=lambda: PayloadSpec(10))

    @property
    def period(self) -> float:
        return 1.0 / self.rate

    def shares(self) -> list[int]:
        """Connections per sender process."""
        n = self.senders or max(1, min(MAX_SENDERS, math.ceil(self.connections / CONNECTIONS_PER_SENDER)))
        n = max(1, min(n, self.connections))
        return [self.connections // n + (1 if i < self.connections % n else 0) for i in range(n)]


@dataclass
class RateLoadResult(LoadResult):
    """The closed loop's tally (acked requests and spans, refusals, latencies) and the open loop's own."""

    connected: int = 0
    sent: int = 0
    sent_in_window: int = 0
    lags: list[float] = field(default_factory=list)  # how late each send in the window was, seconds
    cpu_seconds: float = 0.0  # the sender's own (all its threads), in the window
    problems: list[str] = field(default_factory=list)

    def merge(self, other: RateLoadResult) -> None:
        self.connected += other.connected
        self.sent += other.sent
        self.sent_in_window += other.sent_in_window
        self.ok_requests += other.ok_requests
        self.ok_spans += other.ok_spans
        self.failed_requests += other.failed_requests
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.lags += other.lags
        self.latencies += other.latencies
        self.cpu_seconds += other.cpu_seconds
        self.problems += other.problems


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sender(index: int, spec: RateSpec, connections: int, barrier: Barrier, out: Queue[RateLoadResult]) -> None:
    """One sender process: `connections` of the spec's connections. Always puts one result on `out`;
    a sender that cannot start breaks the barrier so that nobody waits for it."""
    res = RateLoadResult()
    try:
        asyncio.run(_send(index, spec, connections, barrier, res))
    except threading.BrokenBarrierError:
        res.problems.append(f"sender {index}: another sender or the runner gave up before the start")
    except Exception as exc:
        res.problems.append(f"sender {index}: {type(exc).__name__}: {exc}")
        barrier.abort()
    out.put(res)


async def _send(index: int, spec: RateSpec, n: int, barrier: Barrier, res: RateLoadResult) -> None:
    import grpc

    payload = replace(spec.payload, seed=spec.payload.seed + index)
    requests = stream(payload, build_pool(payload))
    spans = spec.payload.spans_per_request
    rng = random.Random(1000 + index)
    # A subchannel pool per channel: without it grpcio shares one TCP connection among the channels.
    channels = [grpc.aio.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(n)]
    try:
        await asyncio.wait_for(asyncio.gather(*(ch.channel_ready() for ch in channels)), 60)
        res.connected = n
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 60 + spec.connections / 20)
        t0 = time.monotonic()
        win_start, win_end = t0 + spec.warmup, t0 + spec.warmup + spec.duration
        period, jitter = spec.period, min(0.5, max(0.0, spec.jitter)) * spec.period
        inflight: set[asyncio.Task[None]] = set()

        async def connection(call: Any) -> None:
            phase = rng.uniform(0, period)
            for k in itertools.count():
                at = max(t0, t0 + phase + k * period + rng.uniform(-jitter, jitter))
                if at >= win_end:
                    return
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.monotonic()
                res.sent += 1
                if win_start <= now < win_end:
                    res.sent_in_window += 1
                    res.lags.append(max(0.0, now - at))
                # Open loop: the next send does not wait for this answer.
                task = asyncio.create_task(export(call, next(requests), spans, res))
                inflight.add(task)
                task.add_done_callback(inflight.discard)

        async def window() -> None:
            await asyncio.sleep(max(0.0, win_start - time.monotonic()))
            c0 = _cpu()
            await asyncio.sleep(max(0.0, win_end - time.monotonic()))
            res.cpu_seconds = _cpu() - c0

        await asyncio.gather(window(), *(connection(ch.unary_unary(TRACES_PATH, None, None)) for ch in channels))
        if inflight:
            await asyncio.wait(inflight, timeout=60)
    finally:
        await asyncio.gather(*(ch.close(None) for ch in channels), return_exceptions=True)
