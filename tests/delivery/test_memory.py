"""A stalled backend under sustained load: the memory_limiter keeps the gateway's RSS under its limit by
refusing (retryably) instead of buffering without bound; once the backend answers, every span the
gateway acknowledged arrives."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import grpc

from tests.delivery.configs import config, exporter
from tests.delivery.load import Client, Load, clear_faults, report, wait_all
from tests.harness import Fault, Ports, Sink, running, wait_until

LIMIT_MIB = 120
SPIKE_MIB = 20


def _rss(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


def test_stalled_backend_under_load_keeps_rss_under_the_limit(ports: Ports, sink: Sink) -> None:
    # Stalled: every export hangs past the exporter's timeout, then fails.
    sink.fail_next(Fault(-1, grpc_code=grpc.StatusCode.UNAVAILABLE, delay=0.5))
    limiter = f"memory_limiter: {{check_interval: 100ms, limit_mib: {LIMIT_MIB}, spike_limit_mib: {SPIKE_MIB}}}"
    cfg = config(ports, [exporter("a", sink, timeout="300ms", queue="{num_consumers: 4, queue_size: 1000000}")],
                 ["otlp/a"], extra_processors=limiter, pipeline_processors="[memory_limiter, batch]")
    with running(cfg, ports) as gw:
        assert gw.proc is not None
        pid = gw.proc.pid
        peak = _rss(pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.02):
                peak = max(peak, _rss(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = Client(ports.grpc, ports.http)
        load = Load(client, "mem", per_request=100, threads=6, pad=1000).start()
        try:
            wait_until(lambda: len(client.refused) >= 2000, 60, "the memory limiter refusing")
            t0 = time.monotonic()
            # Sustained: keep the pressure on for a while after the limit was first reached.
            wait_until(lambda: time.monotonic() - t0 > 5 and len(client.refused) >= 20000, 60, "sustained load")
        finally:
            load.stop()
        stop.set()
        sampler.join()
        refused_metric = gw.metric("otelcol_processor_refused_spans_total", processor="memory_limiter")
        assert gw.metric("otelcol_receiver_refused_spans_total") == len(client.refused)
        assert refused_metric == len(client.refused)
        assert peak < LIMIT_MIB * 1024 * 1024, f"peak RSS {peak >> 20} MiB over the {LIMIT_MIB} MiB limit"
        clear_faults(sink)
        got = wait_all(sink, client.acked, timeout=60)
        dups = sum(n - 1 for n in got.values())
        report("stalled_backend_memory_limit", len(client.acked), len(got), len(client.refused), dups,
               peak_rss_mib=f"{peak / 2**20:.1f}", limit_mib=LIMIT_MIB, soft_limit_mib=LIMIT_MIB - SPIKE_MIB)
        client.close()
