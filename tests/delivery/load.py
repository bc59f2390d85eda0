"""Clients for the delivery tests: raw OTLP requests of uniquely named spans, over gRPC or HTTP,
remembering which spans the gateway acknowledged and which it refused (and how)."""

from __future__ import annotations

import collections
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.harness import SERVICES, Sink

_EXPORT = f"/{SERVICES['traces']}/Export"


def request(names: list[str], pad: int = 0) -> trace_service_pb2.ExportTraceServiceRequest:
    """One request holding a span per name; `pad` bytes of attribute per span to make it heavy."""
    spans = [
        trace_pb2.Span(
            trace_id=os.urandom(16), span_id=os.urandom(8), name=name, kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=1, end_time_unix_nano=2,
            attributes=[common_pb2.KeyValue(key="pad", value=common_pb2.AnyValue(string_value="x" * pad))]
            if pad else [],
        )
        for name in names
    ]
    resource = resource_pb2.Resource(
        attributes=[common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="delivery"))]
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])
    ])


@dataclass
class Outcome:
    ok: bool
    code: str  # gRPC status name, or HTTP status as text
    retry_after: str | None = None


class Client:
    """Sends requests to a gateway over one transport; thread-safe bookkeeping of what was acknowledged."""

    def __init__(self, grpc_port: int, http_port: int, transport: str = "grpc") -> None:
        self.transport = transport
        self.http_url = f"http://127.0.0.1:{http_port}/v1/traces"
        self._channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self._call = self._channel.unary_unary(_EXPORT, request_serializer=None, response_deserializer=None)
        self.acked: list[str] = []
        self.refused: list[str] = []
        self.codes: collections.Counter[str] = collections.Counter()
        self.retry_afters: list[str | None] = []
        self._lock = threading.Lock()
        self._seq = 0

    def close(self) -> None:
        self._channel.close()

    def next_names(self, n: int, tag: str) -> list[str]:
        with self._lock:
            start = self._seq
            self._seq += n
        return [f"{tag}-{i}" for i in range(start, start + n)]

    def send(self, names: list[str], pad: int = 0) -> Outcome:
        data = request(names, pad).SerializeToString()
        outcome = self._grpc(data) if self.transport == "grpc" else self._http(data)
        with self._lock:
            (self.acked if outcome.ok else self.refused).extend(names)
            self.codes[outcome.code] += 1
            if not outcome.ok:
                self.retry_afters.append(outcome.retry_after)
        return outcome

    def _grpc(self, data: bytes) -> Outcome:
        try:
            self._call(data, timeout=10)
        except grpc.RpcError as exc:
            code: Any = exc.code()  # type: ignore[attr-defined]
            trailing = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
            retry = "RetryInfo" if "grpc-status-details-bin" in trailing else None
            return Outcome(False, code.name, retry)
        return Outcome(True, "OK")

    def _http(self, data: bytes) -> Outcome:
        req = urllib.request.Request(self.http_url, data=data, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
                return Outcome(True, str(resp.status))
        except urllib.error.HTTPError as exc:
            exc.read()
            return Outcome(False, str(exc.code), exc.headers.get("Retry-After"))
        except OSError as exc:
            return Outcome(False, type(exc).__name__)


@dataclass
class Load:
    """Background senders: `threads` loops sending `per_request` spans each until stopped."""

    client: Client
    tag: str
    per_request: int = 20
    threads: int = 4
    pad: int = 0
    pause: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.client.send(self.client.next_names(self.per_request, self.tag), self.pad)
            if self.pause:
                self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def names_at(sink: Sink) -> collections.Counter[str]:
    return collections.Counter(span.name for _, _, span in sink.spans())


def clear_faults(sink: Sink) -> None:
    with sink.lock:
        sink.faults.clear()


def report(test: str, acked: int, delivered: int, refused: int, duplicated: int, **extra: Any) -> None:
    more = "".join(f" {k}={v}" for k, v in extra.items())
    line = (f"FIGURES {test}: acknowledged={acked} delivered={delivered} refused={refused} "
            f"duplicated={duplicated}{more}")
    print(line)
    path = os.environ.get("DELIVERY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def wait_all(sink: Sink, names: list[str], timeout: float = 30.0) -> collections.Counter[str]:
    """Wait until every name arrived at least once; return the arrivals."""
    want = set(names)
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        got = names_at(sink)
        missing = want - set(got)
        if not missing:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} acknowledged spans never arrived, e.g. {sorted(missing)[:5]}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
