"""The `routing` connector end to end: parts of each request go to the pipelines their route names, the
rest to the default pipelines; routing by the bearer token's tenant; one tenant's full queue refuses
that tenant's requests and nobody else's. Exact counts: every acknowledged span arrives once, at the
backend its route names, and nothing refused arrives anywhere."""

from __future__ import annotations

import grpc

from tests.connectors.support import ExportClient, connected_config, services_at
from tests.delivery.configs import exporter
from tests.delivery.load import clear_faults, names_at, report, wait_all
from tests.harness import Fault, Ports, Sink, running, wait_until

ROUTED_PIPELINES = """    traces/in:
      receivers: [otlp]
      processors: [batch]
      exporters: [routing]
    traces/checkout:
      receivers: [routing]
      exporters: [otlp/checkout]
    traces/other:
      receivers: [routing]
      exporters: [otlp/other]
"""


def test_routing_by_resource_attribute_with_a_default(ports: Ports) -> None:
    checkout, other = Sink().start(), Sink().start()
    try:
        connectors = """  routing:
    default_pipelines: [traces/other]
    table:
      - statement: route() where attributes["service.name"] == "checkout"
        pipelines: [traces/checkout]
"""
        cfg = connected_config(ports, [exporter("checkout", checkout), exporter("other", other)], connectors,
                               ROUTED_PIPELINES)
        with running(cfg, ports) as gw:
            client = ExportClient(ports.grpc)
            for i in range(30):
                # Mixed requests: the connector splits them; and whole ones, which pass unsplit.
                assert client.send({"checkout": [f"c{i}-{k}" for k in range(5)],
                                    "cart": [f"x{i}-{k}" for k in range(5)]})
                assert client.send({"checkout": [f"C{i}"]} if i % 2 else {"cart": [f"X{i}"]})
            want_checkout = [n for n in client.acked if n[0] in "cC"]
            want_other = [n for n in client.acked if n[0] in "xX"]
            got_checkout = wait_all(checkout, want_checkout)
            got_other = wait_all(other, want_other)
            dups = sum(n - 1 for n in got_checkout.values()) + sum(n - 1 for n in got_other.values())
            report("routing_by_resource", len(client.acked), len(got_checkout) + len(got_other),
                   len(client.refused), dups)
            assert (len(client.acked), len(got_checkout), len(got_other)) == (330, 165, 165)
            assert dups == 0
            assert set(services_at(checkout).values()) == {"checkout"}
            assert set(services_at(other).values()) == {"cart"}
            for pid, n in (("traces/in", 330), ("traces/checkout", 165), ("traces/other", 165)):
                assert gw.metric("otelcol_gateway_pipeline_incoming_items_total", pipeline=pid) == n, pid
            assert gw.metric("otelcol_gateway_connector_unrouted_spans_total", connector="routing") == 0
            client.close()
    finally:
        checkout.stop()
        other.stop()


def test_unmatched_spans_without_default_pipelines_are_dropped_and_counted(ports: Ports) -> None:
    checkout = Sink().start()
    try:
        connectors = """  routing:
    table:
      - condition: attributes["service.name"] == "checkout"
        pipelines: [traces/checkout]
"""
        pipelines = ROUTED_PIPELINES.split("    traces/other:")[0]
        cfg = connected_config(ports, [exporter("checkout", checkout)], connectors, pipelines)
        with running(cfg, ports) as gw:
            client = ExportClient(ports.grpc)
            for i in range(10):
                assert client.send({"checkout": [f"c{i}-{k}" for k in range(3)],
                                    "cart": [f"x{i}-{k}" for k in range(7)]})
            got = wait_all(checkout, [n for n in client.acked if n.startswith("c")])
            wait_until(lambda: gw.metric("otelcol_gateway_connector_unrouted_spans_total", connector="routing") == 70,
                       10, "the unrouted counter")
            assert len(got) == 30 and set(services_at(checkout).values()) == {"checkout"}
            client.close()
    finally:
        checkout.stop()


