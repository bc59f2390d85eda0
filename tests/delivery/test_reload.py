"""A config reload under load (SIGHUP): the listeners stay open, requests in flight finish, queues are
handed to the new graph. Exact counts: every acknowledged span reaches the sink once, no request is
refused; spans sent after the reload carry the new processor's attribute and reach the added exporter;
an invalid config is refused with validate's message while traffic goes on."""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import pytest

from tests.delivery.configs import config, exporter
from tests.delivery.load import Client, Load, clear_faults, names_at, report, wait_all
from tests.harness import Fault, GatewayProcess, Ports, Sink, running, wait_until

TAG = 'attributes/tag: {actions: [{key: reloaded, value: "yes", action: insert}]}'
INVALID = "references processor 'attributes/nope' which is not configured"


def _configs(ports: Ports, a: Sink, b: Sink, workers: int) -> dict[str, str]:
    service = f"  workers: {workers}\n" if workers > 1 else ""
    one = exporter("a", a, queue="{num_consumers: 4, queue_size: 100000}")
    two = exporter("b", b, queue="{num_consumers: 4, queue_size: 100000}")
    # The same exporter a, changed: a new exporter takes over its queue.
    one_changed = exporter("a", a, queue="{num_consumers: 2, queue_size: 100000}", timeout="3s")
    return {
        "v1": config(ports, [one], ["otlp/a"], service_extra=service),
        "v2": config(ports, [one, two], ["otlp/a", "otlp/b"], extra_processors=TAG,
                     pipeline_processors="[attributes/tag, batch]", service_extra=service),
        "v3": config(ports, [one_changed, two], ["otlp/a", "otlp/b"], extra_processors=TAG,
                     pipeline_processors="[attributes/tag, batch]", service_extra=service),
        "invalid": config(ports, [one_changed, two], ["otlp/a", "otlp/b"], extra_processors=TAG,
                          pipeline_processors="[attributes/nope, batch]", service_extra=service),
    }


def _reload(gw: GatewayProcess, text: str, outcome: str, count: int) -> None:
    Path(gw.config_path).write_text(text)
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome=outcome) >= count, 60,
               f"{count} reload(s) {outcome}")


def _more_acked(client: Client, n: int) -> None:
    start = len(client.acked)
    wait_until(lambda: len(client.acked) >= start + n, 60, f"{n} more spans acknowledged")


def _tagged(sink: Sink) -> collections.Counter[str]:
    return collections.Counter(span.name for _, _, span in sink.spans()
                               if any(kv.key == "reloaded" and kv.value.string_value == "yes"
                                      for kv in span.attributes))


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_under_load_loses_nothing(ports: Ports, sink: Sink, workers: int) -> None:
    second = Sink().start()
    try:
        texts = _configs(ports, sink, second, workers)
        with running(texts["v1"], ports) as gw:
            # Over HTTP each request is a new connection, which the kernel spreads over the workers.
            client = Client(ports.grpc, ports.http, transport="grpc" if workers == 1 else "http")
            load = Load(client, "before", per_request=20, threads=4).start()
            try:
                _more_acked(client, 2000)
                _reload(gw, texts["v2"], "applied", workers)  # a processor and an exporter added
                load.tag = "after"  # names taken from here on are sent to the new graph
                _more_acked(client, 2000)
                # Exporter a changed while its backend is down: the new one takes over its queue.
                sink.fail_next(Fault(-1))
                wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp/a") > 50, 60,
                           "a backlog in exporter a")
                _reload(gw, texts["v3"], "applied", 2 * workers)
                clear_faults(sink)
                _more_acked(client, 2000)
                _reload(gw, texts["invalid"], "invalid", workers)
                _more_acked(client, 2000)
            finally:
                load.stop()
            assert client.refused == [], client.codes
            got = wait_all(sink, client.acked, timeout=60)
            after = [n for n in client.acked if n.startswith("after-")]
            at_second = wait_all(second, after, timeout=60)
            dups = sum(n - 1 for n in got.values())
            report(f"reload_under_load_workers_{workers}", len(client.acked), len(got), len(client.refused), dups,
                   after=len(after), at_added_exporter=len(after))
            assert set(got) == set(client.acked) and dups == 0
            assert set(names_at(second)) <= set(client.acked)
            assert all(at_second[n] == 1 for n in after)
            tagged_a, tagged_b = _tagged(sink), _tagged(second)
            assert all(tagged_a[n] == 1 and tagged_b[n] == 1 for n in after)
            log = gw.stderr()
            assert log.count(INVALID) == workers, log[-3000:]
            assert log.count("config reloaded") == 2 * workers
            assert log.count("queued request(s) handed to its new config") >= 1
            if workers > 1:
                assert all(f"worker-{i}\tgateway.reload" in log for i in (1, 2))
            client.close()
    finally:
        second.stop()


def test_a_changed_config_file_is_reloaded_when_watched(ports: Ports, sink: Sink) -> None:
    watch = "  reload: {watch: true, watch_interval: 100ms}\n"
    one = exporter("a", sink)
    before = config(ports, [one], ["otlp/a"], service_extra=watch)
    after = config(ports, [one], ["otlp/a"], extra_processors=TAG, pipeline_processors="[attributes/tag, batch]",
                   service_extra=watch)
    with running(before, ports) as gw:
        client = Client(ports.grpc, ports.http)
        load = Load(client, "before", per_request=10, threads=2).start()
        try:
            _more_acked(client, 500)
            # As a ConfigMap update does: the new file is renamed over the old one (no SIGHUP).
            staged = Path(gw.config_path).with_suffix(".new")
            staged.write_text(after)
            os.replace(staged, gw.config_path)
            wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome="applied") == 1, 30,
                       "the reload of the changed file")
            load.tag = "after"
            _more_acked(client, 500)
        finally:
            load.stop()
        assert client.refused == [], client.codes
        got = wait_all(sink, client.acked)
        tagged = _tagged(sink)
        assert all(n == 1 for n in got.values())
        assert all(tagged[n] == 1 for n in client.acked if n.startswith("after-"))
        assert "config file changed: reloading" in gw.stderr()
        client.close()


def test_a_changed_exporter_with_a_persistent_queue_reopens_it(ports: Ports, sink: Sink, tmp_path: Path) -> None:
    storage = f"  file_storage/q:\n    directory: {tmp_path}\n"
    queue = "{storage: file_storage/q, num_consumers: 4, queue_size: 100000}"
    before = config(ports, [exporter("a", sink, queue=queue)], ["otlp/a"], extensions=storage)
    after = config(ports, [exporter("a", sink, queue=queue, timeout="3s")], ["otlp/a"], extensions=storage)
    with running(before, ports) as gw:
        client = Client(ports.grpc, ports.http)
        load = Load(client, "p", per_request=20, threads=4).start()
        try:
            sink.fail_next(Fault(-1))  # a backlog on disk when the exporter is replaced
            wait_until(lambda: gw.metric("otelcol_exporter_queue_size", exporter="otlp/a") > 50, 60,
                       "a backlog in the persistent queue")
            _reload(gw, after, "applied", 1)
            clear_faults(sink)
            _more_acked(client, 2000)
        finally:
            load.stop()
        assert client.refused == [], client.codes
        got = wait_all(sink, client.acked, timeout=60)
        dups = sum(n - 1 for n in got.values())
        report("reload_persistent_queue", len(client.acked), len(got), len(client.refused), dups)
        assert set(got) == set(client.acked) and dups == 0
        assert "queued request(s) reopened from its persistent queue" in gw.stderr()
        client.close()
