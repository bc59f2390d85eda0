"""The `forward` connector end to end: one pipeline's output enters two others, each with its own
processors and backend. Every acknowledged span arrives once at each backend; a request one branch
must refuse is refused as a whole and reaches no backend."""

from __future__ import annotations

import grpc

from tests.connectors.support import connected_config
from tests.delivery.configs import exporter
from tests.delivery.load import Client, clear_faults, report, wait_all
from tests.harness import Fault, Ports, Sink, running, wait_until

PIPELINES = """    traces/in:
      receivers: [otlp]
      processors: [batch]
      exporters: [forward]
    traces/a:
      receivers: [forward]
      processors: [attributes/a]
      exporters: [otlp/a]
    traces/b:
      receivers: [forward]
      exporters: [otlp/b]
"""
PROCESSORS = """batch: {timeout: 50ms}
  attributes/a: {actions: [{key: branch, value: a, action: insert}]}"""


def _branch_attrs(sink: Sink) -> set[str | None]:
    out: set[str | None] = set()
    for req in sink.requests("traces"):
        for rs in req.request.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    attrs = {kv.key: kv.value.string_value for kv in sp.attributes}
                    out.add(attrs.get("branch"))
    return out


def test_forward_delivers_every_span_once_to_each_pipeline(ports: Ports) -> None:
    a, b = Sink().start(), Sink().start()
    try:
        cfg = connected_config(ports, [exporter("a", a), exporter("b", b)], "  forward: {}", PIPELINES,
                               processors=PROCESSORS)
        with running(cfg, ports) as gw:
            client = Client(ports.grpc, ports.http)
            for _ in range(40):
                assert client.send(client.next_names(10, "fwd")).ok
            got_a = wait_all(a, client.acked)
            got_b = wait_all(b, client.acked)
            wait_until(lambda: gw.metric("otelcol_exporter_sent_spans_total", exporter="otlp/b") == 400, 10,
                       "b's sent counter")
            dups = sum(n - 1 for n in got_a.values()) + sum(n - 1 for n in got_b.values())
            report("forward_two_pipelines", len(client.acked), len(got_a) + len(got_b), len(client.refused), dups)
            assert len(client.acked) == 400 and len(got_a) == 400 and len(got_b) == 400
            assert dups == 0
            for pid in ("traces/in", "traces/a", "traces/b"):
                assert gw.metric("otelcol_gateway_pipeline_incoming_items_total", pipeline=pid) == 400, pid
            assert gw.metric("otelcol_exporter_sent_spans_total", exporter="otlp/a") == 400
            # Each branch has its own copy: a's processor never changes what b sends.
            assert _branch_attrs(a) == {"a"}
            assert _branch_attrs(b) == {None}
            client.close()
    finally:
        a.stop()
        b.stop()


def test_a_full_queue_behind_the_connector_refuses_the_request_for_every_pipeline(ports: Ports) -> None:
    a, b = Sink().start(), Sink().start()
    try:
        b.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE))
        slow = "{initial_interval: 200ms, max_interval: 200ms, max_elapsed_time: 60s}"
        cfg = connected_config(
            ports, [exporter("a", a), exporter("b", b, queue="{num_consumers: 1, queue_size: 4}", retry=slow)],
            "  forward: {}", PIPELINES, processors=PROCESSORS)
        with running(cfg, ports) as gw:
            client = Client(ports.grpc, ports.http)
            for i in range(10):
                client.send(client.next_names(10, f"full{i}"))
            assert len(client.acked) == 40, "b's queue holds 4 requests (queued and in flight)"
            assert len(client.refused) == 60
            assert client.codes["UNAVAILABLE"] == 6
            got_a = wait_all(a, client.acked)
            assert gw.metric("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp/b") == 60
            assert gw.metric("otelcol_receiver_refused_spans_total") == 60
            clear_faults(b)
            got_b = wait_all(b, client.acked, timeout=60)
            wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp/b") == 0, 10, "b drained")
            dups = sum(n - 1 for n in got_a.values()) + sum(n - 1 for n in got_b.values())
            report("forward_full_queue", len(client.acked), len(got_a) + len(got_b), len(client.refused), dups)
            assert dups == 0
            # Refused as a whole: what b could not hold never reached a either.
            assert not (set(got_a) | set(got_b)) & set(client.refused)
            assert len(got_a) == len(got_b) == 40
            client.close()
    finally:
        a.stop()
        b.stop()
