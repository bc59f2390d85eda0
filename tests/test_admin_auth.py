"""The admin endpoint's `auth` and `tls`: a reload that adds auth or rotates a token (one process, and the
supervisor of `service::workers`), TLS beyond loopback, the 401 a browser can act on, and the secrets
`gateway top` and `gateway tap` read from a file or the environment instead of the command line."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from passlib import hash as passlib_hash

from gateway.console import TOKEN_ENV, request_headers
from tests.e2e.support import Certs
from tests.harness import REPO, Ports, Sink, basic_config, free_port, running, wait_until
from tests.two_workers import config as workers_config
from tests.two_workers import private_ports

TOKEN = "admin-secret-7f3a"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
_EXPORTER = '  otlp:\n    endpoint: "127.0.0.1:{port}"\n    tls: {{insecure: true}}\n'


def _status(port: int, path: str, headers: dict[str, str] | None = None,
            context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], str]:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context) if context is not None
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace")
    finally:
        conn.close()


def _single(ports: Ports, sink: Sink, admin: str, extension: str = "", admin_extra: str = "") -> str:
    cfg = basic_config(ports, _EXPORTER.format(port=sink.grpc_port), "[otlp]", extra=extension)
    if extension:
        eid = extension.split(":")[0].strip()
        cfg = cfg.replace("extensions: [health_check]", f"extensions: [health_check, {eid}]")
    return cfg + f'  admin: {{endpoint: "{admin}"{admin_extra}}}\n'


def _bearer(token: str = TOKEN) -> str:
    return f"  bearertokenauth: {{token: {token}}}\n"


def _workers(ports: Ports, sink: Sink, admin: str, token: str = TOKEN, admin_extra: str = "") -> str:
    cfg = workers_config(ports, sink, admin, extra=_bearer(token),
                         admin_extra=", auth: {authenticator: bearertokenauth}" + admin_extra)
    return cfg.replace("extensions: [health_check]", "extensions: [health_check, bearertokenauth]")


def test_a_reload_adding_auth_guards_the_endpoint_at_once_and_a_new_endpoint_is_logged(sink: Sink) -> None:
    ports, admin = Ports.free(), free_port()
    with running(_single(ports, sink, f"127.0.0.1:{admin}"), ports) as gw:
        assert _status(admin, "/api/v1/stats")[0] == 200
        gw.config_path.write_text(_single(ports, sink, f"127.0.0.1:{admin}", _bearer(),
                                          ", auth: {authenticator: bearertokenauth}"))
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome="applied") >= 1, 20,
                   "the reload")
        assert _status(admin, "/api/v1/stats")[0] == 401
        assert _status(admin, "/api/v1/stats", BEARER)[0] == 200
        # Where it listens changes at the next start only, and the log says so.
        gw.config_path.write_text(_single(ports, sink, f"127.0.0.1:{free_port()}", _bearer(),
                                          ", auth: {authenticator: bearertokenauth}"))
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome="applied") >= 2, 20,
                   "the second reload")
        assert "service::admin: a new enabled, endpoint or tls takes effect at the next start" in gw.stderr()
        assert _status(admin, "/api/v1/stats", BEARER)[0] == 200


def test_a_token_rotated_by_reload_is_the_one_the_supervisor_asks_for(sink: Sink) -> None:
    ports, admin = Ports.free(), free_port()
    new = {"Authorization": "Bearer rotated-token-1"}
    with running(_workers(ports, sink, f"127.0.0.1:{admin}"), ports) as gw:
        assert _status(admin, "/api/v1/stats", BEARER)[0] == 200
        gw.config_path.write_text(_workers(ports, sink, f"127.0.0.1:{admin}", token="rotated-token-1"))
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        workers = [port for _, port in private_ports(gw).values()]
        wait_until(lambda: all(_status(p, "/api/v1/stats", new)[0] == 200 for p in (*workers, admin)), 20,
                   "the workers and the supervisor took the new token")
        assert _status(admin, "/api/v1/stats", BEARER)[0] == 401


def test_beyond_loopback_the_supervisor_serves_tls(sink: Sink, certs: Certs) -> None:
    ports, admin = Ports.free(), free_port()
    tls = f", tls: {{cert_file: {certs.server_cert}, key_file: {certs.server_key}}}"
    with running(_workers(ports, sink, f"0.0.0.0:{admin}", admin_extra=tls), ports) as gw:
        context = ssl.create_default_context(cafile=str(certs.ca))
        assert _status(admin, "/api/v1/stats", BEARER, context)[0] == 200
        assert _status(admin, "/api/v1/stats", context=context)[0] == 401
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            _status(admin, "/api/v1/stats", BEARER)  # in clear: no answer
        # The supervisor asks its workers over loopback, in clear.
        _, port = private_ports(gw)[1]
        assert _status(port, "/api/v1/stats", BEARER)[0] == 200


def test_one_process_serves_tls(sink: Sink, certs: Certs) -> None:
    ports, admin = Ports.free(), free_port()
    tls = f", tls: {{cert_file: {certs.server_cert}, key_file: {certs.server_key}}}"
    with running(_single(ports, sink, f"127.0.0.1:{admin}", admin_extra=tls), ports):
        context = ssl.create_default_context(cafile=str(certs.ca))
        assert _status(admin, "/api/v1/stats", context=context)[0] == 200


def test_a_401_is_one_a_browser_can_act_on(sink: Sink) -> None:
    """basicauth: the Basic challenge, so the browser asks. A token: the page comes with the 401 (it asks for
    the token itself); the API's 401s say why, with the Bearer challenge."""
    ports, admin = Ports.free(), free_port()
    hashed = passlib_hash.sha256_crypt.hash("s3cret")
    basic = f'  basicauth: {{htpasswd: {{inline: "alice:{hashed}"}}}}\n'
    with running(_single(ports, sink, f"127.0.0.1:{admin}", basic, ", auth: {authenticator: basicauth}"), ports):
        code, headers, _ = _status(admin, "/")
        assert code == 401 and headers["www-authenticate"] == 'Basic realm="otel gateway admin"'
        code, headers, _ = _status(admin, "/api/v1/stats")
        assert code == 401 and headers["www-authenticate"] == 'Basic realm="otel gateway admin"'
        alice = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
        assert _status(admin, "/api/v1/stats", alice)[0] == 200
    ports, admin = Ports.free(), free_port()
    with running(_single(ports, sink, f"127.0.0.1:{admin}", _bearer(), ", auth: {authenticator: bearertokenauth}"),
                 ports):
        code, headers, body = _status(admin, "/")
        assert code == 401 and headers["www-authenticate"] == 'Bearer realm="otel gateway admin"'
        assert headers["content-type"].startswith("text/html") and "askToken" in body and TOKEN not in body
        code, headers, body = _status(admin, "/api/v1/graph")
        assert code == 401 and "admin endpoint: not authenticated" in body and "<html" not in body
        assert headers["www-authenticate"] == 'Bearer realm="otel gateway admin"'


