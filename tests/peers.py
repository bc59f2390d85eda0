"""Reference peers built by `.ci/peers.sh` (and `.ci/helm.sh`): where they are, how to skip
cleanly when they are missing, and how to run them.

    PEERS_DIR                      ${OTELGW_PEERS_DIR:-~/.cache/otel-gateway/peers}
    peer_path(name) -> Path | None the built artifact, or None
    require_peer(name) -> Path     the artifact, or pytest.skip(<what is missing, how to build it>)
    run_hatchet_sim(endpoint, ...) -> ClientResult   Go SDK client (Hatchet engine, seed 000)
    run_kestra_sim(traces, http, ...) -> ClientResult Java SDK client (Kestra, seed 003)
    start_otelcol(config) -> Otelcol / otelcol(config) context manager: otelcol-ref on free ports
    read_otlp_json_lines(path) / trace_ids_in_file(path): what a file exporter wrote

Peer names: "otelcol-ref", "jaeger", "hatchet-engine-sim", "helm" (binaries in PEERS_DIR/bin) and
"kestra-sim" (PEERS_DIR/kestra-sim/kestra-sim.jar, run with `java -jar`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import yaml

from tests.harness import free_ports, wait_until

REPO = Path(__file__).resolve().parent.parent


def peers_dir() -> Path:
    """The peers cache, read from the environment each call (tests may override it)."""
    env = os.environ.get("OTELGW_PEERS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "otel-gateway" / "peers"


PEERS_DIR: Path = peers_dir()

GO_PEERS = ("otelcol-ref", "jaeger", "hatchet-engine-sim", "h2spec")
PEER_NAMES = (*GO_PEERS, "helm", "kestra-sim")

_BUILD_CMD = "bash .ci/peers.sh"


def _artifact(name: str) -> Path:
    if name not in PEER_NAMES:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEER_NAMES)}")
    base = peers_dir()
    if name == "kestra-sim":
        return base / "kestra-sim" / "kestra-sim.jar"
    return base / "bin" / name


def _go_available() -> bool:
    return shutil.which("go") is not None or Path("/usr/local/go/bin/go").is_file()


def peer_path(name: str) -> Path | None:
    """The built artifact of peer `name`, or None when it is not built (or, for kestra-sim,
    when there is no `java` to run it)."""
    path = _artifact(name)
    if name == "kestra-sim":
        return path if path.is_file() and shutil.which("java") is not None else None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def skip_reason(name: str) -> str:
    """Why peer `name` is unavailable and the command that builds it."""
    path = _artifact(name)
    if name == "helm":
        if not _go_available():
            return f"helm not built ({path}): go is not installed; install Go, then run `bash .ci/helm.sh`"
        return f"helm not built ({path}): run `bash .ci/helm.sh`"
    if name == "kestra-sim":
        missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
        if shutil.which("java") is None:
            return f"kestra-sim needs `java` (JDK >= 17) on PATH; install it (and Maven), then run `{_BUILD_CMD}`"
        if not path.is_file():
            if missing:
                return f"kestra-sim not built ({path}): Maven (`mvn`) is missing; install it, then run `{_BUILD_CMD}`"
            return f"kestra-sim not built ({path}): run `PEERS_ONLY=kestra-sim {_BUILD_CMD}`"
        return f"kestra-sim unavailable ({path})"
    if not _go_available():
        return f"{name} not built ({path}): go is not installed; install Go >= 1.24, then run `{_BUILD_CMD}`"
    if name == "jaeger":
        err = peers_dir() / "jaeger.error"
        if err.is_file():
            lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln and not ln.startswith("#")]
            first = lines[0] if lines else "unknown error"
            return f"jaeger could not be built from Go modules here ({first[:300]}); details in {err}"
    return f"{name} not built ({path}): run `PEERS_ONLY={name} {_BUILD_CMD}`"


def require_peer(name: str) -> Path:
    """The artifact of peer `name`; skips the calling test with a clear reason when missing."""
    path = peer_path(name)
    if path is None:
        pytest.skip(skip_reason(name))
    return path


# ---------------------------------------------------------------- clients

_CLIENT_ENV_PREFIXES = ("SERVER_OTEL_", "SIM_", "K8S_POD_", "KESTRA_SIM_", "OTEL_")


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's environment without variables that would change a client's behaviour
    (the Go SDK honours OTEL_EXPORTER_OTLP_*), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env.update(extra or {})
    return env


@dataclass
class ClientResult:
    """One run of a client: its exit code, its JSON report line (empty if none) and its output."""

    returncode: int
    report: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.report.get("ok"))

    def describe(self) -> str:
        return f"rc={self.returncode}\nstdout:\n{self.stdout}\nstderr (tail):\n{self.stderr[-3000:]}"


def _run_client(cmd: list[str], env: dict[str, str], timeout: float) -> ClientResult:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    report: dict[str, Any] = {}
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                report = json.loads(line)
                break
    return ClientResult(proc.returncode, report, proc.stdout, proc.stderr)


def run_hatchet_sim(
    endpoint: str,
    *,
    insecure: bool = True,
    auth: str | None = None,
    service_name: str | None = None,
    ratio: float | None = None,
    spans: int | None = None,
    ca_file: str | Path | None = None,
    tls_server_name: str | None = None,
    export_timeout: str = "10s",
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> ClientResult:
    """Run hatchet-engine-sim against `endpoint` ("host:port", no scheme); skips if not built.

    Report keys: enabled, endpoint, service_name, insecure, ratio, spans_started, spans_sampled,
    spans_exported, trace_ids, sampled_trace_ids, exported_trace_ids, errors, ok.
    `env` adds or overrides variables (e.g. K8S_POD_NAME, SIM_SPANS_PER_TRACE)."""
    binary = require_peer("hatchet-engine-sim")
    extra: dict[str, str] = {
        "SERVER_OTEL_COLLECTOR_URL": endpoint,
        "SERVER_OTEL_INSECURE": "true" if insecure else "false",
        "SIM_TIMEOUT": export_timeout,
    }
    if auth is not None:
        extra["SERVER_OTEL_COLLECTOR_AUTH"] = auth
    if service_name is not None:
        extra["SERVER_OTEL_SERVICE_NAME"] = service_name
    if ratio is not None:
        extra["SERVER_OTEL_TRACE_ID_RATIO"] = repr(float(ratio))
    if spans is not None:
        extra["SIM_SPANS"] = str(spans)
    if ca_file is not None:
        extra["SIM_CA_FILE"] = str(ca_file)
    if tls_server_name is not None:
        extra["SIM_TLS_SERVER_NAME"] = tls_server_name
    extra.update(env or {})
    return _run_client([str(binary)], _clean_env(extra), timeout)


def java_command(*args: str) -> list[str]:
    """`java -jar kestra-sim.jar ARGS...`; skips the test if java or the jar is missing."""
    jar = require_peer("kestra-sim")
    java = shutil.which("java")
    assert java is not None  # require_peer checked it
    return [java, "-jar", str(jar), *args]


def run_kestra_sim(
    traces_endpoint: str = "http://localhost:4317",
    http_endpoint: str = "http://localhost:4318",
    *,
    traces: int | None = None,
    headers: Mapping[str, str] | None = None,
    ca_file: str | Path | None = None,
    service_name: str | None = None,
    export_timeout: str = "10s",
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> ClientResult:
    """Run kestra-sim: traces over OTLP gRPC to `traces_endpoint` (a URL: http://host:port, or
    https:// for TLS), metrics and logs over OTLP/HTTP to `http_endpoint` + /v1/metrics, /v1/logs.
    Skips if java or the jar is missing. Each of `traces` traces (default 2) is a root and two
    children, with one log record and one histogram point per child.

    Report keys: service_name, traces_endpoint, metrics_endpoint, logs_endpoint, trace_ids,
    spans_sent, spans_exported, exported_trace_ids, metric_names, exported_metric_names,
    metric_exports, log_bodies, exported_log_bodies, errors, ok."""
    cmd = java_command(traces_endpoint, http_endpoint)
    extra: dict[str, str] = {"SIM_TIMEOUT": export_timeout}
    if traces is not None:
        extra["SIM_TRACES"] = str(traces)
    if headers:
        extra["SIM_HEADERS"] = ",".join(f"{k}={v}" for k, v in headers.items())
    if ca_file is not None:
        extra["SIM_CA_FILE"] = str(ca_file)
    if service_name is not None:
        extra["KESTRA_SIM_SERVICE_NAME"] = service_name
    extra.update(env or {})
    return _run_client(cmd, _clean_env(extra), timeout)


# ---------------------------------------------------------------- otelcol-ref


@dataclass(frozen=True)
class OtelcolPorts:
    """Free ports for one otelcol-ref; placeholders of the same names fill a config template."""

    grpc_port: int
    http_port: int
    health_port: int
    metrics_port: int
    query_port: int  # spare, e.g. jaeger_query's HTTP API/UI
    workdir: Path

    @classmethod
    def allocate(cls, workdir: Path) -> OtelcolPorts:
        return cls(*free_ports(5), workdir)

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def health_endpoint(self) -> str:
        return f"127.0.0.1:{self.health_port}"

    def substitutions(self) -> dict[str, str]:
        return {
            "grpc_port": str(self.grpc_port),
            "http_port": str(self.http_port),
            "health_port": str(self.health_port),
            "metrics_port": str(self.metrics_port),
            "query_port": str(self.query_port),
            "query_endpoint": f"127.0.0.1:{self.query_port}",
            "grpc_endpoint": self.grpc_endpoint,
            "http_endpoint": self.http_endpoint,
            "health_endpoint": self.health_endpoint,
            "workdir": str(self.workdir),
        }


ConfigSource: TypeAlias = str | Callable[[OtelcolPorts], str]


def render_config(config: ConfigSource, ports: OtelcolPorts) -> str:
    """A config template's text with `{{name}}` placeholders filled (names: grpc_port, http_port,
    health_port, metrics_port, query_port, grpc_endpoint, http_endpoint, health_endpoint,
    query_endpoint, workdir), or the
    text a callable returns for `ports`. `${env:X}` and other `$` syntax are left alone."""
    if callable(config):
        return config(ports)
    text = config
    for key, value in ports.substitutions().items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _pin_self_telemetry(text: str, ports: OtelcolPorts) -> str:
    """Move the collector's own Prometheus endpoint (default :8888) to ports.metrics_port unless
    the config sets service.telemetry.metrics, so parallel collectors and the gateway never clash."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError("otelcol config must be a YAML mapping")
    service = doc.get("service") or {}
    doc["service"] = service
    telemetry = service.get("telemetry") or {}
    service["telemetry"] = telemetry
    if "metrics" not in telemetry:
        telemetry["metrics"] = {
            "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": ports.metrics_port}}}}]
        }
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class Otelcol:
    """A running otelcol-ref. `stop()` (idempotent) sends SIGTERM, then SIGKILL after a deadline."""

    process: subprocess.Popen[bytes]
    ports: OtelcolPorts
    config_path: Path
    log_path: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        return self.ports.workdir

    @property
    def grpc_endpoint(self) -> str:
        return self.ports.grpc_endpoint

    @property
    def http_url(self) -> str:
        return f"http://{self.ports.http_endpoint}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics_port}/metrics"

    @property
    def query_url(self) -> str:
        """Base URL of the spare port (jaeger_query's HTTP API in JAEGER_MEMORY_CONFIG)."""
        return f"http://127.0.0.1:{self.ports.query_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return self.process.returncode


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _health_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def start_otelcol(
    config: ConfigSource,
    *,
    workdir: Path | None = None,
    ready_timeout: float = 60.0,
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    peer: str = "otelcol-ref",
) -> Otelcol:
    """Start otelcol-ref (skips the test if it is not built) with `config` on free ports.

    `config` is a YAML template (see render_config) or a callable taking OtelcolPorts. The config
    file, the log (otelcol.log) and anything the config writes under {{workdir}} live in `workdir`,
    a fresh temp dir removed by stop() unless given. Unless the config sets
    service.telemetry.metrics, the collector's own metrics go to {{metrics_port}} (not :8888).
    Readiness: when {{health_port}} is used, a 200 on `/` from the health_check extension;
    otherwise a TCP connect to every other allocated port the config uses (polled with a bounded
    deadline). Raises RuntimeError (with the log) if it exits or times out.
    `peer="jaeger"` runs Jaeger v2 (a Collector distribution) the same way; see start_jaeger."""
    binary = require_peer(peer)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="otelcol-ref-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    ports = OtelcolPorts.allocate(workdir)
    text = _pin_self_telemetry(render_config(config, ports), ports)
    config_path = workdir / "otelcol.yaml"
    config_path.write_text(text)
    log_path = workdir / "otelcol.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(binary), "--config", str(config_path), *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )
    col = Otelcol(proc, ports, config_path, log_path, tmp)

    use_health = str(ports.health_port) in text
    listen_ports = [p for p in (ports.grpc_port, ports.http_port, ports.query_port) if str(p) in text]

    def ready() -> bool:
        if use_health:
            return _health_ok(ports.health_port)
        return all(_port_open(p) for p in listen_ports)

    deadline = time.monotonic() + ready_timeout
    delay = 0.01
    while not ready():
        if proc.poll() is not None:
            log_text = col.log()
            col.stop()
            raise RuntimeError(f"{peer} exited with {proc.returncode} before it was ready:\n{log_text[-4000:]}")
        if time.monotonic() > deadline:
            log_text = col.log()
            col.stop()
            raise RuntimeError(f"{peer} not ready after {ready_timeout}s:\n{log_text[-4000:]}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return col


@contextlib.contextmanager
def otelcol(config: ConfigSource, **kwargs: Any) -> Iterator[Otelcol]:
    """`with otelcol(cfg) as col:` start_otelcol(cfg, **kwargs), stopped on exit."""
    col = start_otelcol(config, **kwargs)
    try:
        yield col
    finally:
        col.stop()


# A ready-made template: OTLP gRPC + HTTP in, health_check, everything to JSON files in workdir
# (traces.json, metrics.json, logs.json: one OTLP/JSON export request per line).
OTLP_TO_FILES_CONFIG = """\
extensions:
  health_check:
    endpoint: "{{health_endpoint}}"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{{grpc_endpoint}}"
      http:
        endpoint: "{{http_endpoint}}"
exporters:
  file/traces:
    path: "{{workdir}}/traces.json"
    flush_interval: 100ms
  file/metrics:
    path: "{{workdir}}/metrics.json"
    flush_interval: 100ms
  file/logs:
    path: "{{workdir}}/logs.json"
    flush_interval: 100ms
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs]
"""


# Jaeger v2 all-in-one on free ports: OTLP gRPC/HTTP in, in-memory storage, query API on
# {{query_endpoint}} (GET /api/traces/<hex trace id>, /api/services). No health extension: ready
# when the OTLP and query ports accept connections.
JAEGER_MEMORY_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: "{{query_endpoint}}"
    grpc:
      endpoint: "127.0.0.1:0"
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{{grpc_endpoint}}"
      http:
        endpoint: "{{http_endpoint}}"
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"""


def start_jaeger(config: ConfigSource = JAEGER_MEMORY_CONFIG, **kwargs: Any) -> Otelcol:
    """Start Jaeger v2 (skips if it did not build; the reason quotes $PEERS_DIR/jaeger.error)."""
    return start_otelcol(config, peer="jaeger", **kwargs)


def jaeger_has_trace(col: Otelcol, trace_id: str) -> bool:
    """True when Jaeger's query API (col.query_url) returns spans for `trace_id` (hex)."""
    try:
        with urllib.request.urlopen(f"{col.query_url}/api/traces/{trace_id}", timeout=2) as resp:
            body = json.loads(resp.read())
    except (OSError, urllib.error.URLError, json.JSONDecodeError):
        return False
    return any(t.get("spans") for t in body.get("data") or [])


def read_otlp_json_lines(path: Path) -> list[dict[str, Any]]:
    """The OTLP/JSON requests a file exporter wrote (one per line); [] if the file is absent.
    A partly written last line is ignored."""
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


def trace_ids_in_file(path: Path) -> set[str]:
    """Hex trace ids of every span in a file exporter's traces file."""
    ids: set[str] = set()
    for req in read_otlp_json_lines(path):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    ids.add(str(span.get("traceId", "")).lower())
    return ids


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` with a bounded deadline (5 ms backing off to 200 ms)."""
    wait_until(predicate, timeout, what, max_delay=0.2)
