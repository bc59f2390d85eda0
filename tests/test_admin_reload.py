"""The admin endpoint across reloads: it keeps listening as it started (endpoint, enabled and tls wait for
the next start), so a reload that would drop its `auth` is refused, in one process and with workers; a
before/after view follows the reloaded graph; a host name that only starts with "127." is no loopback."""

from __future__ import annotations

import json
import signal
import ssl
import urllib.request
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway.config.model import AdminConfig, AuthConfig
from tests.e2e.support import Certs
from tests.harness import Ports, Sink, basic_config, free_port, running, wait_until
from tests.test_admin_auth import _bearer, _single, _status, _workers
from tests.two_workers import config as workers_config


def test_a_reload_cannot_drop_the_auth_of_a_listener_beyond_loopback(sink: Sink, certs: Certs) -> None:
    ports, admin = Ports.free(), free_port()
    tls = f", tls: {{cert_file: {certs.server_cert}, key_file: {certs.server_key}}}"
    auth = ", auth: {authenticator: bearertokenauth}"
    with running(_single(ports, sink, f"0.0.0.0:{admin}", _bearer(), auth + tls), ports) as gw:
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        assert _status(admin, "/api/v1/stats", context=ctx)[0] == 401
        # Valid on its own (loopback needs no auth), but the running listener stays on 0.0.0.0 until a restart.
        gw.config_path.write_text(_single(ports, sink, f"127.0.0.1:{free_port()}", _bearer(), tls))
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome="invalid") >= 1, 20,
                   "the reload refused")
        assert _status(admin, "/api/v1/stats", context=ctx)[0] == 401


def test_with_workers_a_reload_disabling_the_admin_endpoint_keeps_its_auth(sink: Sink, certs: Certs) -> None:
    ports, admin = Ports.free(), free_port()
    tls = f", tls: {{cert_file: {certs.server_cert}, key_file: {certs.server_key}}}"
    with running(_workers(ports, sink, f"0.0.0.0:{admin}", admin_extra=tls), ports) as gw:
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        assert _status(admin, "/api/v1/stats", context=ctx)[0] == 401
        gw.config_path.write_text(workers_config(ports, sink, f"0.0.0.0:{admin}", admin_extra=", enabled: false"))
        gw.proc.send_signal(signal.SIGHUP)
        # Each worker refuses it (the supervisor's /metrics sums theirs), and the supervisor keeps its auth.
        wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome="invalid") >= 2, 30,
                   "both workers refusing the reload")
        assert _status(admin, "/api/v1/stats", context=ctx)[0] == 401


def _get(admin: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=5) as r:
        body: dict[str, Any] = json.load(r)
        return body


def test_a_before_after_view_follows_the_reloaded_graph(sink: Sink) -> None:
    ports, admin = Ports.free(), free_port()
    exporters = f'  otlp:\n    endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}\n'

    def cfg(pct: int) -> str:
        sampler = f"probabilistic_sampler: {{sampling_percentage: {pct}}}"
        return (basic_config(ports, exporters, "[otlp]", processors=sampler,
                             pipeline_processors="[probabilistic_sampler]")
                + f'  admin: {{endpoint: "127.0.0.1:{admin}"}}\n')

    with running(cfg(50), ports) as gw:
        _get(admin, "/api/v1/diff?component=probabilistic_sampler")  # a view on the first graph
        gw.config_path.write_text(cfg(100))
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: gw.metric("otelcol_gateway_config_reloads_total", outcome="applied") >= 1, 20, "reload")
        _get(admin, "/api/v1/diff?component=probabilistic_sampler")  # asked again: a view on the new graph
        provider = TracerProvider(resource=Resource.create({"service.name": "x"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{ports.grpc}",
                                                                         insecure=True)))
        tracer = provider.get_tracer("t")
        for i in range(5):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        provider.shutdown()
        wait_until(lambda: _get(admin, "/api/v1/diff?component=probabilistic_sampler")["traces"], 20,
                   "the view on the reloaded graph showing the new spans")


def test_only_a_loopback_address_is_loopback() -> None:
    assert AdminConfig(endpoint="127.0.0.2:55690").validate() == []
    assert AdminConfig(endpoint="localhost:55690").validate() == []
    assert AdminConfig(endpoint="[::1]:55690").validate() == []
    for host in ("127.attacker.example", "127.0.0.1.nip.io", "0.0.0.0"):
        errors = AdminConfig(endpoint=f"{host}:55690").validate()
        assert errors and "needs auth" in errors[0], (host, errors)
    assert "needs tls" in AdminConfig(endpoint="127.x.example:1", auth=AuthConfig("bearertokenauth")).validate()[0]
