"""The `zpages` extension: the Collector's debugging pages, read from the running service at each request
(`Host.view()`, so a reload shows at once), in plain HTML with no external assets.

- `/debug/servicez`: build and runtime information, start time, uptime, which worker answered;
- `/debug/pipelinez`: each pipeline's receivers, processors and exporters (connectors marked), and the graph;
- `/debug/extensionz`: the extensions running;
- `/debug/featurez`: feature gates (the gateway has none);
- `/debug/tracez`: the gateway's own spans (`service::telemetry::traces`) by name: running, latency
  buckets and errors, with samples (`gateway.own_telemetry.tracez`).

With `service::workers`, each worker serves these pages on the shared port: the kernel picks one per
connection, and each page says which.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from html import escape

from aiohttp import web

from gateway import __version__
from gateway.component import ExtensionFactory, Host, Settings
from gateway.extensions.zpages_html import page, table, tracez_page
from gateway.own_telemetry.tracez import TracezStore
from gateway.telemetry import SpanTap
from gateway.transport.http_site import start_site
from pipelines.config_types import unsupported

_EXPVAR = ("Go's expvar variables (memstats, cmdline) have no Python counterpart: the process's CPU and memory "
           "are on /metrics (otelcol_process_*)")


@dataclass(frozen=True)
class Expvar:
    enabled: bool = unsupported(_EXPVAR, default=False)


@dataclass(frozen=True)
class Config:
    endpoint: str = "localhost:55679"
    expvar: Expvar = field(default_factory=Expvar)

    def validate(self) -> list[str]:
        return [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]


def process_start() -> float:
    """When this process started, in seconds since the epoch (from /proc; now, without it)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rpartition(b")")[2].split()[19])
        with open("/proc/uptime", "rb") as f:
            booted = time.time() - float(f.read().split()[0])
        return booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def _ids(names: tuple[str, ...], connectors: frozenset[str]) -> str:
    return "<br>".join(escape(n) + (" (connector)" if n in connectors else "") for n in names)


def _links() -> str:
    return " ".join(f'<a href="{p}">{p}</a>' for p in ("servicez", "pipelinez", "extensionz", "featurez", "tracez"))


class ZPages:
    def __init__(self, settings: Settings[Config]) -> None:
        self.config: Config = settings.config
        self._host: Host = settings.host
        self._reuse_port = settings.reuse_port
        self._worker = settings.worker
        self._tap: SpanTap | None = settings.telemetry.own_spans
        self._store = TracezStore()
        self._started = process_start()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def ready(self) -> None:
        pass

    def not_ready(self) -> None:
        pass

    def _who(self) -> str:
        pid = os.getpid()
        if self._worker is None:
            return f"process {pid}"
        return (f"answered by worker {self._worker} (pid {pid}), one of the gateway's workers: each serves "
                "its own pages on this port, and the kernel picked this one for the connection")

    async def _servicez(self, request: web.Request) -> web.Response:
        up = time.time() - self._started
        build = [("Command", "otel-trace-gateway"), ("Description", "OpenTelemetry trace gateway"),
                 ("Version", __version__)]
        runtime = [("StartTimestamp", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._started))),
                   ("Uptime", f"{up:.0f}s"), ("Python", platform.python_version()), ("OS", sys.platform),
                   ("Arch", platform.machine()), ("PID", str(os.getpid())),
                   ("Worker", "none (one process)" if self._worker is None else str(self._worker))]
        body = ("<b>Build Info:</b>" + table(("", ""), [(f"<b>{k}</b>", escape(v)) for k, v in build])
                + "<b>Runtime Info:</b>" + table(("", ""), [(f"<b>{k}</b>", escape(v)) for k, v in runtime])
                + f"<p>{_links()}</p>")
        return page("Service otel-trace-gateway", body, self._who())

    async def _pipelinez(self, request: web.Request) -> web.Response:
        view = self._host.view()
        rows = []
        for p in view.pipelines:
            rows.append((escape(p.id), escape(p.id.partition("/")[0]), _ids(p.receivers, p.connectors),
                         "&rarr; " + " &rarr; ".join(escape(n) for n in p.processors),
                         _ids(p.exporters, p.connectors)))
        body = (table(("FullName", "InputType", "Receivers", "Processors", "Exporters"), rows)
                + f"<h3>Graph</h3><pre>{escape(view.graph)}</pre>")
        return page("builtPipelines", body, self._who())

    async def _extensionz(self, request: web.Request) -> web.Response:
        rows = [(escape(eid),) for eid in self._host.view().extensions]
        return page("Extensions", table(("Extension",), rows), self._who())

    async def _featurez(self, request: web.Request) -> web.Response:
        body = (table(("ID", "Enabled", "Description", "Stage", "From Version", "To Version", "Reference URL"), [])
                + "<p>This gateway has no feature gates: what the Collector puts behind one is either done "
                "(and said in the README) or refused by <code>validate</code>.</p>")
        return page("Feature Gates", body, self._who())

    async def _tracez(self, request: web.Request) -> web.Response:
        if self._tap is None:
            body = ("<p>The gateway's own traces are off: configure <code>service::telemetry::traces</code> "
                    "(a processor and an exporter, and a sampler that keeps spans) to see its spans here.</p>")
        else:
            body = tracez_page(self._store.snapshot(), request.query)
        return page("Trace Spans", body, self._who())

    async def start(self) -> None:
        if self._tap is not None:
            self._tap.watch(self._store)
        app = web.Application()
        for name, handler in (("servicez", self._servicez), ("pipelinez", self._pipelinez),
                              ("extensionz", self._extensionz), ("featurez", self._featurez),
                              ("tracez", self._tracez)):
            app.router.add_get(f"/debug/{name}", handler)
        try:
            self._runner, self.port = await start_site(app, self.config.endpoint, reuse_port=self._reuse_port)
        except BaseException:
            if self._tap is not None:
                self._tap.unwatch(self._store)
            raise

    async def shutdown(self) -> None:
        if self._tap is not None:
            self._tap.unwatch(self._store)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def create(settings: Settings[Config]) -> ZPages:
    return ZPages(settings)


FACTORY = ExtensionFactory(type="zpages", config=Config, create=create)
