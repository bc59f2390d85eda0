"""oauth2client against a token endpoint the test runs on loopback (over TLS): one token fetched and
shared by every call of two exporters, sent as a bearer token, fetched again after a 401."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from tests.auth.support import gateway_config, send_spans
from tests.e2e.support import Certs
from tests.harness import Fault, Ports, Sink, running, wait_until


class TokenEndpoint:
    def __init__(self, certs: Certs, expires_in: Any = 3600) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.expires_in = expires_in
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                endpoint.requests.append((self.headers.get("Authorization", ""), form))
                body = json.dumps({"access_token": f"tok-{len(endpoint.requests)}", "token_type": "Bearer",
                                   "expires_in": endpoint.expires_in}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(certs.server_cert), str(certs.server_key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/oauth2/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_one_token_shared_by_every_call_and_refreshed_after_a_401(ports: Ports, sink: Sink, certs: Certs,
                                                                  tmp_path: Path) -> None:
    endpoint = TokenEndpoint(certs)
    secret = tmp_path / "secret"
    secret.write_text("client-s3cret\n")
    try:
        exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 10ms}}
    auth: {{authenticator: oauth2client}}
  otlphttp:
    endpoint: "http://127.0.0.1:{sink.http_port}"
    retry_on_failure: {{initial_interval: 10ms}}
    auth: {{authenticator: oauth2client}}"""
        extensions = f"""  oauth2client:
    client_id: gateway-client
    client_secret_file: "{secret}"
    token_url: "{endpoint.url}"
    scopes: [traces.write, traces.read]
    endpoint_params: {{audience: tempo}}
    timeout: 5s
    expiry_buffer: 1m
    tls: {{ca_file: "{certs.ca}"}}"""
        cfg = gateway_config(ports, exporters, "[otlp, otlphttp]", extensions, "oauth2client")
        with running(cfg, ports) as gw:
            send_spans(ports, "grpc", ["a-1", "a-2"], {})
            sink.wait_spans(4)  # each span once per exporter
            assert {r.headers.get("authorization") for r in sink.requests()} == {"Bearer tok-1"}
            assert len(endpoint.requests) == 1  # one token, shared by both exporters
            basic, form = endpoint.requests[0]
            assert basic == "Basic " + base64.b64encode(b"gateway-client:client-s3cret").decode()
            assert form == {"grant_type": ["client_credentials"], "scope": ["traces.write traces.read"],
                            "audience": ["tempo"]}

            sink.fail_next(Fault(1, grpc_code=grpc.StatusCode.UNAUTHENTICATED, http_status=401))
            send_spans(ports, "http", ["b-1"], {})
            wait_until(lambda: sink.span_count() >= 6, what="the spans sent after the 401")
            assert len(endpoint.requests) == 2
            assert sink.refused == 1
            late = [r for r in sink.requests() if any(sp.name == "b-1" for rs in r.request.resource_spans
                                                      for ss in rs.scope_spans for sp in ss.spans)]
            assert "Bearer tok-2" in {r.headers.get("authorization") for r in late}
            assert gw.metric("otelcol_exporter_send_failed_spans_total") == 0
            assert "client-s3cret" not in gw.stderr() and "tok-" not in gw.stderr()
            assert gw.stop() == 0
    finally:
        endpoint.stop()


def _client(**config: Any) -> Any:
    from gateway.component import Settings
    from gateway.extensions.oauth2client import Config, OAuth2Client
    from gateway.telemetry import Telemetry

    return OAuth2Client(Settings("oauth2client", Config(client_id="c", **config), Telemetry(),
                                 None))  # type: ignore[arg-type]


async def _token_fetches(endpoint: TokenEndpoint, certs: Certs, expiry_buffer: float, client_secret: str = "s") -> int:
    """How many tokens a new client fetches while it is asked for one three times."""
    from gateway.transport.tls import TLSClientConfig

    before = len(endpoint.requests)
    client = _client(token_url=endpoint.url, expiry_buffer=expiry_buffer, client_secret=client_secret,
                     tls=TLSClientConfig(ca_file=str(certs.ca)))
    try:
        for _ in range(3):
            await client.token()
    finally:
        await client.shutdown()
    return len(endpoint.requests) - before


def test_expiry_buffer_is_how_long_before_expiry_a_token_is_fetched_again(certs: Certs) -> None:
    import asyncio

    endpoint = TokenEndpoint(certs)
    try:
        # A 1 h token is kept.
        assert asyncio.run(_token_fetches(endpoint, certs, 300.0, client_secret="inline-secret")) == 1
        # Within the buffer from the start: fetched every time.
        assert asyncio.run(_token_fetches(endpoint, certs, 3600.0, client_secret="inline-secret")) == 3
        assert {basic for basic, _ in endpoint.requests} == {"Basic " + base64.b64encode(b"c:inline-secret").decode()}
    finally:
        endpoint.stop()


def test_timeout_bounds_a_token_endpoint_that_never_answers() -> None:
    import asyncio
    import socket

    import pytest

    from pipelines.errors import RetryableError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = _client(token_url=f"http://127.0.0.1:{silent.getsockname()[1]}/token", client_secret="s", timeout=0.2)

        async def scenario() -> None:
            try:
                # The fetch's own timeout ends it with a RetryableError; the outer bound (far above 0.2 s)
                # only keeps a broken timeout from hanging the test, and would fail it with TimeoutError.
                async with asyncio.timeout(30):
                    with pytest.raises(RetryableError, match="cannot get a token"):
                        await client.token()
            finally:
                await client.shutdown()

        asyncio.run(scenario())


def test_expires_in_as_a_numeric_string_expires_as_golang_oauth2_reads_it(certs: Certs) -> None:
    import asyncio

    from gateway.extensions.oauth2client import lifetime

    assert lifetime("3600") == lifetime(3600) == 3600.0
    assert lifetime(None) == lifetime(0) == lifetime("0") == float("inf")
    for bad in ("soon", "", True, [60], "nan"):
        try:
            lifetime(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")

    for expires_in, expected in (("60", 3), ("3600", 1)):  # "60" s is within the 5 min buffer at once
        endpoint = TokenEndpoint(certs, expires_in=expires_in)
        try:
            assert asyncio.run(_token_fetches(endpoint, certs, 300.0)) == expected, expires_in
        finally:
            endpoint.stop()


def test_a_late_401_does_not_drop_the_token_another_call_fetched(certs: Certs) -> None:
    import asyncio

    from gateway.transport.tls import TLSClientConfig

    endpoint = TokenEndpoint(certs)
    try:
        async def scenario() -> None:
            client = _client(token_url=endpoint.url, client_secret="s", tls=TLSClientConfig(ca_file=str(certs.ca)))
            try:
                assert await client.token() == "tok-1"
                # Two calls sent with tok-1 are refused; the first one's refresh fetches tok-2.
                assert await client.unauthorized({"authorization": "Bearer tok-1"})
                assert await client.token() == "tok-2"
                # The second refusal, of tok-1, arrives late: tok-2 is kept, the call is still sent again.
                assert await client.unauthorized({"authorization": "Bearer tok-1"})
                assert await client.token() == "tok-2"
                assert len(endpoint.requests) == 2
                # tok-2 refused in turn: dropped and fetched again.
                assert await client.unauthorized({"authorization": "Bearer tok-2"})
                assert await client.token() == "tok-3"
            finally:
                await client.shutdown()

        asyncio.run(scenario())
    finally:
        endpoint.stop()
