"""The supervisor's `/api/v1/stats` with `service::workers: 2` while a worker misses a read or restarts: the
totals never go back (a client such as `gateway top` takes rates from two reads)."""

from __future__ import annotations

import os
import signal
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import GatewayProcess, Ports, Sink, free_port, running, wait_until
from tests.two_workers import config as two_workers
from tests.two_workers import get, private_ports, providers_by_worker


@pytest.fixture
def gateway(sink: Sink) -> Iterator[tuple[GatewayProcess, int, float]]:
    """Two workers that took spans, and what they accepted in all."""
    ports, admin = Ports.free(), free_port()
    with running(two_workers(ports, sink, f"127.0.0.1:{admin}"), ports) as gw:
        providers, _ = providers_by_worker(gw)
        for p in providers.values():
            for _ in range(20):
                with p.get_tracer("t").start_as_current_span("GET /cart"):
                    pass
            p.shutdown()
        body = get(admin, "/api/v1/stats")
        assert body["answered"] == 2 and body["stale"] == []
        yield gw, admin, body["components"]["receiver:otlp"]["accepted"]


def _accepted(body: dict[str, Any]) -> float:
    return float(body["components"]["receiver:otlp"]["accepted"])


def test_a_worker_missing_a_read_counts_with_its_last_answer(gateway: tuple[GatewayProcess, int, float]) -> None:
    gw, admin, total = gateway
    pid, _ = private_ports(gw)[2]
    os.kill(pid, signal.SIGSTOP)
    try:
        missing = get(admin, "/api/v1/stats")
    finally:
        os.kill(pid, signal.SIGCONT)
    # Before the fix the total dropped by worker 2's share here, and jumped back at the next read.
    assert missing["answered"] == 1 and missing["stale"] == [{"worker": 2, "pid": pid}]
    assert _accepted(missing) == total
    assert missing["components"]["receiver:otlp"]["status"] == "StatusOK"
    back = get(admin, "/api/v1/stats")
    assert back["answered"] == 2 and back["stale"] == [] and _accepted(back) == total


def test_a_worker_restarting_is_skipped_and_its_totals_kept(gateway: tuple[GatewayProcess, int, float]) -> None:
    gw, admin, total = gateway
    old, _ = private_ports(gw)[2]
    os.kill(old, signal.SIGKILL)
    reads: list[dict[str, Any]] = []

    def read() -> dict[str, Any]:
        try:
            reads.append(get(admin, "/api/v1/stats"))
        except urllib.error.HTTPError as exc:  # never: worker 1 answers throughout
            pytest.fail(f"{exc.code} {exc.read().decode()}")
        return reads[-1]

    wait_until(lambda: [w["worker"] for w in read()["workers"]] == [1], 20, "worker 2 skipped while it restarts")
    wait_until(lambda: read()["answered"] == 2, 60, "worker 2 back")
    assert reads[-1]["workers"][1]["pid"] != old
    # Before the fix the total dropped by what worker 2 had counted, for good once it had restarted.
    assert {_accepted(r) for r in reads} == {total}, [(r["workers"], r["answered"], _accepted(r)) for r in reads]
