"""Side by side: the same Zipkin requests (v2 JSON, v1 JSON, v2 protobuf; hand-written spans that walk
every translation rule, and what the OpenTelemetry SDK's Zipkin encoders write) through the reference
Collector's `zipkin` receiver and through the gateway's, with `parse_string_tags` off and on. The OTLP
that arrives is compared span by span, field by field: ids, name, kind, times, trace state, status,
attributes with their types, events, links, the resource and the scope. Bad requests get the same
status code from both."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import peers
from tests.harness import Ports, Sink, running
from tests.interop import _zipkin
from tests.interop._support import file_requests

pytestmark = [pytest.mark.peers]

COLLECTOR = """
extensions: {health_check: {endpoint: "{{health_endpoint}}"}}
receivers:
  zipkin: {endpoint: "{{http_endpoint}}"}
  zipkin/parsed: {endpoint: "{{query_endpoint}}", parse_string_tags: true}
exporters:
  file: {path: "{{workdir}}/traces.json", flush_interval: 100ms}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [zipkin, zipkin/parsed], exporters: [file]}
"""


def _gateway(ports: Ports, sink: Sink) -> str:
    return yaml.safe_dump({
        "receivers": {"zipkin": {"endpoint": f"127.0.0.1:{ports.http}"},
                      "zipkin/parsed": {"endpoint": f"127.0.0.1:{ports.grpc}", "parse_string_tags": True}},
        "exporters": {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{ports.health}"}},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"traces": {"receivers": ["zipkin", "zipkin/parsed"], "exporters": ["otlp/backend"]}},
                    "telemetry": {"metrics": {"address": f"127.0.0.1:{ports.metrics}"}}},
    })


def post(base: str, path: str, body: bytes, content_type: str = "application/json") -> int:
    req = urllib.request.Request(base + path, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


PROTO = "application/x-protobuf"
# (path, body, content type) for each request; each `variant` gives its spans ids of their own.
REQUESTS: list[tuple[str, bytes, str]] = [
    ("/api/v2/spans", _zipkin.v2_json(1), "application/json"),
    ("/api/v1/spans", _zipkin.v1_json(2), "application/json"),
    ("/api/v2/spans", _zipkin.v2_protobuf(3), PROTO),
    ("/api/v2/spans", _zipkin.sdk_json("v2", 2), "application/json"),
    ("/api/v1/spans", _zipkin.sdk_json("v1", 1), "application/json"),
    ("/api/v2/spans", _zipkin.sdk_proto("proto"), PROTO),
]

BAD: list[tuple[str, bytes, str]] = [
    ("/api/v2/spans", b"[{", "application/json"),
    ("/api/v2/spans", b'[{"traceId":"zz","id":"0000000000000001"}]', "application/json"),
    ("/api/v2/spans", b'[{"traceId":"0000000000000001"}]', "application/json"),
    ("/api/v2/spans", b'[{"traceId":"0000000000000001","id":"1","timestamp":-1}]', "application/json"),
    ("/api/v2/spans", b'[{"traceId":"0000000000000001","id":"1","annotations":[{"value":"x"}]}]', "application/json"),
    ("/api/v2/spans", b'[{"traceId":"0000000000000001","id":"1","tags":{"otlp.link.0":"zz|1|||0"}}]',
     "application/json"),
    ("/api/v2/spans", b"\x0a\x05\x0a\x03abc", PROTO),
    ("/api/v2/spans", b"\x0a\x02\x0a", PROTO),
    ("/api/v1/spans", b'[{"traceId":"01","id":"0000000000000001"}]', "application/json"),
    ("/api/v1/spans", b'{"not":"a list"}', "application/json"),
]


def _value(v: Any) -> tuple[str, Any]:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return kind, [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return kind, _attrs(v.kvlist_value.values)
    return (kind or "empty"), getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        assert kv.key not in out, f"attribute {kv.key!r} twice"
        out[kv.key] = _value(kv.value)
    return out


def normalize(requests: Iterable[Any]) -> dict[tuple[bytes, bytes], dict[str, Any]]:
    """(trace id, span id) -> every field of the span, its scope and its resource; order-free where
    the Collector's order is not defined (attributes come from Go maps)."""
    out: dict[tuple[bytes, bytes], dict[str, Any]] = {}
    for req in requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    key = (s.trace_id, s.span_id)
                    assert key not in out, f"span {s.span_id.hex()} arrived twice"
                    out[key] = {
                        "resource": _attrs(rs.resource.attributes), "scope": (ss.scope.name, ss.scope.version),
                        "scope.attributes": _attrs(ss.scope.attributes),
                        "parent_span_id": s.parent_span_id.hex(), "name": s.name, "kind": s.kind,
                        "start": s.start_time_unix_nano, "end": s.end_time_unix_nano, "trace_state": s.trace_state,
                        "flags": s.flags, "status": (s.status.code, s.status.message),
                        "attributes": _attrs(s.attributes), "dropped_attributes": s.dropped_attributes_count,
                        "events": [(e.time_unix_nano, e.name, _attrs(e.attributes), e.dropped_attributes_count)
                                   for e in s.events],
                        "links": [(ln.trace_id.hex(), ln.span_id.hex(), ln.trace_state, _attrs(ln.attributes),
                                   ln.dropped_attributes_count, ln.flags) for ln in s.links],
                    }
    return out


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values()) or 1
    if isinstance(value, list | tuple):
        return sum(_leaves(v) for v in value) or 1
    return 1


