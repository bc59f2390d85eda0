"""The exporters' `tls` keys, each against its default, sending to the gateway's own OTLP receiver run
in a thread with the server TLS each case needs: `insecure`, `ca_pem`, `server_name_override`,
`min_version`, `max_version`, and client certificates (`cert_file`/`key_file`, `cert_pem`/`key_pem`)
for a receiver whose `client_ca_file` asks for one."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.exporters import otlp_grpc, otlp_http
from gateway.receivers import otlp as otlp_receiver
from gateway.receivers.otlp_config import Config as ReceiverConfig
from gateway.telemetry import Telemetry
from pipelines.batch import Batch
from pipelines.errors import RetryableError
from tests.e2e.support import Certs, StrictGrpcSink
from tests.exporters.exporting import export
from tests.harness import free_ports


class _Count:
    def __init__(self) -> None:
        self.spans = 0

    def admit(self, batch: Batch) -> None:
        pass

    async def consume(self, batch: Batch) -> None:
        self.spans += batch.items


@contextlib.contextmanager
def backend(certs: Certs, **tls: Any) -> Iterator[tuple[dict[str, str], _Count]]:
    """The otlp receiver on gRPC and HTTP with server TLS (`tls` added to the server certificate),
    in an event loop of its own; yields the endpoint each exporter takes, and the span count."""
    grpc_port, http_port = free_ports(2)
    block = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), **tls}
    errors = Errors()
    cfg = decode(ReceiverConfig, {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "tls": block},
                                                "http": {"endpoint": f"127.0.0.1:{http_port}", "tls": block}}},
                 "receivers::otlp", errors)
    assert cfg is not None and not errors, errors.lines
    count = _Count()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    receiver = otlp_receiver.FACTORY.create(Settings("otlp", cfg, Telemetry(), None), {"traces": count})  # type: ignore[arg-type]
    asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(10)
    try:
        yield {"otlp": f"127.0.0.1:{grpc_port}", "otlphttp": f"https://127.0.0.1:{http_port}"}, count
    finally:
        asyncio.run_coroutine_threadsafe(receiver.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


MODULES = {"otlp": otlp_grpc, "otlphttp": otlp_http}


def send(module: ModuleType, endpoint: str, tls: dict[str, Any]) -> BaseException | None:
    cid = "otlp" if module is otlp_grpc else "otlphttp"
    return export(module, {"endpoint": endpoint, "tls": tls, "timeout": "3s"}, 2, cid=cid)[0]


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
def test_min_version_and_max_version_bound_the_tls_version(certs: Certs, exporter: str) -> None:
    module, ca = MODULES[exporter], {"ca_file": str(certs.ca)}
    with backend(certs, max_version="1.2") as (endpoints, count):
        assert send(module, endpoints[exporter], ca) is None  # the default min_version, 1.2
        assert isinstance(send(module, endpoints[exporter], {**ca, "min_version": "1.3"}), RetryableError)
        assert count.spans == 2
    with backend(certs, min_version="1.3") as (endpoints, count):
        assert send(module, endpoints[exporter], ca) is None  # no max_version by default
        assert isinstance(send(module, endpoints[exporter], {**ca, "max_version": "1.2"}), RetryableError)
        assert count.spans == 2


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
def test_ca_pem_is_the_ca_given_inline(certs: Certs, exporter: str) -> None:
    module = MODULES[exporter]
    with backend(certs) as (endpoints, count):
        assert isinstance(send(module, endpoints[exporter], {}), RetryableError), "the system roots do not know it"
        assert send(module, endpoints[exporter], {"ca_pem": certs.ca.read_text()}) is None
        assert count.spans == 2


def test_grpc_cert_file_and_cert_pem_answer_a_client_ca_file(certs: Certs) -> None:
    ca = {"ca_file": str(certs.ca)}
    with backend(certs, client_ca_file=str(certs.ca)) as (endpoints, count):
        assert isinstance(send(otlp_grpc, endpoints["otlp"], ca), RetryableError), "no client certificate"
        files = {"cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
        assert send(otlp_grpc, endpoints["otlp"], {**ca, **files}) is None
        pem = {"cert_pem": certs.client_cert.read_text(), "key_pem": certs.client_key.read_text()}
        assert send(otlp_grpc, endpoints["otlp"], {**ca, **pem}) is None
        assert count.spans == 4


def test_http_cert_file_and_key_file_answer_a_client_ca_file(certs: Certs) -> None:
    ca = {"ca_file": str(certs.ca)}
    with backend(certs, client_ca_file=str(certs.ca)) as (endpoints, count):
        assert isinstance(send(otlp_http, endpoints["otlphttp"], ca), RetryableError), "no client certificate"
        files = {"cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
        assert send(otlp_http, endpoints["otlphttp"], {**ca, **files}) is None
        assert count.spans == 2


def test_server_name_override_is_the_name_the_certificate_must_carry(certs: Certs) -> None:
    ca = {"ca_file": str(certs.ca)}
    with backend(certs) as (endpoints, count):
        # The server certificate names 127.0.0.1 and localhost.
        assert send(otlp_grpc, endpoints["otlp"], ca) is None
        assert send(otlp_grpc, endpoints["otlp"], {**ca, "server_name_override": "localhost"}) is None
        error = send(otlp_grpc, endpoints["otlp"], {**ca, "server_name_override": "backend.example"})
        assert isinstance(error, RetryableError)
        assert count.spans == 4


def test_insecure_sends_plaintext_where_tls_is_the_default() -> None:
    plain = StrictGrpcSink()
    try:
        cfg: dict[str, Any] = {"endpoint": f"127.0.0.1:{plain.port}", "timeout": "2s"}
        assert isinstance(export(otlp_grpc, cfg)[0], RetryableError)
        assert export(otlp_grpc, {**cfg, "tls": {"insecure": True}})[0] is None
        assert plain.total() == 3
    finally:
        plain.stop()
