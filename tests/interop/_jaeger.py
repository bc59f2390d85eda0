"""Jaeger payloads for the differential and end-to-end tests: hand-written spans that walk every
translation rule (kinds, status from `error`, `otel.status_code` and HTTP codes, tag types, logs,
references as parents and links, 64-bit trace ids, flags, process tags, scopes, trace state, spans with
their own process), as Thrift (encoded by the `thrift` package with the classes the OpenTelemetry
Jaeger exporter ships) and as api_v2 protobuf; and the OpenTelemetry SDK's Jaeger Thrift exporter."""

from __future__ import annotations

import importlib
import struct
from typing import Any

from pipelines.jaeger import proto

T0 = 1_700_000_000_000_000  # microseconds
# A tag: (key, type, value); type is s(tring) d(ouble) b(ool) i(nt64) y (binary) or an unknown number
Tag = tuple[str, Any, Any]


def sdk_exporter() -> Any:
    """The SDK's Jaeger Thrift exporter module (1.21, the last). It reads environment variable names
    the SDK no longer defines; they are given back to it, unset, so it loads unchanged."""
    env = importlib.import_module("opentelemetry.sdk.environment_variables")
    for name in ("AGENT_HOST", "AGENT_PORT", "AGENT_SPLIT_OVERSIZED_BATCHES", "ENDPOINT", "PASSWORD", "TIMEOUT",
                 "USER"):
        if not hasattr(env, f"OTEL_EXPORTER_JAEGER_{name}"):
            setattr(env, f"OTEL_EXPORTER_JAEGER_{name}", f"OTEL_EXPORTER_JAEGER_{name}")
    return importlib.import_module("opentelemetry.exporter.jaeger.thrift")


def ttypes() -> Any:
    sdk_exporter()
    return importlib.import_module("opentelemetry.exporter.jaeger.thrift.gen.jaeger.ttypes")


def _span_tags(i: int) -> list[Tag]:
    """The rule span `i` walks, as its tags (empty past the last rule)."""
    rules: list[list[Tag]] = [
        [("span.kind", "s", "client")], [("span.kind", "s", "server")], [("span.kind", "s", "producer")],
        [("span.kind", "s", "consumer")], [("span.kind", "s", "internal")], [("span.kind", "s", "bogus")],
        [("span.kind", "b", True)],
        [("error", "b", True), ("otel.status_description", "s", "broke"), ("http.status_message", "s", "m")],
        [("error", "b", True), ("http.status_message", "s", "Bad Gateway")],
        [("error", "b", False)], [("error", "s", "true")],
        [("otel.status_code", "s", "ok"), ("otel.status_description", "s", "fine")],
        [("otel.status_code", "s", "ERROR")], [("otel.status_code", "s", "weird")],
        [("otel.status_code", "s", "OK"), ("error", "b", True), ("otel.status_description", "s", "d")],
        [("otel.status_code", "i", 2)],
        [("span.kind", "s", "client"), ("http.status_code", "i", 404)],
        [("span.kind", "s", "server"), ("http.status_code", "i", 404), ("http.status_message", "s", "nf")],
        [("http.status_code", "i", 404)], [("http.status_code", "s", "500"), ("http.status_message", "s", "ise")],
        [("http.status_code", "s", "abc")], [("http.status_code", "i", 200)], [("http.status_code", "i", 399)],
        [("http.status_code", "d", 500.0)], [("http.response.status_code", "i", 503)],
        [("http.status_code", "s", "+502")], [("http.status_code", "s", "99999999999999999999")],
        [("w3c.tracestate", "s", "vendor=a,other=b")], [("w3c.tracestate", "i", 5)],
        [("otel.scope.name", "s", "lib-a"), ("otel.scope.version", "s", "1.2")],
        [("otel.scope.version", "s", "no-name"), ("otel.library.name", "s", "old")],
        [("otel.scope.name", "s", "lib-a"), ("otel.scope.name", "s", "second")],
        [("otel.scope.name", "i", 3)],
        [("s", "s", "text"), ("d", "d", 1.5), ("b", "b", True), ("i", "i", -(1 << 63)), ("y", "y", b"\x00\xff"),
         ("u", 9, "x"), ("empty", "s", ""), ("dup", "s", "first"), ("dup", "i", 2)],
        [("unicode", "s", "żółw ✓")],
    ]
    return rules[i] if i < len(rules) else []