def delivered(path: Path, sink: Sink) -> tuple[dict[tuple[bytes, bytes], dict[str, Any]], ...]:
    """The spans in the Collector's file (once it stops growing: the Collector took each request
    synchronously) and, once as many arrived, the spans the gateway delivered to `sink`."""
    last = -1

    def settled() -> bool:
        nonlocal last
        n = len(normalize(file_requests(path, "traces")))
        done, last = n == last and n > 0, n
        return done

    peers.wait_for(settled, 20, "the Collector's file to settle")
    theirs = normalize(file_requests(path, "traces"))
    peers.wait_for(lambda: len(normalize(r.request for r in sink.requests("traces"))) >= len(theirs), 20,
                   "the gateway to deliver every span")
    return theirs, normalize(r.request for r in sink.requests("traces"))


def assert_same(theirs: dict[tuple[bytes, bytes], dict[str, Any]],
                ours: dict[tuple[bytes, bytes], dict[str, Any]]) -> None:
    assert set(ours) == set(theirs), (
        f"only collector: {[k[1].hex() for k in set(theirs) - set(ours)][:10]}, "
        f"only gateway: {[k[1].hex() for k in set(ours) - set(theirs)][:10]}")
    differing = []
    fields = 0
    for key, want in theirs.items():
        got = ours[key]
        for name in want:
            fields += _leaves(want[name])
            if got[name] != want[name]:
                differing.append(f"span {key[1].hex()} {name}: collector {want[name]!r} gateway {got[name]!r}")
    print(f"compared {len(theirs)} spans, {fields} fields")
    assert not differing, "\n".join(differing[:40])


def test_same_otlp_as_the_collector(ports: Ports, sink: Sink) -> None:
    with running(_gateway(ports, sink), ports) as gw, peers.otelcol(COLLECTOR) as col:
        targets = {"collector": (col.http_url, f"http://127.0.0.1:{col.ports.query_port}"),
                   "gateway": (f"http://127.0.0.1:{ports.http}", f"http://127.0.0.1:{ports.grpc}")}
        for path, body, ctype in REQUESTS:
            for name, (plain, _) in targets.items():
                assert post(plain, path, body, ctype) == 202, (name, path, body[:200])
        # parse_string_tags: the hand-written spans again, other ids
        parsed = [("/api/v2/spans", _zipkin.v2_json(11), "application/json"),
                  ("/api/v1/spans", _zipkin.v1_json(12), "application/json"),
                  ("/api/v2/spans", _zipkin.v2_protobuf(13), PROTO)]
        for path, body, ctype in parsed:
            for name, (_, with_parsing) in targets.items():
                assert post(with_parsing, path, body, ctype) == 202, (name, path)
        for path, body, ctype in BAD:
            codes = {name: post(plain, path, body, ctype) for name, (plain, _) in targets.items()}
            assert codes == {"collector": 400, "gateway": 400}, (path, body, codes)

        theirs, ours = delivered(Path(col.workdir) / "traces.json", sink)
        assert gw.metric("otelcol_gateway_receiver_failed_requests_total") == len(BAD)

    assert_same(theirs, ours)
