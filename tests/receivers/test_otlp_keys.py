"""The `otlp` receiver's keys, each against its default, on a receiver built in-process by its factory:
which protocols listen and where, the HTTP paths, `response_headers`, `include_metadata` over HTTP, and
the server TLS keys (inline PEM, `min_version`, `max_version`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.receivers import otlp as otlp_receiver
from gateway.receivers.otlp_config import Config, HttpConfig
from gateway.telemetry import Telemetry
from pipelines.batch import Batch
from tests.e2e.support import Certs, grpc_export, spans_request
from tests.harness import free_ports
from tests.processors.build import log_request, metric_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
BODIES = {"traces": spans_request(1).SerializeToString(), "metrics": metric_request([{}]).SerializeToString(),
          "logs": log_request([{}]).SerializeToString()}


class Pipeline:
    """A consumer standing for the pipelines: records every batch."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


@contextlib.asynccontextmanager
async def receiver(protocols: dict[str, Any]) -> AsyncIterator[dict[str, Pipeline]]:
    errors = Errors()
    cfg = decode(Config, {"protocols": protocols}, "receivers::otlp", errors)
    assert cfg is not None and not errors, errors.lines
    pipelines = {s: Pipeline() for s in ("traces", "metrics", "logs")}
    r = otlp_receiver.FACTORY.create(Settings("otlp", cfg, Telemetry(), None), pipelines)  # type: ignore[arg-type]
    await r.start()
    try:
        yield pipelines
    finally:
        await r.shutdown()


