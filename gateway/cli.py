"""`python -m gateway [--config FILE]` runs; `python -m gateway validate --config FILE` checks;
`python -m gateway graph --config FILE` prints the pipeline graph the service would build (nothing starts);
`python -m gateway top` and `python -m gateway tap COMPONENT` read a running gateway's admin endpoint.

Only this module exits the process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from gateway import __version__, console
from gateway.config.load import ConfigError, Loaded, load_files
from gateway.serve import serve, setup_logging
from gateway.service import Service
from gateway.workers import supervise

log = logging.getLogger("gateway")


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["top"], ["tap"]):
        return console.main(argv)
    args = _parser().parse_args(argv)
    paths: list[str] = args.config or ["config.yaml"]
    loaded = _load(paths)
    if loaded is None:
        return 1
    if args.command != "run":
        for warning in loaded.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if args.command == "validate":
        print(f"{' + '.join(paths)}: configuration is valid")
        return 0
    if args.command == "graph":
        print(Service(loaded.config).build().describe())
        return 0
    # A running gateway's warnings are log lines, in the log's encoding.
    setup_logging(loaded.config.service.telemetry.logs)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    if loaded.config.service.workers > 1:
        return asyncio.run(supervise(paths, loaded))
    return asyncio.run(serve(loaded.config, paths=paths))


if __name__ == "__main__":
    sys.exit(main())
