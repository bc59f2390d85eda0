"""The OpenTelemetry Python SDK keeps exporting through a gateway that ends every connection after
`max_connection_age` (GOAWAY, then a new connection): every span arrives exactly once."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.harness import Ports, Sink, forward_config, running

AGE = 0.3
ROUNDS = 40


def test_sdk_reconnects_after_max_connection_age_and_loses_nothing(ports: Ports, sink: Sink) -> None:
    cfg = forward_config(ports, sink, "keepalive: {server_parameters: "
                         f"{{max_connection_age: {int(AGE * 1000)}ms, max_connection_age_grace: 10s}}}}")
    with running(cfg, ports) as gw:
        provider = TracerProvider(resource=Resource.create({"service.name": "aging"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}",
                                                                         insecure=True)))
        tracer = provider.get_tracer("age")
        started = time.monotonic()
        for i in range(ROUNDS):  # one export per span, each waited for at the sink: the rounds span many ages
            with tracer.start_as_current_span(f"span-{i}"):
                pass
            sink.wait_spans(i + 1)
        lasted = time.monotonic() - started
        provider.shutdown()
        names = sorted(span.name for _, _, span in sink.spans())
        assert names == sorted(f"span-{i}" for i in range(ROUNDS)), "every span exactly once"
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport="grpc") == ROUNDS
        assert gw.metric("otelcol_receiver_refused_spans_total") == 0
        print(f"\n{ROUNDS} spans over {lasted:.1f}s, connections aged out every ~{AGE}s: all delivered once")
