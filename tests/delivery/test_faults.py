"""Fault injection against a running gateway: refusing, down, throttling and stalled backends, and a
full queue. Every test prints its figures (acknowledged, delivered, refused, duplicated)."""

from __future__ import annotations

import time

import grpc

from tests.delivery.configs import config, exporter
from tests.delivery.load import Client, Load, clear_faults, names_at, report, wait_all
from tests.harness import Fault, Ports, Sink, running, wait_until


def test_backend_refusing_the_next_exports_then_accepting(ports: Ports, sink: Sink) -> None:
    sink.fail_next(Fault(5, grpc_code=grpc.StatusCode.UNAVAILABLE))
    cfg = config(ports, [exporter("a", sink)], ["otlp/a"])
    with running(cfg, ports) as gw:
        client = Client(ports.grpc, ports.http)
        for _ in range(40):
            assert client.send(client.next_names(10, "n")).ok
        got = wait_all(sink, client.acked)
        wait_until(lambda: gw.metric("otelcol_exporter_sent_spans_total") == 400, 10, "sent counter")
        dups = sum(n - 1 for n in got.values())
        report("refuse_next_5_then_accept", len(client.acked), len(got), len(client.refused), dups,
               backend_refusals=sink.refused)
        assert sink.refused == 5
        assert dups == 0, "every span arrives once"
        assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
        client.close()


def test_backend_down_for_seconds_then_back(ports: Ports, sink: Sink) -> None:
    sink.fail_next(Fault(-1, http_status=503))
    cfg = config(ports, [exporter("a", sink, kind="otlphttp")], ["otlphttp/a"])
    with running(cfg, ports) as gw:
        client = Client(ports.grpc, ports.http, transport="http")
        load = Load(client, "down", per_request=25, threads=2, pause=0.01).start()
        wait_until(lambda: sink.refused >= 20 and len(client.acked) >= 1000, 20, "a backlog while down")
        down_since = sink.request_times[0]
        wait_until(lambda: time.monotonic() - down_since >= 3.0, 10, "three seconds of outage")
        clear_faults(sink)
        load.stop()
        got = wait_all(sink, client.acked, timeout=60)
        dups = sum(n - 1 for n in got.values())
        report("backend_down_3s_then_back", len(client.acked), len(set(got)), len(client.refused), dups,
               backend_refusals=sink.refused)
        assert not client.refused
        assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
        assert dups == 0
        client.close()


def test_429_with_retry_after_is_honoured(ports: Ports, sink: Sink) -> None:
    sink.fail_next(Fault(1, http_status=429, retry_after="2"))
    cfg = config(ports, [exporter("a", sink, kind="otlphttp")], ["otlphttp/a"])
    with running(cfg, ports):
        client = Client(ports.grpc, ports.http)
        assert client.send(client.next_names(5, "throttled")).ok
        got = wait_all(sink, client.acked, timeout=20)
        gap = sink.request_times[1] - sink.request_times[0]
        report("429_retry_after_2", len(client.acked), len(got), 0, sum(n - 1 for n in got.values()),
               gap_seconds=f"{gap:.2f}")
        # The configured backoff is 50 ms: only the server's Retry-After explains a 2 s wait.
        assert gap >= 2.0
        client.close()


