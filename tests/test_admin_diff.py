"""Before/after views of a processor (`/api/v1/diff`, `gateway.admin.diff`): a `probabilistic_sampler` at
50% behind a running gateway, spans sent by the OpenTelemetry SDK, where the spans the view says were dropped
are exactly those missing at the sink; and, in process, the hooks a view puts on the consumers, its
attribute diff, and the consumers as they were once it closes."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.admin import diff
from gateway.admin.tap import Taps
from pipelines.batch import Batch
from tests.harness import Ports, Sink, basic_config, free_port, running, wait_until


def _get(admin: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=5) as r:
        body: dict[str, Any] = json.load(r)
        return body


def test_the_spans_a_sampler_dropped_are_those_missing_at_the_sink(sink: Sink) -> None:
    ports, admin = Ports.free(), free_port()
    exporters = f'  otlp:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n'
    cfg = basic_config(ports, exporters, "[otlp]", processors="probabilistic_sampler: {sampling_percentage: 50}",
                       pipeline_processors="[probabilistic_sampler]")
    with running(cfg + f'  admin: {{endpoint: "127.0.0.1:{admin}"}}\n', ports) as gw:
        assert gw.ports is not None
        first = _get(admin, "/api/v1/diff?component=probabilistic_sampler")  # opens the view
        assert first["component"] == "processor:probabilistic_sampler" and first["grace"] == diff.GRACE
        provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{gw.ports.grpc}",
                                                                         insecure=True)))
        tracer = provider.get_tracer("t")
        sent: set[str] = set()
        for i in range(12):
            with tracer.start_as_current_span(f"GET /{i}") as root, tracer.start_as_current_span("db") as child:
                sent |= {format(s.get_span_context().span_id, "016x") for s in (root, child)}
        provider.shutdown()
        spans: list[dict[str, Any]] = []

        def settled() -> bool:
            nonlocal spans
            spans = [s for t in _get(admin, "/api/v1/diff?component=processor:probabilistic_sampler")["traces"]
                     for s in t["spans"]]
            return {s["span_id"] for s in spans} == sent and all(s["state"] != "pending" for s in spans)

        wait_until(settled, 30, "every sent span kept or dropped in the view")
        at_sink = {span.span_id.hex() for _, _, span in sink.spans()}
        kept = {s["span_id"] for s in spans if s["state"] == "kept"}
        dropped = {s["span_id"] for s in spans if s["state"] == "dropped"}
        assert kept == at_sink and dropped == sent - at_sink and kept and dropped
        assert {s["reason"] for s in spans if s["state"] == "dropped"} == {"sampled_out"}
        assert all(s["note"] == "not seen at the output after 5s" for s in spans if s["state"] == "dropped")
        assert all(s["changes"]["attributes"] == {"added": {}, "removed": {}, "changed": {}}
                   for s in spans if s["state"] == "kept")


class _Consumer:
    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        pass


def _batch(*spans: tuple[bytes, str, dict[str, str]]) -> Batch:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    ss = rs.scope_spans.add()
    for sid, name, attrs in spans:
        span = ss.spans.add(trace_id=b"\x01" * 16, span_id=sid, name=name, start_time_unix_nano=1,
                            end_time_unix_nano=2)
        for k, v in attrs.items():
            span.attributes.add(key=k).value.string_value = v
    return Batch("traces", req.SerializeToString(), len(spans))


def test_a_view_correlates_both_sides_and_its_hooks_go_when_it_closes() -> None:
    async def run() -> None:
        taps = Taps()
        inp, out, other = _Consumer(), _Consumer(), _Consumer()
        drops = {"filtered": 0.0}
        view = diff.DiffWatch("processor:x", [diff.Instance("traces", inp, out), diff.Instance("b", other, out)],
                              taps, 5.0, lambda: drops)
        assert all("consume" in vars(c) for c in (inp, out, other))
        await inp.consume(_batch((b"A" * 8, "kept", {"env": "dev", "gone": "x", "same": "1"}), (b"B" * 8, "drop", {})))
        view.step(0.0)
        # The other span in the output, changed by the processor; "drop" never leaves.
        await out.consume(_batch((b"A" * 8, "kept", {"env": "prod", "new": "y", "same": "1"})))
        drops["filtered"] = 1
        view.step(1.0)
        spans = {s["name"]: s for t in view.summary() for s in t["spans"]}
        assert spans["kept"]["state"] == "kept" and spans["drop"]["state"] == "pending"
        assert spans["kept"]["changes"]["attributes"] == {"added": {"new": "y"}, "removed": {"gone": "x"},
                                                          "changed": {"env": ["dev", "prod"]}}
        view.step(6.5)
        spans = {s["name"]: s for t in view.summary() for s in t["spans"]}
        assert spans["drop"]["state"] == "dropped" and spans["drop"]["reason"] == "filtered"
        assert not any(k.startswith("_") for s in spans.values() for k in s)
        view.close()
        assert not any("consume" in vars(c) for c in (inp, out, other)) and not list(taps.hooked())
        # Closed, the consumers cost nothing: a batch goes by untouched.
        await inp.consume(_batch((b"C" * 8, "late", {})))
        view.step(7.0)
        assert "late" not in {s["name"] for t in view.summary() for s in t["spans"]}
        await asyncio.wait_for(view._task, 5)

    asyncio.run(run())
