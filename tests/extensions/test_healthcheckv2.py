"""healthcheckv2 through a running gateway: component status per pipeline and overall over HTTP and the
gRPC health service (grpcio's health client), following a backend that goes down and comes back, a
permanent refusal, `use_v2: false`, and `/config` with its secrets redacted."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.component import Settings
from gateway.extensions.healthcheckv2 import Config, ConfigPath, HealthCheckV2, HttpConfig, StatusPath
from gateway.status import StatusHub
from gateway.telemetry import Telemetry
from tests.delivery.configs import FAST_RETRY
from tests.delivery.load import Client, clear_faults
from tests.harness import Fault, Ports, Sink, basic_config, free_ports, running, wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            body = r.read()
            return int(r.status), json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        return int(e.code), json.loads(body) if body and e.headers.get_content_type() == "application/json" \
            else body.decode()


def _config(ports: Ports, sink: Sink, extensions: str, grpc_code: str = "") -> str:
    exporters = f"""  otlp/a:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
    headers: {{authorization: "Bearer s3cr3t-token"}}
    retry_on_failure: {FAST_RETRY}
"""
    text = basic_config(ports, exporters, "[otlp/a]")
    text = text.replace("extensions:\n  health_check:", f"extensions:\n{extensions}  health_check:", 1)
    ids = [line.strip().rstrip(":") for line in extensions.splitlines() if line.startswith("  ") and line[2] != " "]
    return text.replace("  extensions: [health_check]", f"  extensions: [health_check, {', '.join(ids)}]", 1)


class _Watch:
    """grpcio's health client watching one service, in a thread."""

    def __init__(self, port: int, service: str) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.statuses: list[int] = []
        self._call = health_pb2_grpc.HealthStub(self.channel).Watch(health_pb2.HealthCheckRequest(service=service))
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for response in self._call:
                self.statuses.append(response.status)
        except grpc.RpcError:
            pass

    def close(self) -> None:
        self._call.cancel()
        self.channel.close()


def _check(port: int, service: str) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                             timeout=5).status
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[attr-defined]


def test_a_backend_down_then_back_turns_the_exporter_and_its_pipeline_recoverable_then_ok(
        ports: Ports, sink: Sink) -> None:
    strict, grpc_port, patient, lenient = free_ports(4)
    extensions = f"""  healthcheckv2/strict:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{strict}", config: {{enabled: true}}}}
    grpc: {{endpoint: "127.0.0.1:{grpc_port}", transport: tcp}}
    component_health: {{include_recoverable_errors: true, recovery_duration: 1ms}}
  healthcheckv2/patient:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{patient}"}}
    component_health: {{include_recoverable_errors: true, recovery_duration: 1h}}
  healthcheckv2/lenient:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{lenient}", status: {{enabled: true, path: /health/status}}}}
"""
    with running(_config(ports, sink, extensions), ports):
        wait_until(lambda: _get(strict, "/status")[0] == 200, 10, "the pipelines ready")
        code, body = _get(strict, "/status?verbose")
        assert set(body) == {"start_time", "healthy", "status", "status_time", "components"}
        assert (body["healthy"], body["status"]) == (True, "StatusOK")
        assert set(body["components"]) == {"extensions", "pipeline:traces"}
        assert set(body["components"]["pipeline:traces"]["components"]) == {
            "receiver:otlp", "processor:batch", "exporter:otlp/a"}
        assert "extension:healthcheckv2/strict" in body["components"]["extensions"]["components"]
        assert "start_time" not in body["components"]["pipeline:traces"]
        assert set(_get(strict, "/status")[1]) == {"start_time", "healthy", "status", "status_time"}
        watch = _Watch(grpc_port, "traces")
        wait_until(lambda: watch.statuses == [SERVING], 10, "the watch's first answer")

        sink.fail_next(Fault(-1))  # the backend is down: UNAVAILABLE, retryable
        client = Client(ports.grpc, ports.http)
        assert client.send(["while-down"]).ok

        def exporter_failing() -> bool:
            code, body = _get(strict, "/status?pipeline=traces&verbose")
            return code == 500 and body["components"]["exporter:otlp/a"]["status"] == "StatusRecoverableError"

        wait_until(exporter_failing, 10, "the exporter's recoverable error")
        _, pipeline = _get(strict, "/status?pipeline=traces&verbose")
        assert (pipeline["status"], pipeline["healthy"]) == ("StatusRecoverableError", False)
        assert "UNAVAILABLE" in pipeline["error"] or "unavailable" in pipeline["error"].lower()
        assert pipeline["components"]["receiver:otlp"]["status"] == "StatusOK"
        code, overall = _get(strict, "/status")
        assert (code, overall["status"], overall["healthy"]) == (500, "StatusRecoverableError", False)
        # Within its recovery_duration, and without component_health: healthy, the error still shown.
        code, overall = _get(patient, "/status")
        assert (code, overall["status"], overall["healthy"]) == (200, "StatusRecoverableError", True)
        code, overall = _get(lenient, "/health/status")
        assert (code, overall["status"], overall["healthy"]) == (200, "StatusRecoverableError", True)
        assert _get(strict, "/status?pipeline=logs")[0] == 404
        assert _check(grpc_port, "") == NOT_SERVING
        assert _check(grpc_port, "traces") == NOT_SERVING
        assert _check(grpc_port, "extensions") == SERVING
        assert _check(grpc_port, "logs") == grpc.StatusCode.NOT_FOUND
        wait_until(lambda: watch.statuses == [SERVING, NOT_SERVING], 10, "the watch seeing it")

        clear_faults(sink)  # the backend is back
        sink.wait_spans(1)
        wait_until(lambda: _get(strict, "/status")[0] == 200, 10, "OK again")
        _, pipeline = _get(strict, "/status?pipeline=traces&verbose")
        assert pipeline["components"]["exporter:otlp/a"]["status"] == "StatusOK"
        assert _check(grpc_port, "traces") == SERVING
        wait_until(lambda: watch.statuses == [SERVING, NOT_SERVING, SERVING], 10, "the watch seeing it recover")
        watch.close()

        # /config: the running config, the exporter's Authorization header redacted; off by default.
        code, config = _get(strict, "/config")
        assert code == 200
        assert config["exporters"]["otlp/a"]["headers"] == {"authorization": "[REDACTED]"}
        assert config["extensions"]["healthcheckv2/strict"]["component_health"]["recovery_duration"] == "1ms"
        assert "s3cr3t-token" not in json.dumps(config)
        assert _get(patient, "/config")[0] == 404
        assert _get(lenient, "/status")[0] == 404
        client.close()


