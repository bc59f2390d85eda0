"""The `loadbalancing` exporter (alias `load_balancing`): every trace to one endpoint of a ring, so that
a tier of tail samplers behind it sees each trace whole. Traces only.

Unlike the Collector's, which puts each part in the queue of the endpoint owning it at that moment, a
request waits in one sending queue (memory or disk) and is cut up by the ring as it is sent. So:
- data queued while an endpoint leaves goes to the new owners: nothing waits for an endpoint that is gone;
- a part whose endpoint cannot be reached (cannot connect, TLS failure, the connection lost or going
  away) is sent at once to the part's owners under the ring without that endpoint. A backend that
  answers with a retryable status (busy: UNAVAILABLE, RESOURCE_EXHAUSTED with RetryInfo, ABORTED, ...)
  or does not answer in time stays in the ring and is asked again after the server's delay or the
  backoff: moving its traces would split them across samplers. Only after `EJECT_AFTER` failed
  attempts of a part in a row is it taken out;
- an endpoint taken out is back in the ring, with its share, as soon as it answers an empty export with
  anything at all (asked every `PROBE_INTERVAL`): a gRPC status from the server shows it is up;
- with no endpoint in the ring, queued data waits in the queue (on disk with `storage`) without
  spending its retry time, and new requests are refused at admission with a retryable answer.

`protocol::otlp` is the `otlp` exporter's config for each endpoint: TLS, headers, compression,
keepalive, `timeout` per call, and `retry_on_failure` for the waits between attempts of one part (its
`max_elapsed_time` is when a part is given up and counted). The top-level `sending_queue` holds the
data and `retry_on_failure` (off, as in the Collector) sends a request again only if no part of it
could be delivered, so a retry never duplicates a delivered part.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field

from gateway.component import ExporterFactory, ExtensionRef, Settings
from gateway.exporters import lb_resolvers, otlp_grpc
from gateway.exporters.helper import Exporter, ExporterCommon, QueueConfig, storage_refs
from gateway.exporters.otlp_common import CallHeaders, exporter_refs
from gateway.exporters.retry import Backoff, Interrupted, RetryConfig
from pipelines.batch import Batch
from pipelines.config_types import Duration, unsupported
from pipelines.errors import PermanentError, RetryableError
from pipelines.loadbalancing import NoEndpoint, Ring, RoutingKey, partition
from pipelines.wire import WireError

log = logging.getLogger("gateway.exporter")

PROBE_INTERVAL = 1.0  # how often an endpoint out of the ring is asked whether it answers again
PROBE_TIMEOUT = 2.0
EJECT_AFTER = 3  # failed attempts in a row of one part at its endpoint, of any kind, that take the endpoint out
_EMPTY = Batch("traces", b"", 0)  # an export of nothing: a backend that answers it is up


@dataclass(frozen=True)
class EndpointConfig(otlp_grpc.Config):
    """The `otlp` exporter's config, for every endpoint; the resolver gives the endpoints."""

    def validate(self) -> list[str]:
        errors = []
        if self.endpoint:
            errors.append("endpoint: the resolver gives the endpoints; leave it out")
        queue = self.sending_queue
        if queue != QueueConfig() and queue != QueueConfig(enabled=False):
            errors.append("sending_queue: each endpoint sends straight from the exporter's own sending_queue "
                          "(so queued data follows the ring); set it at the top level")
        return errors + otlp_grpc.Config.validate(dataclasses.replace(self, endpoint="placeholder:4317"))


@dataclass(frozen=True)
class ProtocolConfig:
    otlp: EndpointConfig = field(default_factory=EndpointConfig)


@dataclass(frozen=True)
class Config(ExporterCommon):
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    resolver: lb_resolvers.ResolverConfig = field(default_factory=lb_resolvers.ResolverConfig)
    routing_key: RoutingKey = "traceID"
    routing_attributes: tuple[str, ...] = ()
    # The Collector's defaults at this level: no retry, no timeout.
    retry_on_failure: RetryConfig = field(default_factory=lambda: RetryConfig(enabled=False))
    timeout: Duration = unsupported("a bound on a whole request would cut a re-route short: "
                                    "protocol::otlp::timeout bounds each call", default=0.0)

    def validate(self) -> list[str]:
        errors = []
        if self.routing_key == "attributes" and not self.routing_attributes:
            errors.append('routing_attributes must be specified when routing_key is "attributes"')
        if self.routing_key != "attributes" and self.routing_attributes:
            errors.append(f'routing_attributes can only be used when routing_key is "attributes"; '
                          f"got {self.routing_key!r}")
        if self.resolver == lb_resolvers.ResolverConfig():  # left out: the decoder did not validate it
            errors += [f"resolver: {e}" for e in self.resolver.validate()]
        return errors


def _refs(config: Config) -> list[ExtensionRef]:
    refs = [dataclasses.replace(r, key=f"protocol::otlp::{r.key}") for r in exporter_refs(config.protocol.otlp)]
    return refs + storage_refs(config)