def span_specs(variant: int) -> list[dict[str, Any]]:
    """Format-free spans: ids unique per `variant`."""
    specs: list[dict[str, Any]] = []

    def span(**extra: Any) -> dict[str, Any]:
        i = len(specs)
        s: dict[str, Any] = {"high": (variant << 48) | 0xABAB, "low": (variant << 32) | i,
                             "id": (variant << 32) | i + 1, "parent": 0, "name": f"op-{i}", "start": T0 + i,
                             "duration": 1000 + i, "flags": 1,
                             "tags": _span_tags(i), "logs": [], "refs": []}
        s.update(extra)
        # a reference without a trace id is to the span's own trace
        s["refs"] = [(r[0], s["high"], s["low"], r[1]) if len(r) == 2 else r for r in s["refs"]]
        specs.append(s)
        return s

    for _ in range(36):
        span()
    span(parent=0x77)
    span(refs=[(0, 0x11)])  # CHILD_OF in the trace: the parent, no link
    span(refs=[(1, 0x12)])  # FOLLOWS_FROM only: the parent, and a link
    span(refs=[(1, 0x13), (0, 0x14), (0, 9, 9, 0x15), (1, 9, 9, 0x16), (7, 0x17)])
    span(refs=[(0, 9, 9, 0x18)])  # CHILD_OF in another trace: no parent, a link
    span(parent=0x19, refs=[(0, 0x19), (0, 0x20)])
    span(refs=[(1, 0x21), (1, 0x22), (0, 9, 9, 0x23)])  # the first FOLLOWS_FROM
    span(high=0)  # a 64-bit trace id
    span(flags=0)
    span(flags=2)
    span(flags=3)
    span(start=0, duration=0)
    span(duration=-5)
    span(start=-1)
    span(logs=[(T0 + 5, [("event", "s", "cache.miss"), ("key", "s", "u1"), ("n", "i", 2)]),
               (T0 + 6, [("k", "b", False)]), (T0 + 7, []), (T0 + 8, [("event", "i", 1)]),
               (T0 + 9, [("http.response.status_code", "i", 200)])])
    return specs


PROCESS_TAGS: list[Tag] = [("hostname", "s", "node-1"), ("jaeger.version", "s", "Python-4.8.0"),
                           ("ip", "s", "10.0.0.1"), ("pid", "i", 42), ("up", "b", True), ("load", "d", 0.5),
                           ("http.response.status_code", "i", 1)]


def thrift_batch(variant: int, service: str = "checkout", process_tags: list[Tag] | None = None) -> Any:
    t = ttypes()

    def tag(key: str, kind: Any, value: Any) -> Any:
        field = {"s": "vStr", "d": "vDouble", "b": "vBool", "i": "vLong", "y": "vBinary"}.get(kind, "vStr")
        vtype = {"s": 0, "d": 1, "b": 2, "i": 3, "y": 4}.get(kind, kind)
        return t.Tag(key=key, vType=vtype, **{field: value})

    def signed(n: int) -> int:
        return struct.unpack(">q", (n & ((1 << 64) - 1)).to_bytes(8, "big"))[0]  # type: ignore[no-any-return]

    spans = [t.Span(traceIdLow=signed(s["low"]), traceIdHigh=signed(s["high"]), spanId=signed(s["id"]),
                    parentSpanId=s["parent"], operationName=s["name"], flags=s["flags"], startTime=s["start"],
                    duration=s["duration"], tags=[tag(*x) for x in s["tags"]] or None,
                    logs=[t.Log(timestamp=ts, fields=[tag(*x) for x in fields]) for ts, fields in s["logs"]] or None,
                    references=[t.SpanRef(refType=r[0], traceIdHigh=signed(r[1]), traceIdLow=signed(r[2]),
                                          spanId=r[3]) for r in s["refs"]] or None)
             for s in span_specs(variant)]
    tags = PROCESS_TAGS if process_tags is None else process_tags
    return t.Batch(process=t.Process(serviceName=service, tags=[tag(*x) for x in tags]), spans=spans)