def test_request_headers_from_the_environment_a_file_and_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "headers"
    path.write_text("# the admin token\nAuthorization: Bearer from-file\n\nX-Tenant:  a \n")
    assert request_headers([], [], {TOKEN_ENV: "from-env"}) == {"Authorization": "Bearer from-env"}
    assert request_headers([], [str(path)], {TOKEN_ENV: "from-env"}) == {"Authorization": "Bearer from-file",
                                                                        "X-Tenant": "a"}
    assert request_headers(["Authorization=Bearer cli"], [str(path)], {})["Authorization"] == "Bearer cli"
    path.write_text("Authorization Bearer secret-xyz\n")
    with pytest.raises(Exception) as err:
        request_headers([], [str(path)], {})
    assert "line 1: want Name: value" in str(err.value) and "secret-xyz" not in str(err.value)


def test_tap_sends_the_token_from_a_file_or_the_environment_never_the_command_line(sink: Sink,
                                                                                    tmp_path: Path) -> None:
    ports, admin = Ports.free(), free_port()
    path = tmp_path / "headers"
    path.write_text(f"Authorization: Bearer {TOKEN}\n")
    with running(_single(ports, sink, f"127.0.0.1:{admin}", _bearer(), ", auth: {authenticator: bearertokenauth}"),
                 ports):
        tap = [sys.executable, "-m", "gateway", "tap", "nope", "--admin", f"http://127.0.0.1:{admin}"]
        for extra, env in (([], {}), (["--header-file", str(path)], {}), ([], {TOKEN_ENV: TOKEN})):
            env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV} | env
            out = subprocess.run([*tap, *extra], capture_output=True, text=True, env=env, cwd=REPO, timeout=30)
            # Past the authenticator, the tap is refused for its component: the token was sent.
            want = "404 no component 'nope'" if extra or env.get(TOKEN_ENV) else "401 admin endpoint: not auth"
            assert out.returncode == 1 and want in out.stderr, (extra, out.stderr)
