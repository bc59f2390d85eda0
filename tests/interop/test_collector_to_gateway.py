"""Collector -> gateway: the reference Collector's own `otlp` (gRPC) and `otlphttp` exporters, plain,
with gzip, with a bearer token (its bearertokenauth client extension) and with TLS, deliver into the
gateway; everything arrives at the gateway's backend unchanged, item by item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import peers
from tests.harness import Ports, Sink, running
from tests.interop._support import (
    Certs,
    gateway_config,
    items,
    make_certs,
    make_logs,
    make_metrics,
    make_traces,
    needs,
    send,
)

pytestmark = pytest.mark.peers

TOKEN = "collector-to-gateway-token"


def collector_config(kind: str, target: str, *, compression: str, token: bool, certs: Certs | None,
                     signals: tuple[str, ...] = ("traces",)) -> str:
    exporter: dict[str, Any] = {"endpoint": target, "compression": compression,
                                "retry_on_failure": {"enabled": False}}
    exporter["tls"] = {"ca_file": str(certs.ca_file)} if certs else {"insecure": True}
    extensions: dict[str, Any] = {"health_check": {"endpoint": "{{health_endpoint}}"}}
    if token:
        extensions["bearertokenauth"] = {"token": TOKEN}
        exporter["auth"] = {"authenticator": "bearertokenauth"}
    doc = {
        "extensions": extensions,
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "{{grpc_endpoint}}"}}}},
        "exporters": {kind: exporter},
        "service": {
            "extensions": list(extensions),
            "pipelines": {s: {"receivers": ["otlp"], "exporters": [kind]} for s in signals},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _case(kind: str, compression: str, token: bool, tls: bool) -> Any:
    marks = [needs("extensions", "bearertokenauth")] if token else []
    name = "-".join([kind, compression] + (["bearer"] if token else []) + (["tls"] if tls else []))
    return pytest.param(kind, compression, token, tls, id=name, marks=marks)


@pytest.mark.parametrize(("kind", "compression", "token", "tls"), [
    _case("otlp", "none", False, False),
    _case("otlp", "gzip", False, False),
    _case("otlphttp", "none", False, False),
    _case("otlphttp", "gzip", False, False),
    # The Collector's gRPC exporter refuses to send a bearer token in plaintext ("the credentials
    # require transport level security"), so the gRPC bearer case runs with TLS only.
    _case("otlphttp", "gzip", True, False),
    _case("otlp", "gzip", False, True),
    _case("otlphttp", "gzip", False, True),
    _case("otlp", "gzip", True, True),
])
def test_collector_exporters_into_gateway(kind: str, compression: str, token: bool, tls: bool, ports: Ports,
                                          sink: Sink, tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "tls") if tls else None
    scheme = "https" if tls else "http"
    target = f"127.0.0.1:{ports.grpc}" if kind == "otlp" else f"{scheme}://127.0.0.1:{ports.http}"
    signals = ("traces", "metrics", "logs")
    gw_cfg = gateway_config(
        ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        pipelines={s: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp/backend"]}
                   for s in signals},
        extensions={"bearertokenauth": {"token": TOKEN}} if token else None,
        authenticator="bearertokenauth" if token else None, receiver_tls=certs,
    )
    sent = {"traces": make_traces(30, 3, seed=5), "metrics": make_metrics(), "logs": make_logs(9)}
    with running(gw_cfg, ports) as gw, peers.otelcol(collector_config(
            kind, target, compression=compression, token=token, certs=certs, signals=signals)) as col:
        for signal, request in sent.items():
            send(col.grpc_endpoint, signal, request)
        transport = "grpc" if kind == "otlp" else "http"
        sink.wait_spans(90, timeout=20)
        peers.wait_for(lambda: all(len(items(s, [r.request for r in sink.requests(s)])) == len(items(s, [m]))
                                   for s, m in sent.items()), 20, "every signal at the gateway's backend")
        for signal, request in sent.items():
            assert items(signal, [r.request for r in sink.requests(signal)]) == items(signal, [request]), signal
        assert gw.metric("otelcol_receiver_accepted_spans_total", transport=transport) == 90
        assert gw.metric("otelcol_receiver_accepted_metric_points_total", transport=transport) == 4
        assert gw.metric("otelcol_receiver_accepted_log_records_total", transport=transport) == 9
        assert "error" not in col.log().lower(), col.log()[-3000:]


@needs("extensions", "bearertokenauth")
@pytest.mark.parametrize("kind", ["otlp", "otlphttp"])
def test_collector_with_wrong_token_is_refused(kind: str, ports: Ports, sink: Sink, tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "tls")
    target = f"127.0.0.1:{ports.grpc}" if kind == "otlp" else f"https://127.0.0.1:{ports.http}"
    gw_cfg = gateway_config(
        ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        extensions={"bearertokenauth": {"token": "another-token"}}, authenticator="bearertokenauth",
        receiver_tls=certs,
    )
    with running(gw_cfg, ports) as gw, peers.otelcol(collector_config(
            kind, target, compression="gzip", token=True, certs=certs)) as col:
        send(col.grpc_endpoint, "traces", make_traces(2, 1))
        peers.wait_for(lambda: "Unauthenticated" in col.log() or "401" in col.log(), 20,
                       "the Collector to log the refusal")
        assert sink.span_count() == 0
        assert gw.metric("otelcol_receiver_accepted_spans_total") == 0
