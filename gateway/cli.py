"""`python -m gateway [--config FILE]` runs; `python -m gateway validate --config FILE` checks;
`python -m gateway graph --config FILE` prints the pipeline graph the service would build (nothing starts).

Only this module exits the process."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from gateway import __version__
from gateway.config.load import ConfigError, Loaded, load_files
from gateway.service import Service, ShutdownErrors

log = logging.getLogger("gateway")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="otel-gateway", description="OpenTelemetry trace gateway")
    p.add_argument("command", nargs="?", choices=["run", "validate", "graph"], default="run")
    p.add_argument("--config", action="append", metavar="FILE",
                   help="Collector-format YAML config (default: config.yaml); repeat to merge files in order")
    p.add_argument("--version", action="version", version=f"otel-gateway {__version__}")
    return p


def _load(paths: list[str]) -> Loaded | None:
    try:
        return load_files(paths)
    except ConfigError as exc:
        print(f"invalid configuration {' + '.join(paths)}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return None


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


async def serve(loaded: Loaded) -> int:
    service = Service(loaded.config)
    stop = stop_event()
    try:
        await service.start()
    except Exception as exc:
        log.error("gateway failed to start: %s", exc)
        return 1
    # What start-up built (modules, descriptors, the service graph) lives as long as the process: keep
    # it out of the collector's full passes, which would otherwise walk it again and again under load.
    gc.collect()
    gc.freeze()
    await stop.wait()
    log.info("shutting down: draining within %.0fs", loaded.config.service.shutdown_timeout)
    try:
        await service.shutdown()
    except ShutdownErrors as exc:
        log.error("shutdown finished with errors: %s", exc)
    log.info("gateway stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    paths: list[str] = args.config or ["config.yaml"]
    loaded = _load(paths)
    if loaded is None:
        return 1
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.command == "validate":
        print(f"{' + '.join(paths)}: configuration is valid")
        return 0
    if args.command == "graph":
        print(Service(loaded.config).build().describe())
        return 0
    setup_logging(loaded.config.service.telemetry.logs.level)
    if loaded.config.service.workers > 1:
        from gateway.workers import supervise

        return asyncio.run(supervise(paths, loaded))
    return asyncio.run(serve(loaded))


if __name__ == "__main__":
    sys.exit(main())
