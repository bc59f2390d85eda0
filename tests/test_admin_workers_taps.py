"""The supervisor's tap with `service::workers: 2` under stress: an item longer than a line may be, a worker
that does not answer, many taps open at once, and all traffic on one worker."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway.admin.workers import MAX_LINE, MAX_TAPS, Bucket, Target, _Lines
from tests.e2e.support import spans_request
from tests.harness import GatewayProcess, Ports, Sink, free_port, running, wait_until
from tests.two_workers import config, get, private_ports, providers_by_worker


@pytest.fixture
def gateway(sink: Sink) -> Iterator[tuple[GatewayProcess, int]]:
    ports, admin = Ports.free(), free_port()
    with running(config(ports, sink, f"127.0.0.1:{admin}"), ports) as gw:
        yield gw, admin


def _sending(providers: dict[int, TracerProvider], done: threading.Event, blob: int) -> threading.Thread:
    """Rounds of a span with a `blob`-byte attribute, then a small one, on every worker, until `done`."""
    def run() -> None:
        tracers = [p.get_tracer("t") for p in providers.values()]
        while not done.is_set():
            for tracer in tracers:
                with tracer.start_as_current_span("big") as span:
                    span.set_attribute("blob", "x" * blob)
                with tracer.start_as_current_span("small"):
                    pass
            done.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_item_over_the_line_limit_is_skipped_and_the_tap_goes_on(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    providers, _ = providers_by_worker(gw)
    done = threading.Event()
    seen: list[dict[str, object]] = []
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/tap?component=receiver:otlp&rate=100",
                                timeout=30) as resp:
        sender = _sending(providers, done, MAX_LINE + 100_000)
        try:
            # Before the fix the reader died on the long line: its share, and here the whole tap, went silent.
            for line in resp:
                seen.append(json.loads(line))
                skipped = [i for i, item in enumerate(seen) if "skipped" in item]
                if skipped and any(item.get("name") == "small" for item in seen[skipped[0]:]):
                    break
        finally:
            done.set()
            sender.join(10)
            for p in providers.values():
                p.shutdown()
    note = next(item for item in seen if "skipped" in item)
    assert note["worker"] in (1, 2) and int(str(note["bytes"])) > MAX_LINE, note
    assert f"over the supervisor's {MAX_LINE} bytes" in str(note["skipped"])
    assert all(item.get("name") != "big" for item in seen)  # each was over the limit


def test_a_worker_that_does_not_answer_is_left_out_of_a_tap(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    pid, _ = private_ports(gw)[2]
    os.kill(pid, signal.SIGSTOP)  # its kernel still accepts connections; nothing answers them
    try:
        # Before the fix the supervisor waited for its answer forever, and so did the client.
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/tap?component=receiver:otlp",
                                    timeout=30) as resp:
            assert resp.status == 200 and resp.headers["X-Gateway-Workers"] == "1"
        assert get(admin, "/api/v1/stats")["answered"] == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "admin: worker 2 left out of a tap: it did not open one" in gw.stderr()


def test_open_taps_never_starve_the_other_routes_and_one_too_many_is_refused(
        gateway: tuple[GatewayProcess, int]) -> None:
    _, admin = gateway
    url = f"http://127.0.0.1:{admin}/api/v1/tap?component=receiver:otlp"
    taps = []
    try:
        for _ in range(MAX_TAPS):
            taps.append(urllib.request.urlopen(url, timeout=30))
        assert all(t.headers["X-Gateway-Workers"] == "1,2" for t in taps)
        # Before the fix the taps shared the pool of these questions (100 connections, one per tap and worker).
        assert get(admin, "/api/v1/stats")["answered"] == 2
        assert [w["worker"] for w in get(admin, "/api/v1/graph")["workers"]] == [1, 2]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=30)
        assert err.value.code == 429
        assert err.value.read().decode() == (f"admin endpoint: {MAX_TAPS} taps are open, the most at once; "
                                             f"close one and try again")
        taps.pop().close()

        def opens() -> bool:  # once the supervisor saw that client leave
            try:
                taps.append(urllib.request.urlopen(url, timeout=30))
            except urllib.error.HTTPError as exc:
                assert exc.code == 429
                return False
            return True

        wait_until(opens, 10, "a tap again once one closed")
    finally:
        for t in taps:
            t.close()


def test_a_tap_gets_its_whole_rate_when_all_traffic_reaches_one_worker(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    assert gw.ports is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/tap?component=receiver:otlp&rate=10&limit=10",
                                timeout=30) as resp:
        conn = http.client.HTTPConnection("127.0.0.1", gw.ports.http, timeout=10)  # one connection: one worker
        try:
            conn.request("POST", "/v1/traces", spans_request(40).SerializeToString(),
                         {"Content-Type": "application/x-protobuf"})
            assert conn.getresponse().read() is not None
        finally:
            conn.close()
        # One batch of 40 spans: a full bucket (10) of them. Before the fix that worker's tap ran at 10 / 2,
        # five items, and the tap waited for more.
        spans = [json.loads(line) for line in resp.read().splitlines()]
    assert len(spans) == 10 and len({s["worker"] for s in spans}) == 1, spans


def test_the_supervisor_bounds_the_merged_rate() -> None:
    bucket = Bucket(10, now=100.0)
    assert sum(bucket.take(100.0) for _ in range(30)) == 10  # a burst of `rate`
    assert sum(bucket.take(100.5) for _ in range(30)) == 5
    assert sum(bucket.take(200.0) for _ in range(30)) == 10  # never more than one burst
    slow = Bucket(0.5, now=0.0)
    assert [slow.take(t) for t in (0.0, 0.0, 1.0, 2.0)] == [True, False, False, True]


def test_lines_are_cut_across_chunks_and_a_long_one_is_replaced() -> None:
    cut = _Lines("line", Target(2, 77, 0))
    out = cut.feed(b"one\ntw")
    out += cut.feed(b"o\n" + b"x" * MAX_LINE)
    out += cut.feed(b"yy\nthree\nfou")
    out += cut.end()
    assert out == [b"one\n", b"two\n", f"worker 2 (pid 77): an item of {MAX_LINE + 3} bytes skipped: over the "
                   f"supervisor's {MAX_LINE} bytes a tap line\n".encode(), b"three\n", b"fou\n"]
    exact = _Lines("json", Target(1, 5, 0))
    assert exact.feed(b"x" * (MAX_LINE - 1) + b"\n") == [b"x" * (MAX_LINE - 1) + b"\n"]
    assert json.loads(exact.feed(b"x" * MAX_LINE + b"\n")[0]) == {
        "worker": 1, "pid": 5, "bytes": MAX_LINE + 1,
        "skipped": f"an item of {MAX_LINE + 1} bytes skipped: over the supervisor's {MAX_LINE} bytes a tap line"}
