"""A gateway with `service::workers: 2` for the admin tests: each worker's private admin port (from the
supervisor's log), and an OpenTelemetry SDK provider whose connection is known to reach each worker."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.harness import GatewayProcess, Ports, Sink, basic_config

_READY = re.compile(r"worker (\d+) ready \(pid (\d+), admin on 127\.0\.0\.1:(\d+)\)")
# New connections tried before a provider reaching each worker is found; the kernel spreads them at random.
_ATTEMPTS = 64


def config(ports: Ports, sink: Sink, admin: str, extra: str = "", admin_extra: str = "") -> str:
    exporters = f'  otlp:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n'
    cfg = basic_config(ports, exporters, "[otlp]", processors='filter: {traces: {span: [\'name == "drop-me"\']}}',
                       pipeline_processors="[filter]", extra=extra)
    cfg = cfg.replace("service:\n", "service:\n  workers: 2\n")
    return cfg + f'  admin: {{endpoint: "{admin}"{admin_extra}}}\n'


def get(port: int, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as r:
        body: dict[str, Any] = json.load(r)
        return body


def private_ports(gw: GatewayProcess) -> dict[int, tuple[int, int]]:
    """Worker index -> (pid, its private admin port), as the supervisor logged them."""
    found = {int(m[1]): (int(m[2]), int(m[3])) for m in _READY.finditer(gw.stderr())}
    assert len(found) == 2, gw.stderr()
    return found


def accepted(port: int, headers: dict[str, str] | None = None) -> float:
    """What one worker's receiver accepted, from its own admin server."""
    return float(get(port, "/api/v1/stats", headers)["components"]["receiver:otlp"].get("accepted", 0))


def provider(gw: GatewayProcess) -> TracerProvider:
    """An SDK provider over OTLP/HTTP: its exporter keeps one connection of its own."""
    assert gw.ports is not None
    p = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{gw.ports.http}/v1/traces")))
    return p


def providers_by_worker(gw: GatewayProcess, headers: dict[str, str] | None = None
                        ) -> tuple[dict[int, TracerProvider], int]:
    """A provider whose connection reaches each worker, found by sending a probe span on new connections
    and asking each worker which one took it; and how many spans the probes were."""
    ports = {index: port for index, (_, port) in private_ports(gw).items()}
    found: dict[int, TracerProvider] = {}
    for sent in range(1, _ATTEMPTS + 1):
        before = {index: accepted(port, headers) for index, port in ports.items()}
        p = provider(gw)
        with p.get_tracer("probe").start_as_current_span("probe"):
            pass
        # The export returned: the worker that took it has counted it.
        grew = [index for index, port in ports.items() if accepted(port, headers) > before[index]]
        assert len(grew) == 1, grew
        if grew[0] in found:
            p.shutdown()
        else:
            found[grew[0]] = p
        if len(found) == len(ports):
            return found, sent
    raise AssertionError(f"{_ATTEMPTS} connections all reached the same worker")


def send_until(providers: dict[int, TracerProvider], done: threading.Event, names: tuple[str, ...]) -> threading.Thread:
    """Spans on every worker's connection, round after round, until `done`."""
    def run() -> None:
        tracers = [p.get_tracer("t") for p in providers.values()]
        while not done.is_set():
            for tracer in tracers:
                for name in names:
                    with tracer.start_as_current_span(name):
                        pass
            done.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
