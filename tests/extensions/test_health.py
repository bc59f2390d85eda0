"""health_check: the answer follows the pipelines' readiness; `response_body` replaces the JSON status
with the configured text; `check_collector_pipeline` is refused when switched on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from gateway.component import Settings
from gateway.config.load import ConfigError, load_text
from gateway.extensions.health import Config, HealthCheck, ResponseBody
from gateway.telemetry import Telemetry


async def _get(port: int, path: str = "/") -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as resp:
        return resp.status, resp.content_type, await resp.text()


def _run(config: Config) -> list[tuple[int, str, str]]:
    async def run() -> list[tuple[int, str, str]]:
        health = HealthCheck(Settings("health_check", config, Telemetry(), None))  # type: ignore[arg-type]
        await health.start()
        assert health.port is not None
        try:
            before = await _get(health.port, config.path)
            health.ready()
            during = await _get(health.port, config.path)
            health.not_ready()
            after = await _get(health.port, config.path)
        finally:
            await health.shutdown()
        return [before, during, after]

    return asyncio.run(run())


def test_default_answer_is_the_json_status() -> None:
    before, during, after = _run(Config(endpoint="127.0.0.1:0"))
    assert (before[0], during[0], after[0]) == (503, 200, 503)
    assert during[1] == "application/json"
    assert json.loads(during[2])["status"] == "Server available"
    assert json.loads(after[2])["status"] == "Server not available"


def test_response_body_replaces_the_json_status() -> None:
    body = ResponseBody(healthy="I'm OK", unhealthy="I'm not well")
    before, during, after = _run(Config(endpoint="127.0.0.1:0", path="/health/status", response_body=body))
    assert [(r[0], r[2]) for r in (before, during, after)] == [
        (503, "I'm not well"), (200, "I'm OK"), (503, "I'm not well")]
    assert during[1] == "text/plain"


def test_check_collector_pipeline_is_refused_when_enabled_and_accepted_off() -> None:
    base = """
receivers: {otlp: {protocols: {grpc: }}}
exporters: {debug: }
extensions: {health_check: {check_collector_pipeline: {enabled: %s, interval: 5m}}}
service: {extensions: [health_check], pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
"""
    load_text(base % "false", env={})
    with pytest.raises(ConfigError) as info:
        load_text(base % "true", env={})
    assert info.value.errors[0].startswith(
        "extensions::health_check::check_collector_pipeline: enabled: not supported by this gateway")
