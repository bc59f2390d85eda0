"""How the supervisor merges its workers' answers (`service::workers`): stats summed with the worst status
and the totals of workers that exited; traces and before/after views unioned by span, within what one
answer may hold."""

from __future__ import annotations

from typing import Any

from gateway.admin import diff, stats, watch


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


def _span(trace: int, span: int, worker: int = 1, pipeline: str = "traces", parent: int | None = 0) -> dict[str, Any]:
    return {"trace_id": f"{trace:032x}", "span_id": f"{span:016x}", "name": f"s{span}", "service": "svc",
            "parent_span_id": "" if parent is None else f"{parent:016x}", "start_unix_nano": trace * 1000 + span,
            "end_unix_nano": trace * 1000 + span + 10, "status": {"code": "UNSET"}, "worker": worker,
            "pipeline": pipeline, "state": "kept"}


def _traces(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_trace: dict[str, dict[str, dict[str, Any]]] = {}
    for s in spans:
        by_trace.setdefault(s["trace_id"], {})[s["span_id"]] = s
    return [watch.summarize(tid, by_id) for tid, by_id in by_trace.items()]


def test_the_same_span_from_two_workers_is_one() -> None:
    # A trace's spans over two connections, one span (a retried export) reaching both workers.
    one = _traces([_span(1, 1, 1, parent=None), _span(1, 2, 1)])
    two = _traces([_span(1, 2, 2), _span(1, 3, 2)])
    [trace] = watch.merge([one, two])
    assert [s["span_id"][-1] for s in trace["spans"]] == ["1", "2", "3"] and trace["span_count"] == 3
    assert trace["root"] == "s1" and trace["spans"][1]["worker"] == 1  # the first worker's copy
    # In a before/after view a span is one per pipeline: the same span id in two pipelines is two.
    [view] = diff.merge([one, two, _traces([_span(1, 2, 2, pipeline="other")])])
    assert view["span_count"] == 4 and view["kept"] == 4
    assert sorted((s["span_id"][-1], s["pipeline"]) for s in view["spans"]) == [
        ("1", "traces"), ("2", "other"), ("2", "traces"), ("3", "traces")]


def test_a_merge_keeps_what_one_answer_may_hold() -> None:
    # Eight workers, each with its newest traces of SPANS spans, all different.
    per_worker = [_traces([_span(t, w * watch.SPANS + s, w, parent=None if s == 0 and w == 0 else 0)
                           for t in range(1, watch.TRACES + 1) for s in range(watch.SPANS)]) for w in range(8)]
    merged = watch.merge(per_worker)
    assert all(t["span_count"] == len(t["spans"]) == watch.SPANS for t in merged)  # of 8 x SPANS each
    assert sum(t["span_count"] for t in merged) <= watch.ANSWER_SPANS
    assert [t["trace_id"] for t in merged] == [f"{t:032x}" for t in range(watch.TRACES, 0, -1)][:len(merged)]
    small = watch.merge([_traces([_span(t, 1, parent=None)]) for t in range(1, 3 * watch.TRACES)])
    assert len(small) == watch.TRACES and small[0]["trace_id"] == f"{3 * watch.TRACES - 1:032x}"


def test_an_answer_holds_the_newest_traces_that_fit() -> None:
    sizes = [("a", [0] * 300), ("b", [0] * 1500), ("c", [0] * 400), ("d", [0] * 1)]
    assert [t for t, _ in watch.newest(sizes, watch.spans_of)] == ["a", "b"]
    assert [t for t, _ in watch.newest([("big", [0] * (watch.ANSWER_SPANS + 1))], watch.spans_of)] == ["big"]
    assert len(watch.newest([(str(i), [0]) for i in range(100)], watch.spans_of)) == watch.TRACES