class _Backend:
    """One endpoint: its `otlp` pusher, whether it is in the ring, the calls it has open."""

    def __init__(self, settings: Settings[Config], endpoint: str) -> None:
        cfg = dataclasses.replace(settings.config.protocol.otlp, endpoint=endpoint)
        self.endpoint = endpoint
        own: Settings[otlp_grpc.Config] = Settings(f"{settings.id}[{endpoint}]", cfg, settings.telemetry,
                                                   settings.host, settings.reuse_port)
        self.pusher = otlp_grpc.GrpcPusher(own)
        self.healthy = True
        self.resolved = True
        self.calls = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.probe: asyncio.Task[None] | None = None

    async def push(self, batch: Batch) -> int:
        self.calls += 1
        self.idle.clear()
        try:
            return await self.pusher.push(batch)
        finally:
            self.calls -= 1
            if not self.calls:
                self.idle.set()


@dataclass
class _Outcome:
    delivered: int = 0
    rejected: int = 0  # refused for good, or given up: counted as failed
    error: RetryableError | None = None  # the last retryable failure of a part given up
    interrupted: bool = False  # the exporter stopped while a part waited for an endpoint

    def add(self, other: _Outcome) -> None:
        self.delivered += other.delivered
        self.rejected += other.rejected
        self.error = self.error or other.error
        self.interrupted = self.interrupted or other.interrupted