def test_a_permanent_refusal_is_a_permanent_error_and_use_v2_false_answers_as_health_check(
        ports: Ports, sink: Sink) -> None:
    permanent, lenient, legacy = free_ports(3)
    extensions = f"""  healthcheckv2/permanent:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{permanent}"}}
    component_health: {{include_permanent_errors: true}}
  healthcheckv2/lenient:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{lenient}"}}
    component_health: {{include_permanent_errors: false}}
  healthcheckv2/legacy:
    use_v2: false
    endpoint: "127.0.0.1:{legacy}"
    path: /legacy
"""
    with running(_config(ports, sink, extensions), ports):
        wait_until(lambda: _get(legacy, "/legacy")[0] == 200, 10, "the pipelines ready")
        assert _get(legacy, "/legacy")[1]["status"] == "Server available"
        assert _get(legacy, "/status")[0] == 404
        sink.fail_next(Fault(-1, grpc_code=grpc.StatusCode.INVALID_ARGUMENT))
        client = Client(ports.grpc, ports.http)
        assert client.send(["refused"]).ok
        wait_until(lambda: _get(permanent, "/status")[0] == 500, 10, "the permanent error")
        _, body = _get(permanent, "/status?verbose")
        assert (body["status"], body["healthy"]) == ("StatusPermanentError", False)
        assert body["components"]["pipeline:traces"]["components"]["exporter:otlp/a"]["status"] == \
            "StatusPermanentError"
        code, body = _get(lenient, "/status")
        assert (code, body["status"], body["healthy"]) == (200, "StatusPermanentError", True)
        assert _get(legacy, "/legacy")[0] == 200  # v1: errors are no reason for a 503
        # Permanent, as in the Collector: a later success does not clear it; only a restart does.
        clear_faults(sink)
        assert client.send(["accepted"]).ok
        sink.wait_spans(1)
        assert _get(permanent, "/status")[1]["status"] == "StatusPermanentError"
        client.close()


@pytest.mark.parametrize("use_v2", [True, False])
def test_use_v2_decides_which_keys_apply(use_v2: bool) -> None:
    from gateway.config.load import ConfigError, load_text

    base = """
receivers: {otlp: {protocols: {grpc: }}}
exporters: {debug: }
extensions: {healthcheckv2: %s}
service: {extensions: [healthcheckv2], pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
"""
    if use_v2:
        load_text(base % "{use_v2: true, grpc: }", env={})
        wrong = ["{use_v2: true}", "{use_v2: true, http: , path: /x}", "{use_v2: true, grpc: {transport: unix}}",
                 "{use_v2: true, http: {status: {path: x}}}"]
        messages = ["use_v2: configure http, grpc or both", "path: used only with use_v2: false",
                    "grpc: transport 'unix': only tcp is supported", "http: status::path must start with '/'"]
    else:
        load_text(base % "{use_v2: false, path: /x}", env={})
        wrong = ["{http: }", "{component_health: {include_permanent_errors: true}}"]
        messages = ["http: used only with use_v2: true", "component_health: used only with use_v2: true"]
    for text, message in zip(wrong, messages, strict=True):
        with pytest.raises(ConfigError) as info:
            load_text(base % text, env={})
        assert message in info.value.errors[0], info.value.errors
    with pytest.raises(ConfigError) as info:
        load_text(base.replace("service: {", "service: {workers: 2, ") % "{use_v2: true, grpc: }", env={})
    assert "not supported with service::workers > 1" in info.value.errors[0]


class _Host:
    def __init__(self) -> None:
        self.hub = StatusHub()

    def extension(self, component_id: str) -> Any:
        raise KeyError(component_id)

    def component_status(self) -> StatusHub:
        return self.hub

    def config_view(self) -> dict[str, object]:
        return {"exporters": {"debug": {}}}


def test_config_path_is_where_the_config_is_served_and_status_can_be_switched_off() -> None:
    config = Config(use_v2=True, http=HttpConfig(endpoint="127.0.0.1:0", status=StatusPath(enabled=False),
                                                 config=ConfigPath(enabled=True, path="/health/config")))

    async def run() -> list[tuple[int, Any]]:
        ext = HealthCheckV2(Settings("healthcheckv2", config, Telemetry(), _Host()))
        await ext.start()
        assert ext.port is not None
        try:
            return [await asyncio.to_thread(_get, ext.port, path) for path in ("/health/config", "/config", "/status")]
        finally:
            await ext.shutdown()

    served, default_path, status = asyncio.run(run())
    assert served == (200, {"exporters": {"debug": {}}})
    assert default_path[0] == 404 and status[0] == 404
