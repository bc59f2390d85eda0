"""The admin endpoint (`service::admin`), `gateway tap` and `gateway top` against a running gateway, spans
sent by the OpenTelemetry SDK; drop reasons in `otelcol_gateway_dropped_spans_total`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.admin.tap import Tap, Taps
from gateway.config.load import load_files
from gateway.service import Service
from pipelines.batch import Batch
from tests import top_screen
from tests.harness import REPO, GatewayProcess, Ports, Sink, basic_config, free_port, running, wait_until


def _config(ports: Ports, sink: Sink, admin: int) -> str:
    exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
"""
    cfg = basic_config(ports, exporters, "[otlp]",
                       processors='filter: {traces: {span: [\'name == "drop-me"\']}}',
                       pipeline_processors="[filter]")
    return cfg + f'  admin: {{endpoint: "127.0.0.1:{admin}"}}\n'


def _get(admin: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=5) as r:
        body: dict[str, Any] = json.load(r)
        return body


@pytest.fixture
def gateway(sink: Sink) -> Iterator[tuple[GatewayProcess, int]]:
    ports, admin = Ports.free(), free_port()
    with running(_config(ports, sink, admin), ports) as gw:
        yield gw, admin


def _provider(gw: GatewayProcess) -> TracerProvider:
    assert gw.ports is not None
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{gw.ports.grpc}",
                                                                     insecure=True)))
    return provider


def test_graph_stats_and_drop_reasons(gateway: tuple[GatewayProcess, int], sink: Sink) -> None:
    gw, admin = gateway
    provider = _provider(gw)
    tracer = provider.get_tracer("t")
    for name in ("keep-me", "drop-me", "keep-me", "drop-me", "drop-me"):
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()
    sink.wait_spans(2)
    graph = _get(admin, "/api/v1/graph")
    assert graph["worker"] is None
    assert graph["pipelines"] == [{"id": "traces", "receivers": ["otlp"], "processors": ["filter"],
                                   "exporters": ["otlp"], "connectors": []}]
    assert {c["key"] for c in graph["components"]} == {"receiver:otlp", "pipeline:traces", "processor:filter",
                                                        "exporter:otlp"}
    wait_until(lambda: _get(admin, "/api/v1/stats")["components"]["exporter:otlp"].get("sent") == 2)
    c = _get(admin, "/api/v1/stats")["components"]
    assert (c["receiver:otlp"]["in"], c["receiver:otlp"]["out"], c["receiver:otlp"]["refused"]) == (5, 5, 0)
    assert c["processor:filter"]["dropped"] == {"filtered": 3}
    assert (c["processor:filter"]["in"], c["processor:filter"]["out"]) == (5, 2)
    assert c["pipeline:traces"]["in"] == 5 and c["pipeline:traces"]["out"] == 2
    assert c["exporter:otlp"]["queue_capacity"] == 1000 and c["exporter:otlp"]["status"] == "StatusOK"
    assert gw.metric("otelcol_gateway_dropped_spans_total", component="filter", reason="filtered") == 3
    # processorhelper's names and labels.
    assert gw.metric("otelcol_processor_incoming_items_total", processor="filter", otel_signal="traces") == 5
    assert gw.metric("otelcol_processor_outgoing_items_total", processor="filter", otel_signal="traces") == 2


