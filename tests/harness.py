"""Test harness: a gateway process on free ports, and OTLP backends that record what reaches them.

Everything binds port 0 or a port just found free, lives in temp dirs, and waits on events or on a
bounded poll of a real condition, never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

REPO = Path(__file__).resolve().parent.parent

REQUESTS = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
RESPONSES = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
HTTP_PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}


def free_port() -> int:
    return free_ports(1)[0]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports are handed out from below the kernel's ephemeral range, where bind(("", 0)) and outgoing
# connections never land: a port chosen here and released stays free until its test binds it. (A
# port the kernel chose, released, could be given straight back to the next server binding port 0,
# such as a sink, and the gateway would then fail to bind it.) Each process walks the range from its
# own random start, so concurrent runs on one machine rarely meet.
_PORTS_LOW = 10_000
_PORTS_HIGH = _ephemeral_low()
_port_cursor = _PORTS_LOW + random.SystemRandom().randrange(max(1, _PORTS_HIGH - _PORTS_LOW))
_port_lock = threading.Lock()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports that nothing else in this process will be handed before it wraps the
    whole range (over 20,000 ports)."""
    global _port_cursor
    if _PORTS_HIGH - _PORTS_LOW < 1_000:   # an odd ephemeral range: let the kernel choose
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
            for s in socks:
                s.bind(("127.0.0.1", 0))
            return [int(s.getsockname()[1]) for s in socks]
    out: list[int] = []
    with _port_lock:
        for _ in range(_PORTS_HIGH - _PORTS_LOW):
            port = _port_cursor
            _port_cursor = _PORTS_LOW + (_port_cursor + 1 - _PORTS_LOW) % (_PORTS_HIGH - _PORTS_LOW)
            if _bindable(port):
                out.append(port)
                if len(out) == n:
                    return out
    raise RuntimeError(f"no {n} free ports between {_PORTS_LOW} and {_PORTS_HIGH}")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition",
               max_delay: float = 0.1) -> None:
    """Poll a real condition with a bounded deadline (backing off from 5 ms to `max_delay`)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


# ---------------------------------------------------------------- backends


@dataclass
class Received:
    signal: str
    request: Any
    headers: dict[str, str]
    transport: str


@dataclass
class Fault:
    """What the backend answers instead of success, for the next `count` requests (-1: forever)."""

    count: int
    grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    http_status: int = 503
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class Sink:
    """An OTLP backend on gRPC and HTTP that records every accepted request."""

    received: list[Received] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    refused: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)
    grpc_port: int = 0
    http_port: int = 0
    request_times: list[float] = field(default_factory=list)
    _grpc: Any = None
    _http: Any = None

    # -- faults
    def fail_next(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _take_fault(self) -> Fault | None:
        with self.lock:
            self.request_times.append(time.monotonic())
            while self.faults:
                f = self.faults[0]
                if f.count == 0:
                    self.faults.pop(0)
                    continue
                if f.count > 0:
                    f.count -= 1
                self.refused += 1
                return f
            return None

    def _record(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)
            self.lock.notify_all()

    # -- queries
    def spans(self) -> list[tuple[Any, Any, Any]]:
        """(resource, scope, span) for every span received, in arrival order."""
        out = []
        with self.lock:
            reqs = [r for r in self.received if r.signal == "traces"]
        for r in reqs:
            for rs in r.request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append((rs.resource, ss.scope, span))
        return out

    def span_count(self) -> int:
        return len(self.spans())

    def wait_spans(self, n: int, timeout: float = 15.0) -> list[tuple[Any, Any, Any]]:
        wait_until(lambda: self.span_count() >= n, timeout, f"{n} spans at the sink (have {self.span_count()})")
        return self.spans()

    def requests(self, signal: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if signal is None or r.signal == signal]

    # -- servers
    def start(self, tls: tuple[bytes, bytes] | None = None) -> Sink:
        self._start_grpc(tls)
        self._start_http()
        return self

    def _start_grpc(self, tls: tuple[bytes, bytes] | None) -> None:
        sink = self

        def handler(signal: str) -> Any:
            def export(request: Any, context: grpc.ServicerContext) -> Any:
                fault = sink._take_fault()
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    context.abort(fault.grpc_code, "injected fault")
                headers = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
                sink._record(Received(signal, request, headers, "grpc"))
                return RESPONSES[signal]()

            return grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=REQUESTS[signal].FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                             options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(SERVICES[s], {"Export": handler(s)}) for s in SERVICES
        ))
        if tls is not None:
            creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.grpc_port = server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.grpc_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server

    def _start_http(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signal = HTTP_PATHS.get(self.path)
                if signal is None:
                    self._answer(404, b"not found")
                    return
                fault = sink._take_fault()
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    self._answer(fault.http_status, b"injected fault", extra)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = REQUESTS[signal].FromString(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink._record(Received(signal, request, headers, "http"))
                self._answer(200, RESPONSES[signal]().SerializeToString(),
                             {"Content-Type": "application/x-protobuf"})

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.http_port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._http = server

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


# ---------------------------------------------------------------- the gateway process


@dataclass
class Ports:
    grpc: int
    http: int
    health: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(4))


class GatewayProcess:
    """`python -m gateway --config FILE` as a child process; output kept in files in a temp dir."""

    def __init__(self, config_text: str, env: dict[str, str] | None = None, ports: Ports | None = None,
                 workdir: Path | None = None) -> None:
        self.ports = ports
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="gw-"))
        self.config_path = self.dir / "config.yaml"
        self.config_path.write_text(config_text)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"

    def start(self, wait: bool = True) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config_path)],
            stdout=self.stdout_path.open("wb"), stderr=self.stderr_path.open("wb"),
            env=self.env, cwd=REPO,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.ports is not None, "wait_ready needs the ports"

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.stderr()}")
            return self.health() == 200

        wait_until(ready, timeout, "the gateway's health check")

    def health(self) -> int | None:
        assert self.ports is not None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports.health}/", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (OSError, http.client.HTTPException):   # not up yet, or something else holds the port
            return None

    def metrics(self) -> dict[str, float]:
        """Scrape /metrics into {'name{labels}': value}."""
        assert self.ports is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports.metrics}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's series whose labels include `labels`."""
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            if all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += value
        return total

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def basic_config(ports: Ports, exporters: str, pipeline_exporters: str, processors: str = "batch: {timeout: 50ms}",
                 pipeline_processors: str = "[batch]", extra: str = "") -> str:
    """A config with the OTLP receiver, health and metrics on `ports`, and the given exporters."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports.grpc}"}}
      http: {{endpoint: "127.0.0.1:{ports.http}"}}
processors:
  {processors}
exporters:
{exporters}
extensions:
  health_check: {{endpoint: "127.0.0.1:{ports.health}"}}
{extra}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: {pipeline_processors}
      exporters: {pipeline_exporters}
  telemetry:
    metrics: {{address: "127.0.0.1:{ports.metrics}"}}
"""


def forward_config(ports: Ports, sink: Sink, grpc_options: str = "", http_options: str = "") -> str:
    """basic_config forwarding traces to `sink` over OTLP/gRPC, with `grpc_options` and `http_options`
    (YAML flow-map entries, e.g. "max_connections: 10") added to the receiver's gRPC and HTTP blocks."""
    exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
"""
    cfg = basic_config(ports, exporters, "[otlp]")
    for protocol, port, options in (("grpc", ports.grpc, grpc_options), ("http", ports.http, http_options)):
        plain = f'{protocol}: {{endpoint: "127.0.0.1:{port}"}}'
        assert plain in cfg
        if options:
            cfg = cfg.replace(plain, f'{protocol}: {{endpoint: "127.0.0.1:{port}", {options}}}')
    return cfg


@contextlib.contextmanager
def running(config_text: str, ports: Ports, env: dict[str, str] | None = None) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(config_text, env, ports).start()
    try:
        yield gw
    finally:
        gw.kill()
