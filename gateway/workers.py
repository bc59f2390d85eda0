"""`service.workers: N`: a supervisor and N worker processes sharing the listening ports.

Each worker is a whole gateway (`python -m gateway.workers`) whose receivers bind the configured
ports with SO_REUSEPORT, so the kernel spreads connections across them. A worker's own health and
metrics endpoints move to private loopback ports that it reports to the supervisor on a pipe; the
supervisor serves the public ones: /metrics sums the workers' series (so a scrape sees one gateway,
not whichever worker the kernel picked), health is 200 only while every worker answers 200, and the
admin endpoint (`service::admin`) answers for all workers (`gateway.admin.workers`).

The supervisor restarts a worker that dies (with a backoff, logged), and on SIGTERM or SIGINT
passes SIGTERM to every worker, waits for them to drain, and exits 0 if all of them did. Workers run
in their own session, so a terminal's Ctrl-C reaches only the supervisor, which then stops them in
order; a worker whose supervisor vanishes sees its stdin close and shuts down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gateway import registry
from gateway.admin.workers import Target, WorkersAdmin
from gateway.auth import Authenticator
from gateway.component import Extension, ServiceView, Settings, StatusSource
from gateway.config.load import ConfigError, Loaded, load_files
from gateway.config.model import GatewayConfig
from gateway.extensions.health import HealthCheck
from gateway.metrics_server import MetricsServer
from gateway.reload import admin_reload_error, admin_restart_needed
from gateway.serve import serve, setup_logging, stop_event
from gateway.service import Service
from gateway.status import StatusHub
from gateway.telemetry import ProcessCollector, Telemetry

log = logging.getLogger("gateway.workers")

STATUS_FD_ENV = "OTELGW_WORKER_STATUS_FD"
_READY_TIMEOUT = 60.0
_PROBE_TIMEOUT = 2.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0
# A worker that ran this long before dying is restarted at once, with its backoff reset.
_STABLE_AFTER = 30.0
# Series combined by maximum rather than sum (how long the gateway has been up is not a total).
MAX_ACROSS_WORKERS = frozenset({"otelcol_process_uptime_seconds"})
_SUMMABLE_TYPES = frozenset({"counter", "histogram", "summary"})

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# ------------------------------------------------------------------ config of a worker


def worker_config(config: GatewayConfig, index: int) -> GatewayConfig:
    """The config worker `index` runs: the same pipelines on the same ports, with its own health, metrics
    and admin endpoints on private loopback ports, in clear (the supervisor serves the configured ones), and its
    own subdirectory of each file_storage (two processes must never share queue files; a restarted
    worker finds its queue again under the same index) and its own pprof `save_to_file`
    (`cpu.pprof` becomes `cpu.worker-1.pprof`)."""
    extensions = dict(config.extensions)
    for eid in config.service.extensions:
        kind = eid.partition("/")[0]
        if kind == "health_check":
            extensions[eid] = replace(extensions[eid], endpoint="127.0.0.1:0", tls=None)
        elif kind == "file_storage":
            directory = os.path.join(extensions[eid].directory, f"worker-{index}")
            extensions[eid] = replace(extensions[eid], directory=directory)
        elif kind == "pprof" and extensions[eid].save_to_file:
            stem, ext = os.path.splitext(extensions[eid].save_to_file)
            extensions[eid] = replace(extensions[eid], save_to_file=f"{stem}.worker-{index}{ext}")
    metrics = replace(config.service.telemetry.metrics, address="127.0.0.1:0", readers=())
    admin = replace(config.service.admin, endpoint="127.0.0.1:0", tls=None)
    service = replace(config.service, workers=1, telemetry=replace(config.service.telemetry, metrics=metrics),
                      admin=admin)
    return replace(config, extensions=extensions, service=service)


# ------------------------------------------------------------------ metrics across workers


@dataclass
class _Family:
    name: str
    documentation: str
    type: str
    series: Series = field(default_factory=dict)


def _parse(text: str) -> dict[str, _Family]:
    return _families(text_string_to_metric_families(text))


def _families(metrics: Iterable[Metric]) -> dict[str, _Family]:
    out: dict[str, _Family] = {}
    for fam in metrics:
        f = out.setdefault(fam.name, _Family(fam.name, fam.documentation, fam.type))
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            f.series[key] = f.series.get(key, 0.0) + s.value
    return out


def aggregate(per_worker: Iterable[dict[str, _Family]]) -> dict[str, _Family]:
    """One set of series from many workers' scrapes: every series summed (counters, histograms,
    queue sizes and capacities, memory, CPU), except those in MAX_ACROSS_WORKERS."""
    out: dict[str, _Family] = {}
    for families in per_worker:
        for name, fam in families.items():
            agg = out.setdefault(name, _Family(name, fam.documentation, fam.type))
            take_max = name in MAX_ACROSS_WORKERS
            for key, value in fam.series.items():
                if key in agg.series:
                    value = max(agg.series[key], value) if take_max else agg.series[key] + value
                agg.series[key] = value
    return out


def _metric(fam: _Family) -> Metric:
    m = Metric(fam.name, fam.documentation, fam.type)
    for (sample, labels), value in fam.series.items():
        m.add_sample(sample, dict(labels), value)
    return m


class _Snapshot(Collector):
    def __init__(self, families: dict[str, _Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for fam in self._families.values():
            yield _metric(fam)


def render(families: dict[str, _Family]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return bytes(generate_latest(registry))


def _counters_only(families: dict[str, _Family]) -> dict[str, _Family]:
    return {n: f for n, f in families.items() if f.type in _SUMMABLE_TYPES and n not in MAX_ACROSS_WORKERS}


# ------------------------------------------------------------------ the supervisor


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    metrics_port: int | None = None
    admin_port: int | None = None
    health: list[tuple[int, str]] = field(default_factory=list)
    ready: bool = False
    started_at: float = 0.0
    backoff: float = _BACKOFF_FIRST
    last_scrape: dict[str, _Family] = field(default_factory=dict)
    # A SIGHUP came while it was starting: it reloads once ready.
    reload_due: bool = False


class _Health(HealthCheck):
    """The configured health_check endpoint, answered for all workers at once."""

    def __init__(self, settings: Settings[Any], supervisor: Supervisor) -> None:
        super().__init__(settings)
        self._supervisor = supervisor

    async def _handle(self, request: web.Request) -> web.Response:
        if self._ready and not await self._supervisor.workers_healthy():
            body = {"status": "Server not available", "workers": self._supervisor.describe()}
            return web.Response(text=json.dumps(body), status=503, content_type="application/json")
        return await super()._handle(request)


class _Metrics(MetricsServer):
    def __init__(self, address: str, supervisor: Supervisor) -> None:
        super().__init__(address, CollectorRegistry(auto_describe=False))
        self._supervisor = supervisor

    async def _handle(self, request: web.Request) -> web.Response:
        body = await self._supervisor.metrics_text()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class Supervisor:
    def __init__(self, config_paths: list[str], loaded: Loaded) -> None:
        self.config_paths = list(config_paths)
        self.config_args = [arg for path in config_paths for arg in ("--config", path)]
        self.config = loaded.config
        self.workers = [_Worker(i) for i in range(1, self.config.service.workers + 1)]
        self.restarts = 0
        self._stopping = False
        self._process = ProcessCollector()
        self._retired: dict[str, _Family] = {}
        self._session: aiohttp.ClientSession | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        telemetry = Telemetry()
        self._health = [
            _Health(Settings(eid, self.config.extensions[eid], telemetry, self), self)
            for eid in self.config.service.extensions
            if eid.partition("/")[0] == "health_check"
        ]
        address = self.config.metrics_address()
        self._metrics = _Metrics(address, self) if address else None
        admin = self.config.service.admin
        # The admin endpoint's authenticator, run here too: the supervisor answers its routes. A reload
        # builds it again from the new config (`_reload_admin`).
        self._auth = self._admin_auth(self.config)
        self._admin_config = self.config  # the config `_auth` was built from
        self._admin_reloading = asyncio.Lock()
        self._admin = WorkersAdmin(admin, self._admin_targets, self._authenticator) if admin.enabled else None

    # A Host for the health extension and the admin endpoint's authenticator, which ask for nothing
    # (healthcheckv2 is refused with workers).
    def extension(self, component_id: str) -> Any:
        raise KeyError(component_id)

    def _admin_auth(self, config: GatewayConfig) -> Extension | None:
        admin = config.service.admin
        if not admin.enabled or admin.auth is None:
            return None
        eid = admin.auth.authenticator
        return registry.extension(eid.partition("/")[0]).create(
            Settings(eid, config.extensions[eid], Telemetry(), self))

    def _authenticator(self) -> Authenticator | None:
        if self._auth is None:
            return None
        if not isinstance(self._auth, Authenticator):
            raise KeyError("the admin endpoint's auth names no server authenticator")
        return self._auth

    def _admin_targets(self) -> list[Target]:
        """The workers running now, with their admin ports; one restarting is left out."""
        return [Target(w.index, w.proc.pid, w.admin_port) for w in self.workers
                if w.ready and w.admin_port and w.proc is not None and w.proc.returncode is None]

    def view(self) -> ServiceView:
        return ServiceView()

    def component_status(self) -> StatusSource:
        return StatusHub()

    def config_view(self) -> Mapping[str, object]:
        return {}

    # -- workers
    async def _spawn(self, w: _Worker) -> bool:
        """Start worker `w` and wait for it to report ready; False if it died first."""
        r, wr = os.pipe()
        env = {**os.environ, STATUS_FD_ENV: str(wr)}
        w.reload_due = False  # it reads the files from here on
        try:
            w.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.workers", *self.config_args, "--index", str(w.index),
                stdin=asyncio.subprocess.PIPE, pass_fds=(wr,), env=env, start_new_session=True,
            )
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(wr)
        w.started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(r, "rb"))
        try:
            line = await asyncio.wait_for(reader.readline(), _READY_TIMEOUT)
        except TimeoutError:
            line = b""
        finally:
            transport.close()
        if not line:
            return False
        status = json.loads(line)
        w.metrics_port = status.get("metrics_port")
        w.admin_port = status.get("admin_port")
        w.health = [(int(port), str(path)) for port, path in status.get("health", [])]
        w.ready = True
        log.info("worker %d ready (pid %d, admin on 127.0.0.1:%s)", w.index, w.proc.pid, w.admin_port)
        if w.reload_due:
            self._tell_reload(w)
        return True

    def _watch(self, w: _Worker) -> None:
        task = asyncio.get_running_loop().create_task(self._keep_alive(w))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _keep_alive(self, w: _Worker) -> None:
        while not self._stopping:
            assert w.proc is not None
            code = await w.proc.wait()
            w.ready = False
            # Keep what the dead worker had counted, so the totals never go backwards.
            self._retired = aggregate([self._retired, _counters_only(w.last_scrape)])
            w.last_scrape = {}
            if self._stopping:
                return
            ran = time.monotonic() - w.started_at
            if ran > _STABLE_AFTER:
                w.backoff = _BACKOFF_FIRST
            log.error("worker %d (pid %d) exited with code %s after %.1fs; restarting in %.1fs",
                      w.index, w.proc.pid, code, ran, w.backoff)
            await asyncio.sleep(w.backoff)
            w.backoff = min(w.backoff * 2, _BACKOFF_MAX)
            if self._stopping:
                return
            self.restarts += 1
            try:
                started = await self._spawn(w)
            except Exception:
                # Nobody awaits this task: an error here would silently end the worker's restarts.
                log.exception("worker %d could not be started again", w.index)
                started = False
            if not started:
                log.error("worker %d failed to start again", w.index)

    async def workers_healthy(self) -> bool:
        if not all(w.ready and w.proc is not None and w.proc.returncode is None for w in self.workers):
            return False
        session = self._client()

        async def probe(port: int, path: str) -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    return resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        results = await asyncio.gather(*(probe(p, path) for w in self.workers for p, path in w.health))
        return all(results)

    def describe(self) -> list[dict[str, Any]]:
        return [{"worker": w.index, "pid": w.proc.pid if w.proc else None, "ready": w.ready} for w in self.workers]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_PROBE_TIMEOUT))
        return self._session

    async def metrics_text(self) -> bytes:
        session = self._client()

        async def scrape(w: _Worker) -> None:
            if not (w.ready and w.metrics_port):
                return
            try:
                async with session.get(f"http://127.0.0.1:{w.metrics_port}/metrics") as resp:
                    w.last_scrape = _parse(await resp.text())
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("cannot scrape worker %d: %s", w.index, exc)

        await asyncio.gather(*(scrape(w) for w in self.workers))
        families = aggregate([self._retired, *(w.last_scrape for w in self.workers), self._own()])
        return render(families)

    def _own(self) -> dict[str, _Family]:
        """The supervisor's share of the process metrics, and the state of the workers."""
        up = sum(1 for w in self.workers if w.ready)
        return {
            **_families(self._process.collect()),
            "otelcol_gateway_workers": _Family(
                "otelcol_gateway_workers", "Worker processes running and ready", "gauge",
                {("otelcol_gateway_workers", ()): float(up)}),
            "otelcol_gateway_worker_restarts": _Family(
                "otelcol_gateway_worker_restarts", "Worker processes restarted after they died", "counter",
                {("otelcol_gateway_worker_restarts_total", ()): float(self.restarts)}),
        }

    # -- the whole run
    def _reload(self) -> None:
        """SIGHUP: each worker reads, validates and swaps in the config files itself (`gateway.reload`).
        A worker still starting may have read the files before they changed: it is told once ready. The
        supervisor reads them too, for the admin endpoint's `auth` it checks (a rotated token)."""
        log.info("SIGHUP: the workers reload the config")
        task = asyncio.get_running_loop().create_task(self._reload_admin())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        for w in self.workers:
            if w.ready:
                self._tell_reload(w)
            else:
                w.reload_due = True

    async def _reload_admin(self) -> None:
        """The admin endpoint's authenticator built again from the config files, as the workers build
        theirs; an invalid config changes nothing (each worker logs why). One at a time, in SIGHUP order."""
        async with self._admin_reloading:
            await self._reload_admin_now()

    async def _reload_admin_now(self) -> None:
        try:
            config = load_files(self.config_paths).config
        except (ConfigError, OSError):
            return
        if admin_reload_error(self._admin_config, config) is not None:
            return  # refused: each worker logs why, and the running auth stays
        old, self._admin_config = self._admin_config, config
        admin_restart_needed(old, config)
        if _auth_of(old) == _auth_of(config):
            return
        auth = self._admin_auth(config) if self._admin is not None else None
        if auth is not None:
            try:
                await auth.start()
            except Exception as exc:
                self._admin_config = old
                log.error("admin endpoint: the reloaded authenticator did not start, the running one stays: %s",
                          exc)
                return
        auth, self._auth = self._auth, auth
        if auth is not None:
            with contextlib.suppress(Exception):
                await auth.shutdown()

    @staticmethod
    def _tell_reload(w: _Worker) -> None:
        w.reload_due = False
        if w.proc is not None and w.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGHUP)

    async def run(self) -> int:
        stop = stop_event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload)
        servers: list[Any] = [*self._health, *([self._metrics] if self._metrics else []),
                              *([self._admin] if self._admin else [])]
        try:
            if self._auth is not None:
                await self._auth.start()
            for server in servers:
                await server.start()
            started = await asyncio.gather(*(self._spawn(w) for w in self.workers))
        except Exception as exc:
            log.error("gateway failed to start: %s", exc)
            started = [False]
        if not all(started):
            log.error("a worker failed to start; stopping the others")
            await self._stop_workers()
            await self._close(servers)
            return 1
        for w in self.workers:
            self._watch(w)
        for h in self._health:
            h.ready()
        log.info("gateway started with %d workers", len(self.workers))
        await stop.wait()
        log.info("shutting down: draining %d workers within %.0fs", len(self.workers),
                 self.config.service.shutdown_timeout)
        for h in self._health:
            h.not_ready()
        clean = await self._stop_workers()
        await self._close(servers)
        log.info("gateway stopped")
        return 0 if clean else 1

    async def _stop_workers(self) -> bool:
        self._stopping = True
        procs = [w.proc for w in self.workers if w.proc is not None]
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        deadline = self.config.service.shutdown_timeout + 5.0
        try:
            codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), deadline)
        except TimeoutError:
            for p in procs:
                if p.returncode is None:
                    log.error("worker pid %d did not stop within %.0fs; killing it", p.pid, deadline)
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            for p in procs:
                await p.wait()
            return False
        for task in list(self._watchers):
            task.cancel()
        return all(c == 0 for c in codes)

    async def _close(self, servers: list[Any]) -> None:
        for server in [*reversed(servers), *([self._auth] if self._auth else [])]:
            with contextlib.suppress(Exception):
                await server.shutdown()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _auth_of(config: GatewayConfig) -> tuple[object, object]:
    """What the admin endpoint's authenticator is built from: `service::admin::auth` and its extension's config."""
    auth = config.service.admin.auth
    return auth, config.extensions.get(auth.authenticator) if auth is not None else None