class LoadBalancer:
    """The pusher behind the exporter's queue: routes each batch over the ring, re-routes what an
    endpoint that stopped answering could not take."""

    def __init__(self, settings: Settings[Config]) -> None:
        self.settings = settings
        self.id = settings.id
        self.config = settings.config
        self.retry = self.config.protocol.otlp.retry_on_failure
        self.resolver = lb_resolvers.make(settings.id, self.config.resolver)
        self.backends: dict[str, _Backend] = {}
        self.ring = Ring(())
        self._ring_changed = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        # With a queue the data is acknowledged: it waits there for an endpoint rather than be given up.
        self.queued = self.config.sending_queue.enabled
        self.stopping = asyncio.Event()  # the exporter's: set, a part waiting for an endpoint stops waiting

    # -- membership
    async def start(self) -> None:
        await self.resolver.start(self.resolved)

    def resolved(self, endpoints: list[str]) -> None:
        for endpoint in endpoints:
            backend = self.backends.get(endpoint)
            if backend is None:
                self.backends[endpoint] = _Backend(self.settings, endpoint)
            elif not backend.resolved:  # back before its connections closed: a new member, healthy until shown not
                backend.resolved = backend.healthy = True
        for endpoint, backend in list(self.backends.items()):
            if endpoint not in endpoints and backend.resolved:
                backend.resolved = False
                self._close_when_idle(backend)
        self._rebuild()

    def _rebuild(self) -> None:
        ring = Ring(e for e, b in self.backends.items() if b.resolved and b.healthy)
        if ring.endpoints != self.ring.endpoints:
            log.info("exporter %s: the ring is now %s", self.id, ", ".join(ring.endpoints) or "empty")
            self.ring = ring
            self._ring_changed.set()
            self._ring_changed = asyncio.Event()

    def refusal(self) -> str | None:
        """Why new requests are refused at admission: the ring is empty."""
        return None if self.ring else "no endpoint in the ring (none answers); retry later"

    def _eject(self, backend: _Backend, error: RetryableError) -> None:
        if not backend.healthy:
            return
        backend.healthy = False
        log.warning("exporter %s: %s failed (%s); out of the ring until it answers again",
                    self.id, backend.endpoint, error)
        self._rebuild()
        if backend.probe is None and backend.resolved:
            backend.probe = asyncio.get_running_loop().create_task(self._probe(backend))

    async def _probe(self, backend: _Backend) -> None:
        try:
            while backend.resolved and backend.endpoint in self.backends:
                await asyncio.sleep(PROBE_INTERVAL)
                try:
                    async with asyncio.timeout(PROBE_TIMEOUT):
                        await backend.pusher.push(_EMPTY)
                except TimeoutError:
                    continue  # no answer
                except RetryableError as exc:
                    if not exc.answered:
                        continue  # no connection, or no answer in time
                    # the server answered (busy, say): it is up
                except PermanentError:
                    pass  # it answered
                backend.healthy = True
                log.info("exporter %s: %s answers again; back in the ring", self.id, backend.endpoint)
                self._rebuild()
                return
        finally:
            backend.probe = None

    def _close_when_idle(self, backend: _Backend) -> None:
        async def close() -> None:
            await backend.idle.wait()
            if not backend.resolved and self.backends.get(backend.endpoint) is backend:
                del self.backends[backend.endpoint]
                await backend.pusher.shutdown()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _routable(self, endpoint: str | None, cut: Ring) -> _Backend | None:
        """The backend to send a part to, if the ring is still the one the part was cut by."""
        if endpoint is None or cut.endpoints != self.ring.endpoints:
            return None
        return self.backends.get(endpoint)

    # -- sending
    async def push(self, batch: Batch) -> int:
        outcome = await self._send(None, self.ring, batch, time.monotonic(), Backoff(self.retry))
        if outcome.interrupted:
            # Given back to the queue whole (a persistent one keeps it): a part already delivered may be
            # delivered again after the restart (at-least-once).
            raise Interrupted(f"exporter {self.id}: stopped while no endpoint was in the ring")
        if outcome.delivered == 0 and outcome.error is not None:
            raise outcome.error  # nothing of it went out: the top-level retry may send it all again
        if outcome.error is not None:
            log.error("exporter %s: gave up on %d spans: %s", self.id, outcome.rejected, outcome.error)
        return outcome.rejected

    async def _send(self, endpoint: str | None, cut: Ring, batch: Batch, start: float,
                    backoff: Backoff) -> _Outcome:
        """Deliver `batch`, all of whose spans `endpoint` owned under the ring `cut` (None: not cut yet)."""
        failures = 0  # failed attempts in a row at `endpoint`
        while True:
            backend = self._routable(endpoint, cut)
            if backend is None:
                failures = 0
                cut = self.ring
                try:
                    parts = partition(batch.data(), batch.items, cut, self.config.routing_key,
                                      self.config.routing_attributes)
                except WireError as exc:
                    log.error("exporter %s: dropped %d spans that do not parse: %s", self.id, batch.items, exc)
                    return _Outcome(rejected=batch.items)
                except NoEndpoint as exc:
                    if self.queued:  # acknowledged: it waits for an endpoint, its retry time not running
                        waited = await self._until_endpoint()
                        if waited is None:
                            return _Outcome(interrupted=True)
                        start += waited
                        continue
                    error = RetryableError(f"exporter {self.id}: {exc}")
                else:
                    if len(parts) == 1:
                        endpoint = parts[0].endpoint
                        continue
                    total = _Outcome()
                    for outcome in await asyncio.gather(*(
                            self._send(p.endpoint, cut, Batch("traces", p.data, p.items, batch.context), start,
                                       backoff)
                            for p in parts)):
                        total.add(outcome)
                    return total
            else:
                try:
                    rejected = await backend.push(batch)
                    return _Outcome(delivered=batch.items - rejected, rejected=rejected)
                except PermanentError as exc:
                    log.error("exporter %s: %s refused %d spans: %s", self.id, backend.endpoint, batch.items, exc)
                    return _Outcome(rejected=batch.items)
                except RetryableError as exc:
                    failures += 1
                    if exc.unreachable or failures >= EJECT_AFTER:  # the part goes to its owners without it
                        self._eject(backend, exc)
                        endpoint = None
                        continue
                    error = exc  # busy, or slow: asked again after the server's delay or the backoff
            if not await self._wait(error, start, backoff):
                return _Outcome(rejected=batch.items, error=error)

    async def _wait(self, error: RetryableError, start: float, backoff: Backoff) -> bool:
        """Wait before the next attempt (the server's delay, else the backoff's), or for the ring to change
        when it is empty; False when `protocol::otlp::retry_on_failure` says to give up."""
        if not self.retry.enabled:
            return False
        delay = error.delay if error.delay is not None else backoff.next_delay()
        limit = self.retry.max_elapsed_time
        if limit > 0 and time.monotonic() - start + delay > limit:
            return False
        changed = self._ring_changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await changed.wait()
        return True

    async def _until_endpoint(self) -> float | None:
        """Wait until the ring has an endpoint (a probe or the resolver brings one back); the seconds
        waited, or None if the exporter stops first."""
        began = time.monotonic()
        while not self.ring:
            if self.stopping.is_set():
                return None
            waits = [asyncio.ensure_future(self._ring_changed.wait()), asyncio.ensure_future(self.stopping.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        return time.monotonic() - began

    async def shutdown(self) -> None:
        await self.resolver.shutdown()
        tasks = [*self._closing, *(b.probe for b in self.backends.values() if b.probe is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(b.pusher.shutdown() for b in self.backends.values()), return_exceptions=True)


def create(settings: Settings[Config]) -> Exporter:
    # The keys of request metadata a client authenticator reads (headers_setter's from_context).
    context_keys = CallHeaders(settings.id, settings.config.protocol.otlp, settings.host).context_keys()
    balancer = LoadBalancer(settings)
    exporter = Exporter(settings, balancer, settings.config, context_keys, refusal=balancer.refusal)
    balancer.stopping = exporter.stopping
    return exporter


FACTORY = ExporterFactory(type="loadbalancing", config=Config, create=create, signals=frozenset({"traces"}),
                          extension_refs=_refs)
