"""Jaeger v2 as a destination: the gateway's `jaeger` exporter, over gRPC and HTTP, delivers into a
real Jaeger (memory storage), and Jaeger's query API returns every trace with every span.
Skips with the build error when Jaeger could not be built from Go modules here."""

from __future__ import annotations

import json
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import peers
from tests.harness import Ports, free_port, running
from tests.interop._support import gateway_config, make_traces, send

pytestmark = pytest.mark.peers


class Jaeger:
    def __init__(self, binary: Path, workdir: Path) -> None:
        self.grpc, self.http, self.query, self.metrics = free_port(), free_port(), free_port(), free_port()
        config = {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}},
                "telemetry": {"metrics": {"level": "none"}},
            },
            "extensions": {
                "jaeger_storage": {"backends": {"mem": {"memory": {"max_traces": 10000}}}},
                "jaeger_query": {"storage": {"traces": "mem"}, "http": {"endpoint": f"127.0.0.1:{self.query}"},
                                 "grpc": {"endpoint": f"127.0.0.1:{free_port()}"}},
            },
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.grpc}"},
                                                 "http": {"endpoint": f"127.0.0.1:{self.http}"}}}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "mem"}},
        }
        path = workdir / "jaeger.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = workdir / "jaeger.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([str(binary), "--config", str(path)], stdout=out, stderr=subprocess.STDOUT)
        peers.wait_for(self._ready, 60, "jaeger's query API")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"jaeger exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.query}/api/services", timeout=1):
                return True
        except (OSError, urllib.error.URLError):
            return False

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.query}/api/traces/{trace_id}", timeout=5) as r:
                data = json.load(r).get("data") or []
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return data[0] if data else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def jaeger() -> Iterator[Jaeger]:
    binary = peers.require_peer("jaeger")
    with tempfile.TemporaryDirectory(prefix="jaeger-") as d:
        j = Jaeger(binary, Path(d))
        try:
            yield j
        finally:
            j.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_gateway_jaeger_exporter_into_jaeger_v2(protocol: str, jaeger: Jaeger, ports: Ports) -> None:
    sent = make_traces(12, 3, seed=3, service="orders")
    port = jaeger.grpc if protocol == "grpc" else jaeger.http
    exporters = {"jaeger": {"endpoint": f"127.0.0.1:{port}", "protocol": protocol, "tls": {"insecure": True}}}
    with running(gateway_config(ports, exporters), ports):
        send(f"127.0.0.1:{ports.grpc}", "traces", sent)
        spans = sent.resource_spans[0].scope_spans[0].spans
        want: dict[str, set[str]] = {}
        for s in spans:
            want.setdefault(s.trace_id.hex(), set()).add(s.span_id.hex())

        def arrived() -> bool:
            for tid, span_ids in want.items():
                trace = jaeger.trace(tid)
                if trace is None or {sp["spanID"] for sp in trace["spans"]} != span_ids:
                    return False
            return True

        peers.wait_for(arrived, 30, "every trace in Jaeger's query API")
        trace = jaeger.trace(spans[0].trace_id.hex())
        assert trace is not None
        names = {sp["operationName"] for sp in trace["spans"]}
        assert names == {f"trace-0-span-{i}" for i in range(3)}
        assert {p["serviceName"] for p in trace["processes"].values()} == {"orders"}