async def post(port: int, path: str = "/v1/traces", body: bytes = BODIES["traces"],
               headers: dict[str, str] | None = None, https: ssl.SSLContext | None = None) -> tuple[int, Any]:
    scheme = "https" if https is not None else "http"
    async with aiohttp.ClientSession() as session, session.post(
            f"{scheme}://127.0.0.1:{port}{path}", data=body, headers={**PROTOBUF, **(headers or {})},
            ssl=https if https is not None else False) as resp:
        await resp.read()
        return resp.status, resp.headers


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_protocols_grpc_and_http_each_listen_on_their_endpoint() -> None:
    grpc_port, http_port = free_ports(2)

    async def run() -> None:
        async with receiver({"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}}) as pipelines:
            code, _ = await asyncio.to_thread(grpc_export, grpc_port, BODIES["traces"])
            assert code == grpc.StatusCode.OK and len(pipelines["traces"].batches) == 1
            assert refused(http_port), "no http block: nothing listens for OTLP/HTTP"
        async with receiver({"http": {"endpoint": f"127.0.0.1:{http_port}"}}) as pipelines:
            assert (await post(http_port))[0] == 200 and len(pipelines["traces"].batches) == 1
            assert refused(grpc_port), "no grpc block: nothing listens for OTLP/gRPC"

    asyncio.run(run())


def test_url_paths_move_each_signal() -> None:
    (port,) = free_ports(1)
    paths = {"traces_url_path": "/t", "metrics_url_path": "/in/m", "logs_url_path": "/l"}

    async def run() -> None:
        async with receiver({"http": {"endpoint": f"127.0.0.1:{port}", **paths}}) as pipelines:
            for signal, path in zip(("traces", "metrics", "logs"), paths.values(), strict=True):
                assert (await post(port, path, BODIES[signal]))[0] == 200
                assert (await post(port, f"/v1/{signal}", BODIES[signal]))[0] == 404
                assert len(pipelines[signal].batches) == 1
        async with receiver({"http": {"endpoint": f"127.0.0.1:{port}"}}) as pipelines:
            assert (await post(port, "/v1/logs", BODIES["logs"]))[0] == 200
            assert (await post(port, "/l", BODIES["logs"]))[0] == 404

    asyncio.run(run())


def test_response_headers_are_added_to_every_answer() -> None:
    (port,) = free_ports(1)

    async def run() -> None:
        http = {"endpoint": f"127.0.0.1:{port}", "response_headers": {"X-Served-By": "gateway-1"}}
        async with receiver({"http": http}):
            status, headers = await post(port)
            assert status == 200 and headers["X-Served-By"] == "gateway-1"
            status, headers = await post(port, body=b"\xff not protobuf")
            assert status == 400 and headers["X-Served-By"] == "gateway-1"
        async with receiver({"http": {"endpoint": f"127.0.0.1:{port}"}}):
            assert "X-Served-By" not in (await post(port))[1]

    asyncio.run(run())


def test_response_headers_never_repeat_what_the_answer_sets_and_framing_headers_are_refused() -> None:
    (port,) = free_ports(1)

    async def run() -> None:
        http = {"endpoint": f"127.0.0.1:{port}", "response_headers": {"content-type": "text/x-mine", "X-A": "1"}}
        async with receiver({"http": http}):
            for body, status in ((BODIES["traces"], 200), (b"\xff not protobuf", 400)):
                got, headers = await post(port, body=body)
                assert got == status and headers.getall("Content-Type") == ["application/x-protobuf"]
                assert headers["X-A"] == "1"

    asyncio.run(run())
    for name in ("Content-Length", "transfer-encoding", "Connection"):
        assert any(f"response_headers::{name}" in e for e in HttpConfig(response_headers={name: "5"}).validate())
    for headers in ({"X-Bad": "a\r\nInjected: 1"}, {"X-Nul": "a\x00b"}, {"X-Del": "\x7f"}, {"Bad(Name)": "v"},
                    {"Sp ace": "v"}, {"": "v"}):
        assert any("not a valid header" in e for e in HttpConfig(response_headers=headers).validate()), headers
    assert HttpConfig(response_headers={"X-Ok_1.~": "tab\there, utf-8 é"}).validate() == []


@pytest.mark.parametrize("include_metadata", [False, True])
def test_http_include_metadata_keeps_the_request_headers(include_metadata: bool) -> None:
    (port,) = free_ports(1)

    async def run() -> None:
        http = {"endpoint": f"127.0.0.1:{port}", "include_metadata": include_metadata}
        async with receiver({"http": http}) as pipelines:
            assert (await post(port, headers={"X-Team": "blue"}))[0] == 200
            context = pipelines["traces"].batches[0].context
            assert context.get_metadata("x-team") == (("blue",) if include_metadata else ())

    asyncio.run(run())


# ---------------------------------------------------------------- server TLS


def _client(certs: Certs, minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None) -> Any:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext) -> str | None:
    """The TLS version agreed, or None when the handshake failed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.version()
        except (ssl.SSLError, OSError):
            return None


TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def _versions(certs: Certs, tls: dict[str, Any]) -> tuple[str | None, str | None]:
    """(what a TLS 1.2-only client gets, what a TLS 1.3-only client gets) from a receiver with `tls`."""
    (port,) = free_ports(1)

    async def run() -> tuple[str | None, str | None]:
        block = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), **tls}
        async with receiver({"http": {"endpoint": f"127.0.0.1:{port}", "tls": block}}):
            only12 = await asyncio.to_thread(_handshake, port, _client(certs, maximum=TLS12))
            only13 = await asyncio.to_thread(_handshake, port, _client(certs, minimum=TLS13))
            return only12, only13

    return asyncio.run(run())


def test_server_min_version_and_max_version_bound_the_tls_version(certs: Certs) -> None:
    assert _versions(certs, {}) == ("TLSv1.2", "TLSv1.3")  # the defaults: 1.2 and up
    assert _versions(certs, {"min_version": "1.3"}) == (None, "TLSv1.3")
    assert _versions(certs, {"max_version": "1.2"}) == ("TLSv1.2", None)


def test_server_cert_pem_and_key_pem_serve_tls_from_inline_pem(certs: Certs) -> None:
    (port,) = free_ports(1)
    tls = {"cert_pem": certs.server_cert.read_text(), "key_pem": certs.server_key.read_text()}

    async def run() -> None:
        async with receiver({"http": {"endpoint": f"127.0.0.1:{port}", "tls": tls}}) as pipelines:
            assert (await post(port, https=_client(certs)))[0] == 200
            assert len(pipelines["traces"].batches) == 1
            with pytest.raises(aiohttp.ClientError):
                await post(port)  # plaintext to the TLS port

    asyncio.run(run())
