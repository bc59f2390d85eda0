"""Builds the pipeline graph from a loaded config and runs it: start downstream-first (extensions,
exporters, processors, receivers), stop receivers-first so every stage drains into the next."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway import components
from gateway.component import Component, Consumer, Settings
from gateway.config.model import GatewayConfig
from gateway.fanout import Counted, Fanout
from gateway.metrics_server import MetricsServer
from gateway.processors.stage import ProcessorStage
from gateway.telemetry import Telemetry
from pipelines.batch import Signal

log = logging.getLogger("gateway.service")


class ShutdownErrors(Exception):
    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__("; ".join(f"{type(e).__name__}: {e}" for e in errors))
        self.errors = errors


class Service:
    def __init__(self, config: GatewayConfig, telemetry: Telemetry | None = None, reuse_port: bool = False) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry()
        self.reuse_port = reuse_port
        self.extensions: dict[str, Any] = {}
        self.exporters: dict[str, Any] = {}
        self.stages: list[Any] = []
        self.receivers: dict[str, Any] = {}
        self.metrics_server: MetricsServer | None = None
        self._started: list[Component] = []

    # Host
    def extension(self, component_id: str) -> Any:
        if component_id not in self.extensions:
            raise KeyError(f"extension {component_id!r} is not configured or not enabled in service::extensions")
        return self.extensions[component_id]

    def _settings(self, cid: str, config: Any) -> Settings:
        return Settings(cid, config, self.telemetry, self, self.reuse_port)

    def _factory(self, kind: components.Kind, cid: str) -> components.Factory:
        factory = components.lookup(kind, cid.partition("/")[0])
        assert factory is not None, f"{kind}::{cid} was validated at load"
        return factory

    def build(self) -> None:
        cfg = self.config
        for eid in cfg.service.extensions:
            self.extensions[eid] = self._factory("extensions", eid).create(self._settings(eid, cfg.extensions[eid]))
        heads: dict[str, dict[Signal, list[Consumer]]] = {}
        for pid, pipe in cfg.service.pipelines.items():
            signal: Signal = pid.partition("/")[0]  # type: ignore[assignment]
            exporters: list[Consumer] = []
            for xid in pipe.exporters:
                if xid not in self.exporters:
                    factory = self._factory("exporters", xid)
                    self.exporters[xid] = factory.create(self._settings(xid, cfg.exporters[xid]))
                exporters.append(self.exporters[xid])
            node: Consumer = Counted(self.telemetry.pipeline_outgoing(pid), Fanout(exporters))
            for prid in reversed(pipe.processors):
                settings = self._settings(prid, cfg.processors[prid])
                made = self._factory("processors", prid).create(settings, node, signal)
                stage = made if hasattr(made, "consume") else ProcessorStage(settings, made, node, signal)
                self.stages.append(stage)
                node = stage
            entry = Counted(self.telemetry.pipeline_incoming(pid), node)
            for rid in pipe.receivers:
                heads.setdefault(rid, {}).setdefault(signal, []).append(entry)
        for rid, by_signal in heads.items():
            consumers: dict[Signal, Consumer] = {s: Fanout(c) for s, c in by_signal.items()}
            self.receivers[rid] = self._factory("receivers", rid).create(
                self._settings(rid, cfg.receivers[rid]), consumers
            )
        address = cfg.metrics_address()
        if address:
            self.metrics_server = MetricsServer(address, self.telemetry.registry, self.reuse_port)

    async def start(self) -> None:
        """Start every component, downstream first. If one fails, what had started is shut down again
        (within 5 s) before the error is raised, so a failed start leaves no listener, task or file open."""
        if not self.receivers:
            self.build()
        order: list[Component] = [
            *self.extensions.values(),
            *([self.metrics_server] if self.metrics_server else []),
            *self.exporters.values(),
            *reversed(self.stages),
            *self.receivers.values(),
        ]
        try:
            for component in order:
                await component.start()
                self._started.append(component)
        except Exception:
            with contextlib.suppress(ShutdownErrors):
                await self.shutdown(deadline=5.0)
            raise
        for ext in self.extensions.values():
            if hasattr(ext, "ready"):
                ext.ready()
        log.info("gateway started: %d pipeline(s), %d receiver(s), %d exporter(s)",
                 len(self.config.service.pipelines), len(self.receivers), len(self.exporters))

    async def shutdown(self, deadline: float | None = None) -> None:
        """Receivers first (stop accepting), then processors, then exporters drain their queues, all
        within `deadline` (service::shutdown_timeout): the stages of a phase stop together, so one dead
        backend cannot eat the other exporters' share of the deadline."""
        for ext in self.extensions.values():
            if hasattr(ext, "not_ready"):
                ext.not_ready()
        timeout = deadline if deadline is not None else self.config.service.shutdown_timeout
        started = set(map(id, self._started))
        phases: list[list[Any]] = [
            list(self.receivers.values()),
            list(self.stages),
            list(self.exporters.values()),
            [*([self.metrics_server] if self.metrics_server else []), *reversed(list(self.extensions.values()))],
        ]
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        errors: list[BaseException] = []
        for phase in phases[:3]:
            live = [c for c in phase if id(c) in started]
            results = await asyncio.gather(*(self._stop_one(c, end) for c in live), return_exceptions=True)
            errors.extend(r for r in results if isinstance(r, BaseException))
        # Extensions (file storage among them) close after every exporter, one by one in reverse order.
        for component in phases[3]:
            if id(component) in started:
                try:
                    await self._stop_one(component, end)
                except Exception as exc:
                    errors.append(exc)
        self._started.clear()
        if errors:
            raise ShutdownErrors(errors)

    async def _stop_one(self, component: Any, end: float) -> None:
        loop = asyncio.get_running_loop()
        name = getattr(component, "id", type(component).__name__)
        if hasattr(component, "drain"):
            # Leave a little of the deadline for closing connections and files after the drain.
            await component.drain(max(0.0, end - loop.time() - 0.5))
        try:
            await asyncio.wait_for(component.shutdown(), max(0.5, end - loop.time()))
        except TimeoutError:
            raise TimeoutError(f"{name} did not stop within the shutdown deadline") from None
