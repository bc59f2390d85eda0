"""CORS on the OTLP/HTTP receiver, as the Collector's confighttp (rs/cors, credentials allowed): the
preflight answer a browser needs, the headers on the export answer, and refusals by origin, method and
header; without `cors`, no CORS header at all."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from gateway.receivers.cors import CorsPolicy
from gateway.receivers.otlp_config import CorsConfig
from tests.harness import Ports, Sink, basic_config, running


def _policy(**kw: object) -> CorsPolicy:
    return CorsPolicy(CorsConfig(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("allowed", "origin", "ok"), [
    (("https://app.example.com",), "https://app.example.com", True),
    (("https://app.example.com",), "HTTPS://APP.EXAMPLE.COM", True),
    (("https://app.example.com",), "https://evil.example.com", False),
    (("https://*.example.com",), "https://a.b.example.com", True),
    (("https://*.example.com",), "https://example.com", False),
    (("https://*.example.com",), "https://example.com.evil.org", False),
    (("*",), "http://anything:8080", True),
])
def test_allowed_origins(allowed: tuple[str, ...], origin: str, ok: bool) -> None:
    assert _policy(allowed_origins=allowed).origin_allowed(origin) is ok


def test_preflight_headers_follow_the_config() -> None:
    p = _policy(allowed_origins=("https://app.example.com",), allowed_headers=("X-Tenant",), max_age=7200)
    ok = p.preflight({"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                      "Access-Control-Request-Headers": "content-type, x-tenant"})
    assert ok["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert ok["Access-Control-Allow-Methods"] == "POST"
    assert ok["Access-Control-Allow-Headers"] == "content-type, x-tenant"
    assert ok["Access-Control-Allow-Credentials"] == "true"
    assert ok["Access-Control-Max-Age"] == "7200"
    # A header not listed, a method not allowed, an origin not allowed: no CORS headers at all.
    for refused in (
        {"Access-Control-Request-Headers": "x-other"},
        {"Access-Control-Request-Method": "DELETE"},
        {"Origin": "https://evil.example.com"},
    ):
        answer = p.preflight({"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"} | refused)
        assert "Access-Control-Allow-Origin" not in answer, refused
    # Without allowed_headers, X-Requested-With is allowed; with "*", any header; no max_age, no header.
    default = _policy(allowed_origins=("*",))
    answer = default.preflight({"Origin": "https://x", "Access-Control-Request-Method": "POST",
                                "Access-Control-Request-Headers": "X-Requested-With"})
    assert "Access-Control-Allow-Origin" in answer and "Access-Control-Max-Age" not in answer
    assert "Access-Control-Allow-Origin" in _policy(allowed_origins=("*",), allowed_headers=("*",)).preflight(
        {"Origin": "https://x", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-any"})


def _call(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_a_running_receiver_answers_preflight_and_export_with_cors_headers(ports: Ports, sink: Sink) -> None:
    exporter = f'  otlp/s:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n'
    cfg = basic_config(ports, exporter, "[otlp/s]").replace(
        f'http: {{endpoint: "127.0.0.1:{ports.http}"}}',
        f'http: {{endpoint: "127.0.0.1:{ports.http}", cors: {{allowed_origins: ["https://*.example.com"], '
        f'max_age: 600}}}}')
    url = f"http://127.0.0.1:{ports.http}/v1/traces"
    origin = {"Origin": "https://shop.example.com"}
    with running(cfg, ports):
        status, headers = _call("OPTIONS", url, origin | {"Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type"})
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
        assert headers["Access-Control-Max-Age"] == "600"
        status, headers = _call("POST", url, origin | {"Content-Type": "application/json"}, b"{}")
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
        assert headers["Access-Control-Allow-Credentials"] == "true"
        status, headers = _call("POST", url, {"Origin": "https://evil.org", "Content-Type": "application/json"}, b"{}")
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
        # Errors carry the headers too, so the page can read the refusal.
        status, headers = _call("POST", url, origin | {"Content-Type": "text/plain"}, b"x")
        assert status == 415 and headers["Access-Control-Allow-Origin"] == "https://shop.example.com"


def test_without_cors_there_are_no_cors_headers_and_no_preflight(ports: Ports, sink: Sink) -> None:
    exporter = f'  otlp/s:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n'
    url = f"http://127.0.0.1:{ports.http}/v1/traces"
    with running(basic_config(ports, exporter, "[otlp/s]"), ports):
        status, headers = _call("OPTIONS", url, {"Origin": "https://a.example.com",
                                                  "Access-Control-Request-Method": "POST"})
        assert status == 405 and "Access-Control-Allow-Origin" not in headers
        status, headers = _call("POST", url, {"Origin": "https://a.example.com", "Content-Type": "application/json"},
                                b"{}")
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
