"""The `routing` connector: each part of a request goes to the pipelines whose route matches it
(`pipelines.connectors.routing`: OTTL conditions on the resource, the span or log record, or the
request's context), unmatched parts to `default_pipelines`.

Delivery holds through it: the request is answered once every pipeline a part of it went to holds
that part. Before any pipeline takes a part, every target is asked (`admit`), so one full queue behind
one route refuses the request as a whole and the client's retry duplicates nothing elsewhere. Items
that match no route with no `default_pipelines` are dropped, as in the Collector, and counted in
`otelcol_gateway_connector_unrouted_*` (our addition).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from gateway.component import ConnectorFactory, Consumer, Settings
from gateway.fanout import consume_all
from pipelines.batch import Batch, Signal
from pipelines.connectors.routing import Config, Router

log = logging.getLogger("gateway.connector.routing")

# Under `error_mode: ignore`, evaluation errors are logged at most this often per connector.
_LOG_EVERY = 10.0


class RoutingConnector:
    def __init__(self, settings: Settings[Config], pipelines: Mapping[str, Consumer], signal: Signal) -> None:
        self.id = settings.id
        self._router = Router(settings.config, signal)
        for warning in self._router.warnings:
            log.warning("%s: %s", self.id, warning)
        self._pipelines = pipelines
        self._unrouted = settings.telemetry.dropped_spans(
            signal, settings.id, "unrouted", settings.telemetry.connector_unrouted(signal, settings.id))
        self._logged_at = -_LOG_EVERY

    async def start(self) -> None:
        pass

    def _deliveries(self, batch: Batch, count: bool = True) -> list[tuple[Consumer, Batch]]:
        """Where each part of `batch` goes; `count`: log skipped conditions and count unrouted items
        (in `consume` only: `admit` asks first and must change nothing)."""
        routed = self._router.route(batch)
        if count:
            if routed.errors and time.monotonic() - self._logged_at >= _LOG_EVERY:
                self._logged_at = time.monotonic()
                log.warning("%s: %d route condition(s) failed and were skipped (error_mode: ignore); first: %s",
                            self.id, len(routed.errors), routed.errors[0])
            if routed.unrouted:
                self._unrouted.inc(routed.unrouted)
        # Every pipeline gets its own handle: a processor that changes its copy changes no other's.
        return [(self._pipelines[pid], part.share()) for pids, part in routed.parts for pid in pids]

    def admit(self, batch: Batch) -> None:
        # Asked only by a fan-out with several branches before `consume`, which routes again: the cost
        # of knowing which targets to ask.
        for consumer, part in self._deliveries(batch, count=False):
            consumer.admit(part)

    async def consume(self, batch: Batch) -> None:
        deliveries = self._deliveries(batch)
        if len(deliveries) == 1:
            await deliveries[0][0].consume(deliveries[0][1])
            return
        for consumer, part in deliveries:
            consumer.admit(part)
        await consume_all(deliveries)

    async def shutdown(self) -> None:
        pass


def create(settings: Settings[Config], pipelines: Mapping[str, Consumer], signal: Signal) -> RoutingConnector:
    return RoutingConnector(settings, pipelines, signal)


FACTORY = ConnectorFactory(
    type="routing", config=Config, create=create,
    pairs=frozenset({("traces", "traces"), ("metrics", "metrics"), ("logs", "logs")}),
    check_for_signal=Config.check_signal, check_pipelines=Config.check_pipelines,
)
