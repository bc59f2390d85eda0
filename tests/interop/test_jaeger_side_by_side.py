"""Side by side: the same Jaeger spans (`_jaeger`: hand-written to walk every translation rule) through
the reference Collector's `jaeger` receiver and the gateway's, over each protocol: gRPC PostSpans,
Thrift over HTTP, and the agent's emitBatch over UDP in the compact and binary protocols. The OTLP that
arrives is compared span by span, field by field (the zipkin side-by-side's `normalize`). Bad requests
get the same HTTP status or gRPC code from both."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests import peers
from tests.harness import Ports, Sink, free_ports, running
from tests.interop import _jaeger
from tests.interop.test_zipkin_side_by_side import assert_same, delivered

pytestmark = [pytest.mark.peers]

POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"
THRIFT = "application/x-thrift"


def _protocols(grpc_port: int, http_port: int, compact: int, binary: int) -> dict[str, Any]:
    return {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}, "thrift_http": {"endpoint": f"127.0.0.1:{http_port}"},
            "thrift_compact": {"endpoint": f"127.0.0.1:{compact}"},
            "thrift_binary": {"endpoint": f"127.0.0.1:{binary}"}}


def post(url: str, body: bytes, content_type: str = THRIFT) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def post_spans(port: int, body: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(POST_SPANS, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(body, timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]


def udp(port: int, packet: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(packet, ("127.0.0.1", port))


BAD_HTTP: list[tuple[bytes, str]] = [
    (b"\x0c\x00\x01", THRIFT),  # truncated
    (b"\x00", THRIFT),  # a Batch without its required fields
    (_jaeger.thrift_http_body(_jaeger.thrift_batch(90)), "application/json"),
    (b"\x0c\x00\x01\x0b\x00\x01\xff\xff\xff\xff", THRIFT),  # a negative string size
]
BAD_GRPC: list[bytes] = [
    b"\x0a\x05\x0a\x03\x0a\x01\x01",  # a trace id of 1 byte
    b"\x0a\x04\x0a\x02\x12\x00",  # an empty span id
    b"\x0a\x03\x0a\x01",  # truncated
    b"\x0a\x04\x0a\x02\x08\x01",  # spans with the varint wire type
]


def test_same_otlp_as_the_collector(ports: Ports, sink: Sink) -> None:
    ours_udp = free_ports(2)
    theirs_udp = free_ports(2)
    col_grpc, col_http = free_ports(2)
    collector = {
        "extensions": {"health_check": {"endpoint": "{{health_endpoint}}"}},
        "receivers": {"jaeger": {"protocols": _protocols(col_grpc, col_http, *theirs_udp)}},
        "exporters": {"file": {"path": "{{workdir}}/traces.json", "flush_interval": "100ms"}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["jaeger"], "exporters": ["file"]}}},
    }
    gateway = yaml.safe_dump({
        "receivers": {"jaeger": {"protocols": _protocols(ports.grpc, ports.http, *ours_udp)}},
        "exporters": {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{ports.health}"}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["jaeger"], "exporters": ["otlp/backend"]}},
                    "telemetry": {"metrics": {"address": f"127.0.0.1:{ports.metrics}"}}},
    })
    targets = {"collector": (col_grpc, col_http, *theirs_udp), "gateway": (ports.grpc, ports.http, *ours_udp)}
    with running(gateway, ports) as gw, peers.otelcol(yaml.safe_dump(collector)) as col:
        for name, (grpc_port, http_port, compact, binary) in targets.items():
            assert post(f"http://127.0.0.1:{http_port}/api/traces",
                        _jaeger.thrift_http_body(_jaeger.thrift_batch(1))) == 202, name
            assert post_spans(grpc_port, _jaeger.proto_request(2)) == grpc.StatusCode.OK, name
            udp(compact, _jaeger.agent_packet(_jaeger.thrift_batch(3), "compact"))
            udp(binary, _jaeger.agent_packet(_jaeger.thrift_batch(4, "agent-binary", []), "binary"))
            # bad packets are dropped without an answer; the good one after them still arrives
            udp(compact, b"\x82\x21\x01\x09emitBatch\x1c\x18")
            udp(compact, _jaeger.agent_packet(_jaeger.thrift_batch(5, ""), "compact"))
        for body, ctype in BAD_HTTP:
            codes = {name: post(f"http://127.0.0.1:{t[1]}/api/traces", body, ctype) for name, t in targets.items()}
            assert codes == {"collector": 400, "gateway": 400}, (body[:50], codes)
        for body in BAD_GRPC:
            codes = {name: post_spans(t[0], body) for name, t in targets.items()}
            assert codes["gateway"] == codes["collector"] != grpc.StatusCode.OK, (body, codes)

        theirs, ours = delivered(Path(col.workdir) / "traces.json", sink)
        assert gw.metric("otelcol_gateway_receiver_failed_requests_total") == len(BAD_HTTP) + len(BAD_GRPC) + 1

    assert_same(theirs, ours)
