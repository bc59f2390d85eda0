"""The admin endpoint with `service::workers: 2`: the supervisor answers for both workers (stats summed, a
tap and `gateway top` over both), spans sent by the OpenTelemetry SDK over connections that reach each
worker; and the endpoint behind `auth` (bearertokenauth), which beyond loopback it needs, with `tls`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.load import ConfigError, load_files
from tests.harness import REPO, GatewayProcess, Ports, Sink, free_port, running, wait_until
from tests.two_workers import accepted, config, get, private_ports, providers_by_worker, send_until

TOKEN = "admin-secret-7f3a"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def gateway(sink: Sink) -> Iterator[tuple[GatewayProcess, int]]:
    ports, admin = Ports.free(), free_port()
    with running(config(ports, sink, f"127.0.0.1:{admin}"), ports) as gw:
        yield gw, admin


def test_stats_sum_both_workers(gateway: tuple[GatewayProcess, int], sink: Sink) -> None:
    gw, admin = gateway
    providers, sent = providers_by_worker(gw)
    for p in providers.values():
        tracer = p.get_tracer("t")
        for name in ("GET /cart", "drop-me", "GET /cart"):
            with tracer.start_as_current_span(name):
                pass
        sent += 3
        p.shutdown()
    mine = {index: accepted(port) for index, (_, port) in private_ports(gw).items()}
    assert all(n > 0 for n in mine.values()), mine  # both workers took spans
    body = get(admin, "/api/v1/stats")
    assert body["answered"] == 2
    assert [w["worker"] for w in body["workers"]] == [1, 2]
    assert {w["pid"] for w in body["workers"]} == {pid for pid, _ in private_ports(gw).values()}
    c = body["components"]
    assert c["receiver:otlp"]["accepted"] == sent == sum(mine.values())
    assert c["processor:filter"]["in"] == sent and c["processor:filter"]["out"] == sent - 2
    assert c["processor:filter"]["dropped"] == {"filtered": 2}
    assert c["receiver:otlp"]["status"] == "StatusOK"
    wait_until(lambda: get(admin, "/api/v1/stats")["components"]["exporter:otlp"].get("sent") == sent - 2,
               what="both workers' exports summed")
    graph = get(admin, "/api/v1/graph")
    assert [w["worker"] for w in graph["workers"]] == [1, 2]
    assert graph["pipelines"][0]["processors"] == ["filter"]


def test_tap_merges_both_workers_and_stops_at_limit(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    providers, _ = providers_by_worker(gw)
    done = threading.Event()
    sender = send_until(providers, done, ("GET /cart", "drop-me"))
    try:
        out = subprocess.run([sys.executable, "-m", "gateway", "tap", "filter", "--outputs", "--limit", "24",
                              "--rate", "20", "--admin", f"http://127.0.0.1:{admin}"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        done.set()
        sender.join(10)
        for p in providers.values():
            p.shutdown()
    assert out.returncode == 0, out.stderr
    spans = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(spans) == 24
    assert {s["name"] for s in spans} == {"GET /cart"}
    pids = {pid for pid, _ in private_ports(gw).values()}
    assert {s["pid"] for s in spans} == pids and {s["worker"] for s in spans} == {1, 2}


def _tmux_top(admin: int, session: str, extra: str = "") -> list[str]:
    tmux = ["tmux", "-L", session]  # a server of its own: another server's default-size would win over -x
    # A COLUMNS inherited from this process would win over the pane's size.
    command = f"env -u COLUMNS -u LINES {sys.executable} -m gateway top --admin http://127.0.0.1:{admin} {extra}"
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "50", "-c", str(REPO), command],
                   check=True)
    return tmux


def _screen(tmux: list[str], session: str) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def _rate(screen: str, key: str) -> float:
    """The in/s cell of `key`'s row; 0 while blank."""
    rows = [r for r in screen.splitlines() if key in r]
    cells = rows[0].replace("│", " ").split()[2:3] if rows else []
    return float(cells[0]) if cells and cells[0].replace(".", "", 1).isdigit() else 0.0


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_top_says_two_workers_and_shows_a_processor_rate(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    providers, _ = providers_by_worker(gw)
    session = f"gwtop2-{admin}"
    tmux = _tmux_top(admin, session)
    done = threading.Event()
    sender = send_until(providers, done, ("GET /cart", "drop-me"))
    screen = ""
    try:
        def shows_rates() -> bool:
            nonlocal screen
            screen = _screen(tmux, session)
            return _rate(screen, "processor:filter") > 0 and _rate(screen, "receiver:otlp") > 0

        wait_until(shows_rates, 30, "a processor's non-zero rate on gateway top's screen")
    finally:
        done.set()
        sender.join(10)
        subprocess.run([*tmux, "kill-server"], check=False)
        for p in providers.values():
            p.shutdown()
    assert "2 workers (2 answered)" in screen, screen


def test_beyond_loopback_only_with_auth_and_tls(tmp_path: Path, sink: Sink) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config(Ports.free(), sink, "0.0.0.0:55690"))
    with pytest.raises(ConfigError) as err:
        load_files([str(path)])
    assert any(e.startswith("service::admin: endpoint '0.0.0.0:55690': beyond loopback") and "needs auth" in e
               for e in err.value.errors), err.value.errors
    path.write_text(config(Ports.free(), sink, "0.0.0.0:55690", admin_extra=", auth: {authenticator: nope}, "
                                                                          "tls: {cert_file: c.pem, key_file: k.pem}"))
    with pytest.raises(ConfigError) as err:
        load_files([str(path)])
    assert "service::admin::auth::authenticator: references extension 'nope' which is not configured" \
        in err.value.errors
    cfg = config(Ports.free(), sink, "0.0.0.0:55690", extra=f"  bearertokenauth: {{token: {TOKEN}}}\n",
                 admin_extra=", auth: {authenticator: bearertokenauth}")
    path.write_text(cfg.replace("extensions: [health_check]", "extensions: [health_check, bearertokenauth]"))
    with pytest.raises(ConfigError) as err:
        load_files([str(path)])
    assert err.value.errors == [
        "service::admin: endpoint '0.0.0.0:55690': beyond loopback (localhost, 127.x, ::1) the admin endpoint "
        "needs tls: {cert_file: ..., key_file: ...} as well as auth: without it its credentials and the span data "
        "taps show cross the network in clear"]