def _serialize(obj: Any, protocol: str) -> bytes:
    from thrift.protocol import TBinaryProtocol, TCompactProtocol
    from thrift.TSerialization import serialize
    factory = TBinaryProtocol.TBinaryProtocolFactory() if protocol == "binary" \
        else TCompactProtocol.TCompactProtocolFactory()
    return bytes(serialize(obj, factory))


def thrift_http_body(batch: Any) -> bytes:
    return _serialize(batch, "binary")


def agent_packet(batch: Any, protocol: str) -> bytes:
    """The agent's `emitBatch` message, as the exporter's UDP client writes it."""
    from thrift.protocol import TBinaryProtocol, TCompactProtocol
    from thrift.transport import TTransport
    agent = importlib.import_module("opentelemetry.exporter.jaeger.thrift.gen.agent.Agent")
    buffer = TTransport.TMemoryBuffer()
    prot = TBinaryProtocol.TBinaryProtocol(buffer) if protocol == "binary" \
        else TCompactProtocol.TCompactProtocol(buffer)
    agent.Client(prot).emitBatch(batch)
    return bytes(buffer.getvalue())


def _kv(msg: Any, key: str, kind: Any, value: Any) -> None:
    msg.key = key.encode()
    msg.v_type = {"s": 0, "b": 1, "i": 2, "d": 3, "y": 4}.get(kind, kind)
    if kind in ("s",) or not isinstance(kind, str):
        msg.v_str = value.encode()
    elif kind == "b":
        msg.v_bool = value
    elif kind == "i":
        msg.v_int64 = value
    elif kind == "d":
        msg.v_float64 = value
    else:
        msg.v_binary = value


def _time(msg: Any, us: int) -> None:
    msg.seconds, msg.nanos = us // 1_000_000, (us % 1_000_000) * 1000


def proto_request(variant: int, service: str = "checkout") -> bytes:
    """The same spans as PostSpans: a batch process, and some spans with a process of their own."""
    req = proto.PostSpansRequest()
    batch = req.batch
    batch.process.service_name = service.encode()
    for tag in PROCESS_TAGS:
        _kv(batch.process.tags.add(), *tag)
    for i, s in enumerate(span_specs(variant)):
        span = batch.spans.add()
        span.trace_id = s["high"].to_bytes(8, "big") + s["low"].to_bytes(8, "big") if s["high"] \
            else s["low"].to_bytes(8, "big")
        span.span_id = s["id"].to_bytes(8, "big")
        span.operation_name = s["name"].encode()
        span.flags = s["flags"]
        _time(span.start_time, s["start"])
        if s["duration"] >= 0:
            _time(span.duration, s["duration"])
        else:
            span.duration.nanos = s["duration"] * 1000
        for tag in s["tags"]:
            _kv(span.tags.add(), *tag)
        for ts, fields in s["logs"]:
            log = span.logs.add()
            _time(log.timestamp, ts)
            for tag in fields:
                _kv(log.fields.add(), *tag)
        refs = [*s["refs"], *([(0, s["high"], s["low"], s["parent"])] if s["parent"] else [])]
        for ref_type, high, low, ref_id in refs:
            ref = span.references.add(ref_type=ref_type, span_id=ref_id.to_bytes(8, "big"))
            ref.trace_id = high.to_bytes(8, "big") + low.to_bytes(8, "big")
        if i % 7 == 3:  # its own process: another resource
            span.process.service_name = b"worker"
            _kv(span.process.tags.add(), "hostname", "s", f"node-{i % 2}")
        elif i % 7 == 5:
            span.process.service_name = b"OTLPResourceNoServiceName"
    return bytes(req.SerializeToString())