def _send_until(gw: GatewayProcess, done: threading.Event, names: tuple[str, ...]) -> threading.Thread:
    def run() -> None:
        provider = _provider(gw)
        tracer = provider.get_tracer("t")
        while not done.is_set():
            for name in names:
                with tracer.start_as_current_span(name):
                    pass
            done.wait(0.05)
        provider.shutdown()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_tap_prints_the_sdk_spans_and_stops_after_limit(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    done = threading.Event()
    sender = _send_until(gw, done, ("GET /cart", "drop-me"))
    try:
        out = subprocess.run([sys.executable, "-m", "gateway", "tap", "filter", "--outputs", "--limit", "4",
                              "--format", "json", "--admin", f"http://127.0.0.1:{admin}"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        line = subprocess.run([sys.executable, "-m", "gateway", "tap", "receiver:otlp", "--limit", "2", "--format",
                               "line", "--admin", f"http://127.0.0.1:{admin}"],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        done.set()
        sender.join(10)
    assert out.returncode == 0, out.stderr
    spans = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(spans) == 4
    # After the filter: only what it kept.
    assert {s["name"] for s in spans} == {"GET /cart"}
    assert {s["service"] for s in spans} == {"checkout"}
    assert all(len(s["trace_id"]) == 32 and s["status"]["code"] == "UNSET" for s in spans)
    assert spans[0]["component"] == "processor:filter" and spans[0]["direction"] == "out"
    assert line.returncode == 0, line.stderr
    assert len(line.stdout.splitlines()) == 2 and " checkout " in line.stdout
    # The tap closed: the gateway's consumers are their classes' again (checked in-process below).


def test_tap_errors_name_the_problem(gateway: tuple[GatewayProcess, int]) -> None:
    _, admin = gateway
    for query, code, text in (("component=nope", 404, "no component 'nope'"),
                              ("component=otlp", 404, "names receiver:otlp, exporter:otlp"),
                              ("component=exporter:otlp&direction=out", 404, "only its inputs")):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/tap?{query}", timeout=5)
        assert err.value.code == code and text in err.value.read().decode()


class _Consumer:
    def __init__(self) -> None:
        self.got = 0

    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        self.got += 1


def test_a_closed_tap_leaves_the_consumer_as_it_was_and_the_bucket_limits() -> None:
    import asyncio

    async def run() -> None:
        c = _Consumer()
        taps = Taps()
        one, two = Tap("x", "in", rate=3), Tap("x", "in", rate=3)
        taps.open(one, [c])
        taps.open(two, [c])
        assert "consume" in vars(c)
        batch = Batch("traces", b"", 1)
        for _ in range(10):
            await c.consume(batch)
        assert c.got == 10
        assert len(one._held) == 3  # the bucket: 3 a second, all spent at once
        taps.close(one, [c])
        assert "consume" in vars(c)
        taps.close(two, [c])
        assert "consume" not in vars(c) and not list(taps.hooked())

    asyncio.run(run())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_top_shows_the_components_and_a_rate(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    done = threading.Event()
    with top_screen.top(admin) as screen:
        sender = _send_until(gw, done, ("GET /cart", "drop-me"))
        try:
            keys = ("receiver:otlp", "processor:filter", "exporter:otlp", "pipeline:traces", "filtered:")

            def shows_a_rate_and_the_drop() -> bool:
                rows = screen.rows("receiver:otlp") if screen.read() else []
                return bool(rows) and any(cell.replace(".", "", 1).isdigit() and float(cell) > 0
                                          for cell in rows[0].replace("│", " ").split()[2:4]) \
                    and all(key in screen.text for key in keys)

            # The first span's rate can show before the filter's first drop: wait for both.
            wait_until(shows_a_rate_and_the_drop, 20, "a non-zero rate and every component on gateway top's screen")
        finally:
            done.set()
            sender.join(10)


def test_admin_off_with_enabled_false(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    ports = Ports.free()
    path.write_text(basic_config(ports, "  debug: {}", "[debug]") + "  admin: {enabled: false}\n")
    service = Service(load_files([str(path)]).config)
    service.build()
    assert service.admin is None
    path.write_text(basic_config(ports, "  debug: {}", "[debug]") + '  admin: {endpoint: "127.0.0.1:0"}\n')
    service = Service(load_files([str(path)]).config)
    service.build()
    assert service.admin is not None and service.admin.config.endpoint == "127.0.0.1:0"


def test_the_admin_endpoint_listens_beyond_loopback_only_with_auth_and_tls() -> None:
    from gateway.config.model import AdminConfig, AuthConfig
    from gateway.transport.tls import TLSServerConfig

    assert AdminConfig().validate() == []
    assert AdminConfig(endpoint="127.0.0.1:1").validate() == []
    assert AdminConfig(endpoint="[::1]:1").validate() == []
    assert "needs auth: {authenticator: ID}" in AdminConfig(endpoint="0.0.0.0:55690").validate()[0]
    assert AdminConfig(endpoint="0.0.0.0:55690", enabled=False).validate() == []
    bearer = AuthConfig("bearertokenauth")
    assert AdminConfig(endpoint="0.0.0.0:55690", auth=bearer).validate() == [
        "endpoint '0.0.0.0:55690': beyond loopback (localhost, 127.x, ::1) the admin endpoint needs tls: "
        "{cert_file: ..., key_file: ...} as well as auth: without it its credentials and the span data taps "
        "show cross the network in clear"]
    tls = TLSServerConfig(cert_file="c.pem", key_file="k.pem")
    assert AdminConfig(endpoint="0.0.0.0:55690", auth=bearer, tls=tls).validate() == []
    assert AdminConfig(endpoint="127.0.0.1:1", tls=tls).validate() == []


def test_a_watch_groups_spans_by_trace_and_closes_when_nobody_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from gateway.admin import watch

    def span(trace: str, sid: str, parent: str, start: int) -> dict[str, Any]:
        return {"trace_id": trace, "span_id": sid, "parent_span_id": parent, "name": sid, "service": "s",
                "start_unix_nano": start, "end_unix_nano": start + 10, "status": {"code": "UNSET"}}

    async def run() -> None:
        monkeypatch.setattr(watch, "IDLE", 0.0)
        c, taps = _Consumer(), Taps()
        w = watch.Watch("x", "in", [c], taps)
        assert "consume" in vars(c)
        w.add(span("t1", "child", "root", 5))
        w.add(span("t2", "a", "", 1))
        w.add(span("t1", "root", "", 0))
        traces = w.summary()
        assert [t["trace_id"] for t in traces] == ["t1", "t2"]  # newest first
        assert traces[0]["root"] == "root" and traces[0]["span_count"] == 2 and traces[0]["duration_ns"] == 15
        assert [s["span_id"] for s in traces[0]["spans"]] == ["root", "child"]
        await asyncio.wait_for(w._task, 5)  # nobody asked within IDLE: closed
        assert "consume" not in vars(c) and w.tap.closed

    asyncio.run(run())
