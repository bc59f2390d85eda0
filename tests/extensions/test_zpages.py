"""The `zpages` extension on a running service: each page's content, from the live graph and the gateway's own
spans, and `endpoint` against its default."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from gateway.component import ServiceView, Settings
from gateway.config.load import ConfigError, load_text
from gateway.extensions.zpages import FACTORY, Config
from gateway.service import Service
from gateway.telemetry import Telemetry
from tests.e2e.support import http_request, spans_request
from tests.harness import Ports, Sink, basic_config, free_ports, running


def _config(receiver: int, zpages: int, backend: int, telemetry: str = "{}") -> str:
    return f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{receiver}"}}}}}}}}
processors: {{batch: {{timeout: 10ms}}, attributes/tag: {{actions: [{{key: k, value: v, action: upsert}}]}}}}
exporters: {{otlp/backend: {{endpoint: "127.0.0.1:{backend}", tls: {{insecure: true}}}}}}
connectors: {{forward/copy: {{}}}}
extensions: {{zpages: {{endpoint: "127.0.0.1:{zpages}"}}, health_check: {{endpoint: "127.0.0.1:{free_ports(1)[0]}"}}}}
service:
  extensions: [zpages, health_check]
  telemetry: {telemetry}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [forward/copy]}}
    traces/tagged: {{receivers: [forward/copy], processors: [attributes/tag], exporters: [otlp/backend]}}
"""


def _own_traces(sink: Sink) -> str:
    return ("{traces: {processors: [{batch: {schedule_delay: 100, exporter: {otlp: {protocol: grpc, "
            f'endpoint: "127.0.0.1:{sink.grpc_port}", insecure: true}}}}}}}}]}}}}')


def _serve(config: str, body: Callable[[Callable[[str], Awaitable[str]]], Awaitable[None]]) -> None:
    """Run a service on `config` and `body` with a getter of zpages' pages by path."""
    zport = int(re.search(r'zpages: \{endpoint: "127.0.0.1:(\d+)"', config)[1])  # type: ignore[index]

    async def get(path: str) -> str:
        answer = await asyncio.to_thread(http_request, zport, method="GET", path=path)
        assert answer.status == 200, (path, answer.status)
        assert answer.content_type == "text/html"
        return answer.body.decode()

    async def run() -> None:
        service = Service(load_text(config, env={}).config)
        await service.start()
        try:
            await body(get)
        finally:
            await service.shutdown()

    asyncio.run(run())


def test_pages_show_the_running_service() -> None:
    receiver, zport = free_ports(2)
    backend = Sink().start()
    pages: dict[str, str] = {}

    async def body(get: Callable[[str], Awaitable[str]]) -> None:
        for name in ("servicez", "pipelinez", "extensionz", "featurez", "tracez"):
            pages[name] = await get(f"/debug/{name}")

    try:
        _serve(_config(receiver, zport, backend.grpc_port), body)
    finally:
        backend.stop()
    assert "Service otel-trace-gateway" in pages["servicez"] and "StartTimestamp" in pages["servicez"]
    assert "Uptime" in pages["servicez"] and "process " in pages["servicez"]
    pipelinez = pages["pipelinez"]
    # Both pipelines, each with its receivers, processors and exporters; the connector on both sides.
    row = re.search(r"<td>traces</td><td>traces</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", pipelinez)
    assert row is not None and row.groups() == ("otlp", "&rarr; batch", "forward/copy (connector)")
    row = re.search(r"<td>traces/tagged</td><td>traces</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", pipelinez)
    assert row is not None and row.groups() == ("forward/copy (connector)", "&rarr; attributes/tag", "otlp/backend")
    assert "exit:traces -&gt; connector:forward/copy:traces" in pipelinez  # the graph itself
    assert "<td>zpages</td>" in pages["extensionz"] and "<td>health_check</td>" in pages["extensionz"]
    assert "no feature gates" in pages["featurez"]
    assert "own traces are off" in pages["tracez"]
    # No external assets: nothing is fetched from elsewhere.
    assert not any(re.search(r"(src|href)=\"?https?:", p) for p in pages.values())