def test_bearer_token_guards_every_route_and_top_sends_it(sink: Sink) -> None:
    ports, admin = Ports.free(), free_port()
    extra = f"  bearertokenauth: {{token: {TOKEN}}}\n"
    cfg = config(ports, sink, f"127.0.0.1:{admin}", extra=extra,
                 admin_extra=", auth: {authenticator: bearertokenauth}")
    cfg = cfg.replace("extensions: [health_check]", "extensions: [health_check, bearertokenauth]")
    with running(cfg, ports) as gw:
        for path in ("/", "/api/v1/graph", "/api/v1/stats", "/api/v1/tap?component=filter",
                     "/api/v1/traces?component=filter"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{admin}{path}",
                                                                  headers=headers), timeout=10)
                text = err.value.read().decode()
                # The page's 401 carries the page, which asks for the token (tests/test_admin_page.py).
                want = "askToken" if path == "/" else "admin endpoint: not authenticated"
                assert err.value.code == 401 and want in text, (path, text)
                assert TOKEN not in text and "wrong" not in text
        assert get(admin, "/api/v1/stats", BEARER)["answered"] == 2
        # A worker's private port asks for the token too.
        _, port = private_ports(gw)[1]
        with pytest.raises(urllib.error.HTTPError) as err:
            get(port, "/api/v1/stats")
        assert err.value.code == 401
        assert get(port, "/api/v1/stats", BEARER)["worker"] == 1
        if shutil.which("tmux") is None:
            return
        session = f"gwtopauth-{admin}"
        tmux = _tmux_top(admin, session, f"--header 'Authorization=Bearer {TOKEN}'")
        screen = ""
        try:
            def shows_workers() -> bool:
                nonlocal screen
                screen = _screen(tmux, session)
                return "2 workers" in screen

            wait_until(shows_workers, 20, "gateway top with the token")
        finally:
            subprocess.run([*tmux, "kill-server"], check=False)
        assert "processor:filter" in screen and "401" not in screen, screen


def test_a_before_after_view_merges_both_workers(gateway: tuple[GatewayProcess, int]) -> None:
    gw, admin = gateway
    assert get(admin, "/api/v1/diff?component=processor:filter")["answered"] == 2  # opens it on both
    providers, _ = providers_by_worker(gw)
    for p in providers.values():
        tracer = p.get_tracer("t")
        for name in ("GET /cart", "drop-me"):
            with tracer.start_as_current_span(name):
                pass
        p.shutdown()
    spans: list[dict[str, object]] = []

    def settled() -> bool:
        nonlocal spans
        spans = [s for t in get(admin, "/api/v1/diff?component=filter")["traces"] for s in t["spans"]
                 if s["name"] != "probe"]  # providers_by_worker's
        return len(spans) == 4 and all(s["state"] != "pending" for s in spans)

    wait_until(settled, 30, "both workers' spans kept or dropped")
    assert sorted((s["name"], s["state"], s.get("reason")) for s in spans) == [
        ("GET /cart", "kept", None), ("GET /cart", "kept", None),
        ("drop-me", "dropped", "filtered"), ("drop-me", "dropped", "filtered")]
    # Each worker saw both sides of its own filter: two of the four spans each.
    for _, port in private_ports(gw).values():
        mine = [s for t in get(port, "/api/v1/diff?component=filter")["traces"] for s in t["spans"]]
        assert sorted(s["name"] for s in mine if s["name"] != "probe") == ["GET /cart", "drop-me"]