async def supervise(config_paths: list[str], loaded: Loaded) -> int:
    """Run `loaded` (read from `config_paths`, which each worker reads again) as N workers."""
    return await Supervisor(config_paths, loaded).run()


# ------------------------------------------------------------------ a worker


def _make_storage_dirs(config: GatewayConfig) -> None:
    """A worker's storage subdirectory exists whenever the configured directory does."""
    for eid in config.service.extensions:
        if eid.partition("/")[0] == "file_storage":
            directory = config.extensions[eid].directory
            if os.path.isdir(os.path.dirname(directory)):
                os.makedirs(directory, mode=0o750, exist_ok=True)


def _for_worker(index: int) -> Callable[[GatewayConfig], GatewayConfig]:
    def transform(config: GatewayConfig) -> GatewayConfig:
        mine = worker_config(config, index)
        _make_storage_dirs(mine)
        return mine

    return transform


async def _serve_worker(loaded: Loaded, paths: list[str], index: int, status_fd: int | None) -> int:
    transform = _for_worker(index)
    config = transform(loaded.config)
    stop = stop_event()
    loop = asyncio.get_running_loop()

    def supervisor_gone() -> None:
        # stdin is a pipe from the supervisor: end of file means it is gone.
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    def report_ready(service: Service) -> None:
        if status_fd is None:
            return
        health = [(ext.port, ext.config.path) for ext in service.extensions() if isinstance(ext, HealthCheck)]
        ms = service.metrics_server
        status = {"pid": os.getpid(), "metrics_port": ms.port if ms else None, "health": health,
                  "admin_port": service.admin.port if service.admin else None}
        os.write(status_fd, json.dumps(status).encode() + b"\n")
        os.close(status_fd)

    with contextlib.suppress(OSError, ValueError):
        loop.add_reader(0, supervisor_gone)
    return await serve(config, reuse_port=True, stop=stop, on_started=report_ready, name="worker", paths=paths,
                       transform=transform, worker=index)


def worker_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.workers")
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)
    try:
        loaded = load_files(args.config)
    except ConfigError as exc:
        print(f"invalid configuration {' + '.join(args.config)}: {'; '.join(exc.errors)}", file=sys.stderr)
        return 1
    setup_logging(loaded.config.service.telemetry.logs, worker=args.index)
    fd = os.environ.pop(STATUS_FD_ENV, None)
    return asyncio.run(_serve_worker(loaded, args.config, args.index, int(fd) if fd else None))


if __name__ == "__main__":
    sys.exit(worker_main())
