"""health_check's `endpoint`, `path` and `tls`, each against its default, on the extension built in-process."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.extensions.health import FACTORY, Config
from gateway.telemetry import Telemetry
from tests.e2e.support import Certs
from tests.harness import free_ports


async def _status(url: str, https: ssl.SSLContext | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=https if https else False) as resp:
        return resp.status


def _answers(body: dict[str, Any], urls: list[str], https: ssl.SSLContext | None = None) -> list[int | str]:
    """The status of each URL while the pipelines run (or the error's class name)."""
    errors = Errors()
    cfg = decode(Config, body, "extensions::health_check", errors)
    assert cfg is not None and not errors, errors.lines

    async def run() -> list[int | str]:
        health = FACTORY.create(Settings("health_check", cfg, Telemetry(), None))  # type: ignore[arg-type]
        await health.start()
        health.ready()
        out: list[int | str] = []
        try:
            for url in urls:
                try:
                    out.append(await _status(url, https))
                except aiohttp.ClientError as exc:
                    out.append(type(exc).__name__)
        finally:
            await health.shutdown()
        return out

    return asyncio.run(run())


def test_endpoint_is_where_it_listens() -> None:
    port, other = free_ports(2)
    got = _answers({"endpoint": f"127.0.0.1:{port}"}, [f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{other}/"])
    assert got[0] == 200 and got[1] == "ClientConnectorError"


def test_path_is_where_it_answers() -> None:
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    assert _answers({"endpoint": f"127.0.0.1:{port}"}, [f"{base}/", f"{base}/health/status"]) == [200, 404]
    assert _answers({"endpoint": f"127.0.0.1:{port}", "path": "/health/status"},
                    [f"{base}/", f"{base}/health/status"]) == [404, 200]


@pytest.mark.parametrize("with_tls", [False, True])
def test_tls_serves_the_health_check_over_https(certs: Certs, with_tls: bool) -> None:
    (port,) = free_ports(1)
    body: dict[str, Any] = {"endpoint": f"127.0.0.1:{port}"}
    if with_tls:
        body["tls"] = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
    client = ssl.create_default_context(cafile=str(certs.ca))
    https = _answers(body, [f"https://127.0.0.1:{port}/"], client)[0]
    http = _answers(body, [f"http://127.0.0.1:{port}/"])[0]
    assert (https == 200, http == 200) == (with_tls, not with_tls), (https, http)