def test_one_backend_down_does_not_slow_the_other(ports: Ports) -> None:
    down, up = Sink().start(), Sink().start()
    try:
        # A stall: every export to `down` hangs past the exporter's timeout.
        down.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE, delay=1.0))
        cfg = config(ports, [exporter("down", down, timeout="300ms", queue="{num_consumers: 4, queue_size: 5000}"),
                             exporter("up", up)], ["otlp/down", "otlp/up"])
        with running(cfg, ports) as gw:
            client = Client(ports.grpc, ports.http)
            t0 = time.monotonic()
            for _ in range(200):
                assert client.send(client.next_names(20, "fan")).ok
            acked_in = time.monotonic() - t0
            wait_all(up, client.acked, timeout=30)
            up_in = time.monotonic() - t0
            # The other backend got everything while this one has still received nothing.
            assert not down.received
            assert gw.metric("otelcol_exporter_queue_size", exporter="otlp/down") > 0
            clear_faults(down)
            got_down = wait_all(down, client.acked, timeout=60)
            got_up = names_at(up)
            report("one_of_two_down", len(client.acked), len(got_up), len(client.refused),
                   sum(n - 1 for n in got_up.values()) + sum(n - 1 for n in got_down.values()),
                   up_spans_per_s=int(len(client.acked) / up_in), acked_in_s=f"{acked_in:.2f}",
                   up_complete_in_s=f"{up_in:.2f}")
            client.close()
    finally:
        down.stop()
        up.stop()


def test_full_queue_refuses_with_retryable_answer(ports: Ports, sink: Sink) -> None:
    sink.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE))
    slow_retry = "{initial_interval: 200ms, max_interval: 200ms, max_elapsed_time: 60s}"
    cfg = config(ports, [exporter("a", sink, queue="{num_consumers: 1, queue_size: 4}", retry=slow_retry)],
                 ["otlp/a"])
    with running(cfg, ports) as gw:
        grpc_client = Client(ports.grpc, ports.http, "grpc")
        http_client = Client(ports.grpc, ports.http, "http")
        for i in range(10):
            for c in (grpc_client, http_client):
                c.send(c.next_names(10, f"full{i}{c.transport}"))
        acked = grpc_client.acked + http_client.acked
        refused = grpc_client.refused + http_client.refused
        assert len(acked) == 40, "the queue holds 4 requests (queued and in flight)"
        assert grpc_client.codes["UNAVAILABLE"] > 0 and http_client.codes["503"] > 0
        assert all(r == "RetryInfo" for r in grpc_client.retry_afters)
        assert all(r is not None for r in http_client.retry_afters)
        assert gw.metric("otelcol_receiver_refused_spans_total") == len(refused)
        assert gw.metric("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp/a") == len(refused)
        assert gw.metric("otelcol_receiver_accepted_spans_total") == len(acked)
        assert gw.metric("otelcol_exporter_queue_size", exporter="otlp/a") == 4
        assert gw.metric("otelcol_exporter_queue_capacity", exporter="otlp/a") == 4
        clear_faults(sink)
        got = wait_all(sink, acked)
        wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp/a") == 0, 10, "an empty queue")
        dups = sum(n - 1 for n in got.values())
        report("queue_full", len(acked), len(got), len(refused), dups)
        assert dups == 0
        assert not set(got) & set(refused), "nothing refused was delivered"
        grpc_client.close()
        http_client.close()


def test_backend_off_the_network_then_back_on_the_same_port(ports: Ports, sink: Sink) -> None:
    from tests.delivery.proxy import Proxy

    proxy = Proxy(sink.grpc_port).up()
    via = Sink(grpc_port=proxy.port)  # only its port is used, for the exporter's endpoint
    cfg = config(ports, [exporter("a", via)], ["otlp/a"])
    with running(cfg, ports) as gw:
        client = Client(ports.grpc, ports.http)
        load = Load(client, "net", per_request=20, threads=2, pause=0.01).start()
        try:
            wait_until(lambda: sink.span_count() >= 200, 20, "spans flowing")
            proxy.down()
            at_down = len(client.acked)
            wait_until(lambda: len(client.acked) >= at_down + 2000, 20, "acknowledged while the backend is away")
            wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp/a") > 0, 10, "a backlog")
            proxy.up()
        finally:
            load.stop()
        got = wait_all(sink, client.acked, timeout=60)
        dups = sum(n - 1 for n in got.values())
        report("backend_off_network_then_back", len(client.acked), len(got), len(client.refused), dups,
               acked_while_down=len(client.acked) - at_down)
        assert not client.refused
        assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
        client.close()
    proxy.down()
