"""`gateway top` and `gateway tap` keep the admin credentials to the admin endpoint: a redirect is not
followed (it would carry Authorization elsewhere), and a token with a control character (a file's CR read
with $(cat f)) is trimmed or refused by name, never echoed."""

from __future__ import annotations

import argparse
import http.server
import threading
import urllib.error
from collections.abc import Iterator

import pytest

from gateway import console


class _Seen(http.server.BaseHTTPRequestHandler):
    auth: list[str | None] = []
    target = ""

    def do_GET(self) -> None:
        type(self).auth.append(self.headers.get("Authorization"))
        if type(self).target:
            self.send_response(302)
            self.send_header("Location", type(self).target)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _server(target: str) -> Iterator[tuple[int, list[str | None]]]:
    handler = type("H", (_Seen,), {"auth": [], "target": target})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.auth
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[tuple[int, list[str | None]]]:
    yield from _server("")


def test_a_redirect_is_not_followed_with_the_token(elsewhere: tuple[int, list[str | None]]) -> None:
    other_port, other_seen = elsewhere
    for admin_port, admin_seen in _server(f"http://localhost:{other_port}/api/v1/stats"):
        headers = console.request_headers([], [], {console.TOKEN_ENV: "SECRET-TOK"})
        with pytest.raises(urllib.error.HTTPError, match="redirects are not followed"):
            console._get(f"http://127.0.0.1:{admin_port}", "/api/v1/stats", headers)
        assert admin_seen == ["Bearer SECRET-TOK"]
    assert other_seen == []


def test_a_token_is_trimmed_and_a_control_character_refused_without_echo() -> None:
    assert console.request_headers([], [], {console.TOKEN_ENV: "tok-123\r\n"}) == {"Authorization": "Bearer tok-123"}
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        console.request_headers(["X-Key=ab\rSECRET"], [], {})
    assert "SECRET" not in str(caught.value) and "X-Key" in str(caught.value)
