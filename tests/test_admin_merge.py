"""How the supervisor merges its workers' answers (`service::workers`): stats summed with the worst status
and the totals of workers that exited."""

from __future__ import annotations

from typing import Any

from gateway.admin import stats


def _exporter(sent: int, status: str, error: str | None = None, queue: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"kind": "exporter", "id": "otlp", "dropped": {"retries_exhausted": 1}, "sent": sent,
                         "failed": 1, "in": sent + 1, "out": sent, "queue_size": queue, "queue_capacity": 100,
                         "status": status}
    if error:
        c["error"] = error
    return c


def test_the_worst_status_wins_with_its_error() -> None:
    ok = {"exporter:otlp": _exporter(5, "StatusOK")}
    retrying = {"exporter:otlp": _exporter(3, "StatusRecoverableError", "UNAVAILABLE: backend down")}
    starting = {"exporter:otlp": _exporter(0, "StatusStarting")}
    for order in ([ok, retrying, starting], [retrying, starting, ok], [starting, ok, retrying]):
        merged = stats.merge(order)["exporter:otlp"]
        assert merged["status"] == "StatusRecoverableError" and merged["error"] == "UNAVAILABLE: backend down"
        assert merged["sent"] == 8 and merged["queue_capacity"] == 300
        assert merged["dropped"] == {"retries_exhausted": 3}
    assert "error" not in stats.merge([ok, starting])["exporter:otlp"]
    assert stats.merge([ok, starting])["exporter:otlp"]["status"] == "StatusStarting"


def test_the_totals_of_a_worker_that_exited_stay_in_the_sums() -> None:
    gone = {"exporter:otlp": _exporter(7, "StatusRecoverableError", "down", queue=40),
            "processor:removed": {"kind": "processor", "id": "removed", "dropped": {}, "in": 9, "out": 9}}
    retired = stats.counters(gone)
    assert retired["exporter:otlp"] == {"kind": "exporter", "id": "otlp", "dropped": {"retries_exhausted": 1},
                                        "sent": 7, "failed": 1, "in": 8, "out": 7}
    now = stats.merge([{"exporter:otlp": _exporter(2, "StatusOK", queue=3)}], retired)
    # Its counts stay; what it held (its queue) and its status went with it; a component no longer in the
    # graph is not brought back.
    assert now == {"exporter:otlp": {"kind": "exporter", "id": "otlp", "dropped": {"retries_exhausted": 2},
                                     "sent": 9, "failed": 2, "in": 11, "out": 9, "queue_size": 3,
                                     "queue_capacity": 100, "status": "StatusOK"}}