def test_tracez_shows_the_gateways_own_spans() -> None:
    receiver, zport = free_ports(2)
    backend, own = Sink().start(), Sink().start()
    pages: dict[str, str] = {}

    async def body(get: Callable[[str], Awaitable[str]]) -> None:
        for _ in range(3):
            ok = await asyncio.to_thread(http_request, receiver, spans_request(2).SerializeToString(),
                                         headers={"Content-Type": "application/x-protobuf"})
            assert ok.status == 200
        bad = await asyncio.to_thread(http_request, receiver, b"\xff\xff not protobuf",
                                      headers={"Content-Type": "application/x-protobuf"})
        assert bad.status == 400
        await asyncio.to_thread(backend.wait_spans, 6)
        # The export call's span ends just after the backend answered it.
        for _ in range(100):
            pages["summary"] = await get("/debug/tracez")
            if "exporter/otlp/backend/traces" in pages["summary"]:
                break
            await asyncio.sleep(0.05)
        pages["errors"] = await get("/debug/tracez?zspanname=receiver/otlp/TraceDataReceived&ztype=2&zsubtype=0")
        bucket = re.search(r'href="\?zspanname=receiver%2Fotlp%2FTraceDataReceived&amp;ztype=1&amp;zsubtype=(\d)"',
                           pages["summary"])
        assert bucket is not None, pages["summary"]
        pages["latency"] = await get(f"/debug/tracez?zspanname=receiver/otlp/TraceDataReceived&ztype=1"
                                     f"&zsubtype={bucket[1]}")

    try:
        _serve(_config(receiver, zport, backend.grpc_port, _own_traces(own)), body)
    finally:
        backend.stop()
        own.stop()
    summary = pages["summary"]
    row = re.search(r"<td>receiver/otlp/TraceDataReceived</td>(.*?)</tr>", summary)
    assert row is not None
    cells = re.findall(r"<td>(?:<a [^>]*>)?(\d+)(?:</a>)?</td>", row[1])
    running, *latency, errors = map(int, cells)
    assert (running, sum(latency), errors) == (0, 3, 1)
    assert "exporter/otlp/backend/traces" in summary  # the export calls, once the batch went out
    assert "<td>ERROR: invalid</td>" in pages["errors"] and "outcome=invalid" in pages["errors"]
    assert pages["latency"].count("outcome=ok") >= 1 and "items=2" in pages["latency"]


def test_endpoint_is_where_it_listens() -> None:
    receiver, zport, other = free_ports(3)
    config = _config(receiver, zport, free_ports(1)[0])

    async def body(get: Callable[[str], Awaitable[str]]) -> None:
        assert "builtPipelines" in await get("/debug/pipelinez")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(http_request, other, method="GET", path="/debug/pipelinez")

    _serve(config, body)


def test_a_worker_says_it_answered() -> None:
    (zport,) = free_ports(1)
    cfg = replace(Config(), endpoint=f"127.0.0.1:{zport}")

    class Host:
        def extension(self, component_id: str) -> Any:
            raise KeyError(component_id)

        def view(self) -> ServiceView:
            return ServiceView()

    async def run() -> str:
        zpages = FACTORY.create(Settings("zpages", cfg, Telemetry(), Host(), reuse_port=True, worker=2))
        await zpages.start()
        try:
            answer = await asyncio.to_thread(http_request, zport, method="GET", path="/debug/servicez")
        finally:
            await zpages.shutdown()
        return answer.body.decode()

    page = asyncio.run(run())
    assert f"answered by worker 2 (pid {os.getpid()})" in page and "<td><b>Worker</b></td><td>2</td>" in page


def test_expvar_is_refused() -> None:
    config = _config(*free_ports(3)).replace('zpages: {endpoint: "127.0.0.1:',
                                             'zpages: {expvar: {enabled: true}, endpoint: "127.0.0.1:')
    with pytest.raises(ConfigError, match=r"extensions::zpages::expvar::enabled.*expvar"):
        load_text(config, env={})


def test_with_workers_each_page_says_which_worker_answered(ports: Ports, sink: Sink) -> None:
    zport, pport = free_ports(2)
    exporters = f'  otlp: {{endpoint: "127.0.0.1:{sink.grpc_port}", tls: {{insecure: true}}}}\n'
    extra = f'  zpages: {{endpoint: "127.0.0.1:{zport}"}}\n  pprof: {{endpoint: "127.0.0.1:{pport}"}}\n'
    config = (basic_config(ports, exporters, "[otlp]", extra=extra).replace("service:\n", "service:\n  workers: 2\n")
              .replace("[health_check]", "[health_check, zpages, pprof]"))
    seen: set[str] = set()
    with running(config, ports) as gw:
        gw.wait_ready()
        for _ in range(60):  # each request a new connection, which the kernel gives to either worker
            page = http_request(zport, method="GET", path="/debug/servicez").body.decode()
            seen.update(re.findall(r"answered by worker (\d) \(pid \d+\)", page))
            if len(seen) == 2:
                break
        index = http_request(pport, method="GET", path="/debug/pprof/").body.decode()
    assert seen == {"1", "2"}
    assert re.search(r"worker [12]: one of the gateway&#x27;s worker processes", index)
