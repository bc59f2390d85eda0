"""Client authenticators end to end: the OpenTelemetry SDK sends spans with its own credentials to a
running gateway, and each backend (a Sink) checks what its exporter's `auth:` put on the wire."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc

from tests.auth.support import gateway_config, send_spans
from tests.harness import Fault, Ports, Sink, running, wait_until


def _names(received: object) -> list[str]:
    return [sp.name for rs in received.request.resource_spans  # type: ignore[attr-defined]
            for ss in rs.scope_spans for sp in ss.spans]


def test_exporter_auth_bearertokenauth_basicauth_and_headers_setter_reach_the_backends(
        ports: Ports, tmp_path: Path) -> None:
    sinks = {name: Sink().start() for name in ("bearer", "basic", "file", "tenant")}
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1\n")
    exporters = f"""  otlp/bearer:
    endpoint: "127.0.0.1:{sinks['bearer'].grpc_port}"
    tls: {{insecure: true}}
    auth: {{authenticator: bearertokenauth/out}}
  otlphttp/basic:
    endpoint: "http://127.0.0.1:{sinks['basic'].http_port}"
    auth: {{authenticator: basicauth/out}}
  otlp/file:
    endpoint: "127.0.0.1:{sinks['file'].grpc_port}"
    tls: {{insecure: true}}
    headers: {{X-Static: kept}}
    retry_on_failure: {{initial_interval: 10ms}}
    auth: {{authenticator: bearertokenauth/file}}
  otlphttp/tenant:
    endpoint: "http://127.0.0.1:{sinks['tenant'].http_port}"
    headers: {{X-Static: original, X-Drop: secret-config-value}}
    auth: {{authenticator: headers_setter}}"""
    extensions = f"""  bearertokenauth/in:
    tokens: [{{token: in-token-a, tenant: team-a}}, {{token: in-token-b, tenant: team-b}}]
  bearertokenauth/out: {{token: out-token}}
  bearertokenauth/file: {{filename: "{token_file}", reload_interval: 1h}}
  basicauth/out:
    client_auth: {{username: grafana-user, password: "p@ss:word"}}
  headers_setter:
    headers:
      - {{key: X-Scope-OrgID, from_context: x-tenant}}
      - {{key: X-User, from_attribute: tenant}}
      - {{key: X-Missing, from_context: x-absent, default_value: fallback}}
      - {{key: X-Drop, action: delete}}
      - {{key: X-Static, action: insert, value: overwritten}}"""
    cfg = gateway_config(ports, exporters, "[otlp/bearer, otlphttp/basic, otlp/file, otlphttp/tenant]", extensions,
                         "bearertokenauth/in, bearertokenauth/out, bearertokenauth/file, basicauth/out, "
                         "headers_setter",
                         "auth: {authenticator: bearertokenauth/in}, include_metadata: true")
    try:
        with running(cfg, ports) as gw:
            send_spans(ports, "grpc", [f"acme-{i}" for i in range(5)],
                       {"authorization": "Bearer in-token-a", "x-tenant": "acme"})
            send_spans(ports, "http", [f"globex-{i}" for i in range(5)],
                       {"Authorization": "Bearer in-token-b", "X-Tenant": "globex"})
            for sink in sinks.values():
                sink.wait_spans(10)

            basic = "Basic " + base64.b64encode(b"grafana-user:p@ss:word").decode()
            for name, header in (("bearer", "Bearer out-token"), ("basic", basic), ("file", "Bearer file-token-1")):
                assert {r.headers.get("authorization") for r in sinks[name].requests()} == {header}, name
            assert {r.headers.get("x-static") for r in sinks["file"].requests()} == {"kept"}
            for received in sinks["tenant"].requests():
                org = received.headers.get("x-scope-orgid")
                assert org in ("acme", "globex")
                # a batch never mixes the values a header is taken from, without any metadata_keys
                assert {n.split("-")[0] for n in _names(received)} == {org}
                assert received.headers.get("x-user") == {"acme": "team-a", "globex": "team-b"}[org]
                assert received.headers.get("x-missing") == "fallback"
                assert "x-drop" not in received.headers
                assert received.headers.get("x-static") == "original"  # insert never overwrites
                assert "authorization" not in received.headers  # the client's credential stays here
            for sink in sinks.values():
                assert all("in-token" not in v for r in sink.requests() for v in r.headers.values())

            # The token file changes; the backend refuses the old token once: the exporter re-reads the
            # file (its reload_interval of 1h has not come) and sends again with the new one.
            token_file.write_text("file-token-2\n")
            sinks["file"].fail_next(Fault(1, grpc_code=grpc.StatusCode.UNAUTHENTICATED, http_status=401))
            send_spans(ports, "grpc", ["after-rotation"], {"authorization": "Bearer in-token-a", "x-tenant": "acme"})
            wait_until(lambda: any("after-rotation" in _names(r) for r in sinks["file"].requests()),
                       what="the span sent after the rotation")
            last = [r for r in sinks["file"].requests() if "after-rotation" in _names(r)]
            assert [r.headers["authorization"] for r in last] == ["Bearer file-token-2"]
            assert sinks["file"].refused == 1
            assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
            assert "file-token" not in gw.stderr() and "out-token" not in gw.stderr()
            assert gw.stop() == 0
    finally:
        for sink in sinks.values():
            sink.stop()