def test_routing_by_tenant_isolates_a_tenant_whose_backend_is_down(ports: Ports) -> None:
    acme, rest = Sink().start(), Sink().start()
    try:
        acme.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE))
        slow = "{initial_interval: 200ms, max_interval: 200ms, max_elapsed_time: 60s}"
        connectors = """  routing:
    default_pipelines: [traces/rest]
    table:
      - context: request
        condition: request["auth.tenant"] == "acme"
        pipelines: [traces/acme]
"""
        pipelines = """    traces/in:
      receivers: [otlp]
      processors: [batch]
      exporters: [routing]
    traces/acme:
      receivers: [routing]
      exporters: [otlp/acme]
    traces/rest:
      receivers: [routing]
      exporters: [otlp/rest]
"""
        extensions = """  bearertokenauth:
    tokens: [{token: tok-acme, tenant: acme}, {token: tok-beta, tenant: beta}]
"""
        cfg = connected_config(
            ports, [exporter("acme", acme, queue="{num_consumers: 1, queue_size: 4}", retry=slow),
                    exporter("rest", rest)],
            connectors, pipelines, extensions=extensions, service_extensions=", bearertokenauth",
            otlp_extra=", auth: {authenticator: bearertokenauth}")
        with running(cfg, ports) as gw:
            a, b = ExportClient(ports.grpc, "tok-acme"), ExportClient(ports.grpc, "tok-beta")
            for i in range(10):
                a.send({"svc": [f"a{i}-{k}" for k in range(10)]})
                assert b.send({"svc": [f"b{i}-{k}" for k in range(10)]}), "beta is never refused"
            assert len(a.acked) == 40, "acme's queue holds 4 requests (queued and in flight)"
            assert a.codes["UNAVAILABLE"] == 6
            got_b = wait_all(rest, b.acked)
            assert len(got_b) == 100 and not set(got_b) & set(a.acked + a.refused)
            clear_faults(acme)
            got_a = wait_all(acme, a.acked, timeout=60)
            wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp/acme") == 0, 10, "drained")
            dups = sum(n - 1 for n in got_a.values()) + sum(n - 1 for n in got_b.values())
            report("routing_by_tenant_one_down", len(a.acked) + len(b.acked), len(got_a) + len(got_b),
                   len(a.refused), dups)
            assert dups == 0
            assert len(got_a) == 40 and not set(names_at(acme)) & set(a.refused)
            assert not set(names_at(acme)) & set(b.acked)
            assert gw.metric("otelcol_receiver_refused_spans_total") == 60
            a.close()
            b.close()
    finally:
        acme.stop()
        rest.stop()


def test_admit_then_consume_counts_unrouted_items_once() -> None:
    """A fan-out asks `admit` before `consume`: asking changes nothing, so unrouted items count once."""
    import asyncio

    from gateway.component import Settings
    from gateway.connectors.routing import RoutingConnector
    from gateway.telemetry import Telemetry
    from pipelines.batch import Batch
    from pipelines.connectors.routing import Config, RouteConfig
    from tests.connectors.support import services_request

    class _Sink:
        def __init__(self) -> None:
            self.got: list[Batch] = []

        def admit(self, batch: Batch) -> None:
            pass

        async def consume(self, batch: Batch) -> None:
            self.got.append(batch)

    telemetry = Telemetry()
    sink = _Sink()
    cfg = Config(table=(RouteConfig(condition='attributes["service.name"] == "checkout"', pipelines=("traces/c",)),))
    connector = RoutingConnector(Settings("routing", cfg, telemetry, None), {"traces/c": sink},  # type: ignore[arg-type]
                                 "traces")
    batch = Batch("traces", services_request({"checkout": ["a"], "cart": ["b", "c"]}), 3)
    connector.admit(batch)
    asyncio.run(connector.consume(batch.share()))
    unrouted = telemetry.registry.get_sample_value("otelcol_gateway_connector_unrouted_spans_total",
                                                   {"connector": "routing"})
    assert unrouted == 2
    assert sum(b.items for b in sink.got) == 1
