"""The persistent queue against kill -9, torn writes, a disk bound, and SIGTERM; the in-memory queue's
drain at SIGTERM. Each test prints its figures."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import grpc

from tests.delivery.configs import config, exporter
from tests.delivery.load import Client, Load, clear_faults, report, wait_all
from tests.harness import Fault, GatewayProcess, Ports, Sink, wait_until

STORAGE = "  file_storage/q:\n    directory: {dir}\n    max_size_mib: {mib}\n"


def _persistent_config(ports: Ports, sink: Sink, directory: Path, batch: str = "{timeout: 200ms}",
                       mib: int = 256, queue_size: int = 100000, timeout: str = "5s") -> str:
    queue = f"{{storage: file_storage/q, num_consumers: 4, queue_size: {queue_size}}}"
    return config(ports, [exporter("a", sink, queue=queue)], ["otlp/a"], batch=batch,
                  extensions=STORAGE.format(dir=directory, mib=mib),
                  service_extra=f"  shutdown_timeout: {timeout}\n")


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("exporter_*/*.seg"))


def test_kill9_under_load_then_restart_delivers_every_acknowledged_span(ports: Ports, sink: Sink,
                                                                        tmp_path: Path) -> None:
    cfg = _persistent_config(ports, sink, tmp_path, batch="{timeout: 300ms, send_batch_size: 2000}")
    gw = GatewayProcess(cfg, ports=ports).start()
    client = Client(ports.grpc, ports.http)
    load = Load(client, "k9", per_request=20, threads=4).start()
    try:
        wait_until(lambda: len(client.acked) >= 4000 and sink.span_count() >= 1000, 30, "load under way")
        gw.kill()
    finally:
        load.stop()
    delivered_before = sink.span_count()
    backlog = len(client.acked) - delivered_before
    gw2 = GatewayProcess(cfg, ports=ports).start()
    try:
        got = wait_all(sink, client.acked, timeout=60)
        dups = sum(n - 1 for n in got.values())
        report("kill9_persistent_under_load", len(client.acked), len(got), len(client.refused), dups,
               delivered_before_kill=delivered_before, backlog_at_kill=backlog)
        assert gw2.stop() == 0
    finally:
        gw2.kill()
        client.close()


def test_spans_waiting_for_a_batch_survive_kill9_and_a_torn_tail(ports: Ports, sink: Sink, tmp_path: Path) -> None:
    # A batch that would wait 30 s: at the kill every span is still waiting for it.
    gw = GatewayProcess(_persistent_config(ports, sink, tmp_path, batch="{timeout: 30s, send_batch_size: 100000}"),
                        ports=ports).start()
    client = Client(ports.grpc, ports.http)
    for _ in range(25):
        assert client.send(client.next_names(8, "waiting")).ok
    assert not sink.received
    gw.kill()
    segment = _segments(tmp_path)[-1]
    intact = segment.stat().st_size
    # A record torn by the crash: a header promising more bytes than were written.
    with segment.open("ab") as f:
        f.write((5000).to_bytes(4, "little") + b"\x00\x00\x00\x00" + b"partial")
    gw2 = GatewayProcess(_persistent_config(ports, sink, tmp_path), ports=ports).start()
    try:
        got = wait_all(sink, client.acked, timeout=30)
        dups = sum(n - 1 for n in got.values())
        report("kill9_batch_waiting_torn_tail", len(client.acked), len(got), 0, dups)
        assert dups == 0
        assert "torn or corrupt" in gw2.stderr()
        assert not segment.exists() or segment.stat().st_size == intact
        wait_until(lambda: gw2.metric("otelcol_exporter_queue_size", exporter="otlp/a") == 0, 10, "an empty queue")
        assert gw2.stop() == 0
    finally:
        gw2.kill()
        client.close()
    assert not _segments(tmp_path) or all(s.stat().st_size == 0 for s in _segments(tmp_path))


def test_disk_bound_refuses_new_data_and_keeps_the_old(ports: Ports, sink: Sink, tmp_path: Path) -> None:
    sink.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE))
    gw = GatewayProcess(_persistent_config(ports, sink, tmp_path, mib=1), ports=ports).start()
    client = Client(ports.grpc, ports.http)
    try:
        while not client.refused:
            client.send(client.next_names(10, "disk"), pad=2000)
            assert len(client.acked) < 2000, "the disk bound never refused"
        for _ in range(5):
            client.send(client.next_names(10, "disk"), pad=2000)
        used = gw.metric("otelcol_gateway_storage_used_bytes", extension="file_storage/q")
        assert 0 < used <= 1024 * 1024
        assert gw.metric("otelcol_gateway_storage_capacity_bytes", extension="file_storage/q") == 1024 * 1024
        assert gw.metric("otelcol_exporter_enqueue_failed_spans_total") == len(client.refused)
        assert gw.metric("otelcol_receiver_refused_spans_total") == len(client.refused)
        assert client.codes["UNAVAILABLE"] >= 5
        clear_faults(sink)
        got = wait_all(sink, client.acked, timeout=30)
        dups = sum(n - 1 for n in got.values())
        report("disk_bound_1MiB", len(client.acked), len(got), len(client.refused), dups, used_bytes=int(used))
        assert dups == 0
        wait_until(lambda: gw.metric("otelcol_gateway_storage_used_bytes", extension="file_storage/q") < used,
                   10, "disk use to fall once delivered")
    finally:
        gw.kill()
        client.close()


def test_sigterm_keeps_the_persistent_queue_for_the_next_start(ports: Ports, sink: Sink, tmp_path: Path) -> None:
    sink.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE))
    cfg = _persistent_config(ports, sink, tmp_path, timeout="20s")
    gw = GatewayProcess(cfg, ports=ports).start()
    client = Client(ports.grpc, ports.http)
    try:
        for _ in range(30):
            assert client.send(client.next_names(10, "term")).ok
        wait_until(lambda: sink.refused >= 3, 10, "the backend refusing")
        assert gw.stop(timeout=15) == 0, "retries stop at once: the queue is on disk"
        assert re.search(r"300 spans kept in the persistent queue", gw.stderr())
        clear_faults(sink)
        gw2 = GatewayProcess(cfg, ports=ports).start()
        got = wait_all(sink, client.acked, timeout=30)
        dups = sum(n - 1 for n in got.values())
        report("sigterm_persistent_then_restart", len(client.acked), len(got), 0, dups)
        assert dups == 0
        assert gw2.stop() == 0
    finally:
        gw.kill()
        client.close()


def test_sigterm_flushes_batches_and_drains_the_memory_queue(ports: Ports, sink: Sink) -> None:
    cfg = config(ports, [exporter("a", sink)], ["otlp/a"], batch="{timeout: 30s, send_batch_size: 100000}")
    gw = GatewayProcess(cfg, ports=ports).start()
    client = Client(ports.grpc, ports.http)
    try:
        for _ in range(20):
            assert client.send(client.next_names(10, "flush")).ok
        assert not sink.received, "still waiting for the batch"
        assert gw.stop(signal.SIGTERM) == 0
        got = wait_all(sink, client.acked, timeout=1)
        report("sigterm_memory_drain", len(client.acked), len(got), 0, sum(n - 1 for n in got.values()))
    finally:
        gw.kill()
        client.close()


def test_sigterm_with_backend_down_counts_what_the_memory_queue_drops(ports: Ports, sink: Sink) -> None:
    sink.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE))
    cfg = config(ports, [exporter("a", sink)], ["otlp/a"], service_extra="  shutdown_timeout: 1s\n")
    gw = GatewayProcess(cfg, ports=ports).start()
    client = Client(ports.grpc, ports.http)
    try:
        for _ in range(10):
            assert client.send(client.next_names(10, "lost")).ok
        wait_until(lambda: sink.refused >= 2, 10, "the backend refusing")
        assert gw.stop(signal.SIGTERM, timeout=10) == 0
        match = re.search(r"shutdown deadline passed with (\d+) spans still queued; dropped", gw.stderr())
        assert match is not None, gw.stderr()
        report("sigterm_memory_backend_down", len(client.acked), 0, 0, 0, dropped_counted=int(match.group(1)))
        assert int(match.group(1)) == len(client.acked)
    finally:
        gw.kill()
        client.close()
