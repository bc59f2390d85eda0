"""One gateway process from start to stop, as `python -m gateway` and each worker of
`service.workers` run it: log lines, the stop signals, start, wait, drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable

from gateway.config.model import GatewayConfig
from gateway.service import Service, ShutdownErrors

log = logging.getLogger("gateway")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def setup_logging(level: str, tag: str = "") -> None:
    """Log lines to stderr at `service::telemetry::logs::level`; `tag` (a worker's name) after the level."""
    tag_field = f"{tag}\t" if tag else ""
    logging.basicConfig(
        level=_LEVELS.get(level.lower(), logging.INFO),
        format=f"%(asctime)s\t%(levelname)s\t{tag_field}%(name)s\t%(message)s",
        stream=sys.stderr,
    )


def stop_event() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set, on the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: GatewayConfig, *, reuse_port: bool = False, stop: asyncio.Event | None = None,
                on_started: Callable[[Service], None] | None = None, name: str = "gateway") -> int:
    """Run `config` until `stop` (by default SIGTERM or SIGINT) is set, then drain within
    `service::shutdown_timeout`; `on_started` is told once everything listens. The exit status: 1 if
    the gateway could not start, else 0 (a shutdown with errors is logged, as the Collector does)."""
    service = Service(config, reuse_port=reuse_port)
    stop = stop or stop_event()
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
    await stop.wait()
    log.info("shutting down: draining within %.0fs", config.service.shutdown_timeout)
    try:
        await service.shutdown()
    except ShutdownErrors as exc:
        log.error("shutdown finished with errors: %s", exc)
    log.info("%s stopped", name)
    return 0
