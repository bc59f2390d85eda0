"""`service::telemetry`, each key against its default: where /metrics listens (`metrics::address`, or a
Prometheus pull reader in `metrics::readers`), `metrics::level: none` turning it off, and
`logs::level` filtering the gateway's log."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from gateway.config.load import load_text
from gateway.service import Service
from tests.harness import GatewayProcess, Ports, free_ports


def _config(receiver_port: int, telemetry: str) -> str:
    return f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{receiver_port}"}}}}}}}}
exporters: {{debug: {{}}}}
service:
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
  telemetry: {telemetry}
"""


def _scrape(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return int(r.status)
    except OSError:
        return None


def _served(telemetry: str, ports: list[int]) -> list[int | None]:
    """Run the service with `telemetry`; the /metrics answer on each of `ports`."""
    (receiver,) = free_ports(1)

    async def run() -> list[int | None]:
        service = Service(load_text(_config(receiver, telemetry), env={}).config)
        await service.start()
        try:
            return [await asyncio.to_thread(_scrape, p) for p in ports]
        finally:
            await service.shutdown()

    return asyncio.run(run())


def test_metrics_address_is_where_metrics_are_served() -> None:
    a, b = free_ports(2)
    assert _served(telemetry=f'{{metrics: {{address: "127.0.0.1:{a}"}}}}', ports=[a, b]) == [200, None]
    assert _served(telemetry=f'{{metrics: {{address: "127.0.0.1:{b}"}}}}', ports=[a, b]) == [None, 200]


def test_metrics_level_none_serves_no_metrics() -> None:
    (a,) = free_ports(1)
    assert _served(f'{{metrics: {{address: "127.0.0.1:{a}", level: normal}}}}', [a]) == [200]
    assert _served(f'{{metrics: {{address: "127.0.0.1:{a}", level: none}}}}', [a]) == [None]


def test_metrics_readers_prometheus_pull_is_where_metrics_are_served() -> None:
    a, b = free_ports(2)
    reader = f"{{pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {b}}}}}}}}}"
    assert _served(f'{{metrics: {{address: "127.0.0.1:{a}", readers: [{reader}]}}}}', [a, b]) == [None, 200]


def _log_of_a_gateway(ports: Ports, level: str | None) -> str:
    logs = f", logs: {{level: {level}}}" if level else ""
    config = f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:{ports.http}"}}}}}}}}
exporters: {{debug: {{}}}}
extensions: {{health_check: {{endpoint: "127.0.0.1:{ports.health}"}}}}
service:
  extensions: [health_check]
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports.metrics}"}}{logs}}}
"""
    gw = GatewayProcess(config, ports=ports).start()
    try:
        assert gw.stop() == 0
        return gw.stderr()
    finally:
        gw.kill()


@pytest.mark.parametrize(("level", "info_logged"), [(None, True), ("warn", False), ("debug", True)])
def test_logs_level_filters_the_gateways_log(level: str | None, info_logged: bool) -> None:
    stderr = _log_of_a_gateway(Ports.free(), level)
    assert ("\tINFO\t" in stderr and "gateway started" in stderr) is info_logged, stderr

