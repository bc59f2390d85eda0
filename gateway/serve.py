"""One gateway process from start to stop, as `python -m gateway` and each worker of
`service.workers` run it: log lines, the stop signals, start, wait, drain."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

from gateway.config.model import GatewayConfig
from gateway.config.telemetry import LogsTelemetry
from gateway.own_telemetry.logs import filters
from gateway.reload import Reloader
from gateway.service import Service, ShutdownErrors

log = logging.getLogger("gateway")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
# zap's level names, which the Collector's JSON lines carry.
_ZAP_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
               logging.CRITICAL: "fatal"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line, as the Collector's `encoding: json` (zap's production encoder with ISO 8601
    times) writes them: `level`, `ts`, `logger` (zap's key for a logger's name: ours, such as
    `gateway.exporter`), `caller` (directory/file:line), `msg`, then `fields` (a worker's number), and
    for an exception `error` (its message) and `stacktrace`."""

    def __init__(self, fields: dict[str, object]) -> None:
        super().__init__()
        self._fields = fields

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # zapcore.ISO8601TimeEncoder: local time, milliseconds, `Z` or `+hhmm`.
        local = time.localtime(record.created)
        zone = time.strftime("%z", local)
        return (time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(record.msecs):03d}"
                + ("Z" if zone in ("+0000", "-0000") else zone))

    def format(self, record: logging.LogRecord) -> str:
        where = os.path.join(os.path.basename(os.path.dirname(record.pathname)), os.path.basename(record.pathname))
        line: dict[str, object] = {
            "level": _ZAP_LEVELS.get(record.levelno, record.levelname.lower()),
            "ts": self.formatTime(record),
            "logger": record.name,
            "caller": f"{where}:{record.lineno}",
            "msg": record.getMessage(),
            **self._fields,
        }
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = str(record.exc_info[1]) or type(record.exc_info[1]).__name__
            line["stacktrace"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stacktrace"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def setup_logging(logs: LogsTelemetry, worker: int | None = None) -> None:
    """Log lines to stderr at `service::telemetry::logs::level`, in its `encoding`: `console` (tab-separated,
    a worker's name after the level) or `json` (one object a line, a worker's number as `worker`)."""
    handler = logging.StreamHandler(sys.stderr)
    if logs.encoding == "json":
        handler.setFormatter(JsonFormatter({} if worker is None else {"worker": worker}))
    else:
        tag_field = "" if worker is None else f"worker-{worker}\t"
        handler.setFormatter(logging.Formatter(f"%(asctime)s\t%(levelname)s\t{tag_field}%(name)s\t%(message)s"))
    for f in filters(logs):
        handler.addFilter(f)
    logging.basicConfig(level=_LEVELS.get(logs.level.lower(), logging.INFO), handlers=[handler])


def stop_event() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set, on the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: GatewayConfig, *, reuse_port: bool = False, stop: asyncio.Event | None = None,
                on_started: Callable[[Service], None] | None = None, name: str = "gateway",
                paths: Sequence[str] = (), transform: Callable[[GatewayConfig], GatewayConfig] = lambda c: c,
                worker: int | None = None) -> int:
    """Run `config` until `stop` (by default SIGTERM or SIGINT) is set, then drain within
    `service::shutdown_timeout`; `on_started` is told once everything listens. With the config's
    `paths`, SIGHUP (and with `service::reload::watch`, a change of a file) reloads them in place
    (`gateway.reload`; `transform` makes the config to run of what they hold). The exit status: 1 if
    the gateway could not start, else 0 (a shutdown with errors is logged, as the Collector does)."""
    service = Service(config, reuse_port=reuse_port, worker=worker)
    stop = stop or stop_event()
    reloader = Reloader(service, paths, transform) if paths else None
    if reloader is not None:
        # From the start: a SIGHUP during start-up reloads once it is done, never kills the process.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)
    try:
        await service.start()
    except Exception as exc:
        log.error("%s failed to start: %s", name, exc)
        return 1
    if on_started is not None:
        on_started(service)
    # What start-up built (modules, descriptors, the service graph) lives as long as the process: keep
    # it out of the collector's full passes, which would otherwise walk it again and again under load.
    gc.collect()
    gc.freeze()
    if reloader is not None:
        await reloader.run(stop)  # returns between two reloads, never during one
    else:
        await stop.wait()
    log.info("shutting down: draining within %.0fs", config.service.shutdown_timeout)
    try:
        await service.shutdown()
    except ShutdownErrors as exc:
        log.error("shutdown finished with errors: %s", exc)
    log.info("%s stopped", name)
    return 0
