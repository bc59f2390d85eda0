"""Runs the pipeline graph of a loaded config (`gateway.graph`): start downstream-first (extensions,
exporters, connectors and processors consumers first, receivers), stop receivers-first so every stage
drains into the next."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from gateway import graph
from gateway.admin.server import AdminServer
from gateway.component import (
    Component,
    ComponentKind,
    ExporterNode,
    Extension,
    ServiceView,
    Settings,
    Status,
    StatusEvent,
    StatusSource,
)
from gateway.config.model import GatewayConfig
from gateway.config.view import config_view
from gateway.metrics_server import MetricsServer
from gateway.own_telemetry.setup import OwnTelemetry
from gateway.status import StatusHub
from gateway.telemetry import Telemetry

log = logging.getLogger("gateway.service")


class ShutdownErrors(Exception):
    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__("; ".join(f"{type(e).__name__}: {e}" for e in errors))
        self.errors = errors


class Service:
    def __init__(self, config: GatewayConfig, telemetry: Telemetry | None = None, reuse_port: bool = False,
                 env: Mapping[str, str] | None = None, worker: int | None = None) -> None:
        """`env`: where the pod's name and namespace for the own telemetry's resource are read (os.environ);
        `worker`: this process's number among `service::workers`."""
        self.config = config
        self.telemetry = telemetry or Telemetry(level=config.service.telemetry.metrics.level)
        self.own = OwnTelemetry(config.service.telemetry, self.telemetry.registry,
                                os.environ if env is None else env)
        self.telemetry.tracer = self.own.traces.tracer
        self.telemetry.own_spans = self.own.traces if self.own.traces.tracer is not None else None
        self.reuse_port = reuse_port
        self.worker = worker
        self.graph: graph.Graph | None = None
        self.metrics_server: MetricsServer | None = None
        self.admin: AdminServer | None = None
        self._started: list[Component] = []
        self.status = StatusHub()

    # Host
    def extension(self, component_id: str) -> Extension:
        extensions = self.graph.extensions if self.graph is not None else {}
        if component_id not in extensions:
            raise KeyError(f"extension {component_id!r} is not configured or not enabled in service::extensions")
        return extensions[component_id]

    def view(self) -> ServiceView:
        g = self.graph
        if g is None:
            return ServiceView()
        return ServiceView(g.pipeline_views(), tuple(g.extensions), g.describe())

    def extensions(self) -> list[Extension]:
        return list(self.graph.extensions.values()) if self.graph is not None else []

    def component_status(self) -> StatusSource:
        return self.status

    def config_view(self) -> Mapping[str, object]:
        return config_view(self.config)

    def settings(self, cid: str, config: Any, kind: ComponentKind) -> Settings[Any]:
        return Settings(cid, config, self.telemetry, self, self.reuse_port, worker=self.worker,
                        status=self.status.reporter(kind, cid))

    def _report(self, name: str, status: Status, error: BaseException | None = None) -> None:
        """The status of the component at node key `name` (the metrics server has none)."""
        instance = self.graph.instances().get(name) if self.graph is not None else None
        if instance is not None:
            self.status.report(instance, StatusEvent(status, None if error is None else f"{error}"))

    def build(self) -> graph.Graph:
        # Extensions are created first and looked up (`extension`) while the rest is built.
        self.graph = graph.Graph()
        graph.build(self.config, self.telemetry, self.settings, self.graph)
        self.status.replace(self.graph.instances().values())
        address = self.config.metrics_address()
        if address:
            self.metrics_server = MetricsServer(address, self.telemetry.registry, self.reuse_port)
        if self.config.service.admin.enabled:
            self.admin = AdminServer(self.config.service.admin, self, self.reuse_port)
        return self.graph

    def _phases(self, g: graph.Graph) -> list[list[tuple[str, Component]]]:
        """What stops together, in the order it stops: receivers, processors and connectors, exporters,
        then the metrics server and extensions (one by one, in reverse)."""
        exporters: list[tuple[str, Component]] = []
        for x in g.exporters.values():
            assert x.component is not None
            exporters.append((x.key, x.component))
        receivers: list[tuple[str, Component]] = []
        for r in g.receivers.values():
            assert r.component is not None
            receivers.append((r.key, r.component))
        extensions = [(f"extension:{eid}", ext) for eid, ext in reversed(g.extensions.items())]
        metrics: list[tuple[str, Component]] = []
        if self.metrics_server is not None:
            metrics.append(("telemetry:metrics", self.metrics_server))
        if self.admin is not None:
            metrics.append(("service:admin", self.admin))
        return [receivers, list(reversed(g.stages())), exporters, [*metrics, *extensions]]

    async def start(self) -> None:
        """Start every component, downstream first. If one fails, what had started is shut down again
        (within 5 s) before the error is raised, so a failed start leaves no listener, task or file open."""
        g = self.graph if self.graph is not None else self.build()
        receivers, stages, exporters, last = self._phases(g)
        order = [*reversed(last), *exporters, *reversed(stages), *receivers]
        self.own.start()
        try:
            for name, component in order:
                self._report(name, "StatusStarting")
                try:
                    await component.start()
                except Exception as exc:
                    self._report(name, "StatusPermanentError", exc)
                    raise
                self._started.append(component)
                self._report(name, "StatusOK")
        except Exception:
            with contextlib.suppress(ShutdownErrors):
                await self.shutdown(deadline=5.0)
            raise
        for ext in g.extensions.values():
            ext.ready()
        log.info("gateway started: %d pipeline(s), %d receiver(s), %d connector(s), %d exporter(s)",
                 len(g.pipelines), len(g.receivers), len(g.connectors), len(g.exporters))

    def swap(self, config: GatewayConfig, g: graph.Graph) -> None:
        """Run `g` (of `config`) from now on, every component of it started (`gateway.reload`)."""
        self.config = config
        self.graph = g
        self._started = [c for phase in self._phases(g) for _, c in phase]
        self.status.replace(g.instances().values())
        known = self.status.statuses()
        for instance in g.instances().values():
            if instance not in known:  # started by the reload
                self.status.report(instance, StatusEvent("StatusStarting"))
                self.status.report(instance, StatusEvent("StatusOK"))

    async def shutdown(self, deadline: float | None = None) -> None:
        """Receivers first (stop accepting), then processors and connectors one by one (upstream first),
        then exporters drain their queues, all within `deadline` (service::shutdown_timeout): receivers
        stop together, and exporters drain together, so one dead backend cannot eat the other exporters'
        share of the deadline."""
        g = self.graph
        if g is None:
            return
        for ext in g.extensions.values():
            ext.not_ready()
        timeout = deadline if deadline is not None else self.config.service.shutdown_timeout
        started = set(map(id, self._started))
        # Exporters drain (typed `ExporterNode`, from the graph) between stages and extensions.
        receivers, stages, _, last = self._phases(g)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        errors: list[BaseException] = []
        live = [(n, c) for n, c in receivers if id(c) in started]
        results = await asyncio.gather(*(self._stop_one(n, c, end) for n, c in live), return_exceptions=True)
        errors.extend(r for r in results if isinstance(r, BaseException))
        # Processors and connectors one by one, upstream first: one that still sends at shutdown (a tail
        # sampler's held traces) does so before the stages after it stop.
        await self._stop_in_turn(stages, started, end, errors)
        drains = [self._drain_one(x.key, x.component, end) for x in g.exporters.values()
                  if x.component is not None and id(x.component) in started]
        results = await asyncio.gather(*drains, return_exceptions=True)
        errors.extend(r for r in results if isinstance(r, BaseException))
        # Extensions (file storage among them) close after every exporter, one by one in reverse order.
        await self._stop_in_turn(last, started, end, errors)
        self._started.clear()
        # Last, so the spans and metrics of the shutdown itself go out too.
        try:
            await self.own.shutdown()
        except Exception as exc:
            errors.append(exc)
        if errors:
            raise ShutdownErrors(errors)

    async def _stop_in_turn(self, components: list[tuple[str, Component]], started: set[int], end: float,
                            errors: list[BaseException]) -> None:
        """Stop the started ones of `components` one after the other; their errors go to `errors`."""
        for name, component in components:
            if id(component) in started:
                try:
                    await self._stop_one(name, component, end)
                except Exception as exc:
                    errors.append(exc)

    async def _drain_one(self, name: str, exporter: ExporterNode, end: float) -> None:
        loop = asyncio.get_running_loop()
        self._report(name, "StatusStopping")
        # Leave a little of the deadline for closing connections and files after the drain.
        await exporter.drain(max(0.0, end - loop.time() - 0.5))
        await self._stop_one(name, exporter, end)

    async def _stop_one(self, name: str, component: Component, end: float) -> None:
        loop = asyncio.get_running_loop()
        self._report(name, "StatusStopping")
        try:
            await asyncio.wait_for(component.shutdown(), max(0.5, end - loop.time()))
        except TimeoutError:
            error = TimeoutError(f"{name} did not stop within the shutdown deadline")
            self._report(name, "StatusPermanentError", error)
            raise error from None
        except Exception as exc:
            self._report(name, "StatusPermanentError", exc)
            raise
        self._report(name, "StatusStopped")
