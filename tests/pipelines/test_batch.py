"""The Batcher's decisions against the Collector's batch processor: send_batch_size is a trigger,
send_batch_max_size cuts, the timer sends one chunk, timeout 0 sends at once; and the byte bound
keeps every batch under a downstream's 4 MiB gRPC limit where the Collector would exceed it."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pipelines.batch import Batch, RequestContext
from pipelines.processors.batch import Batcher, Chunk, Config
from tests.e2e.support import spans_request

MIB = 1024 * 1024


def _req(n: int, name: str = "s", pad: int = 0) -> tuple[bytes, int]:
    return spans_request(n, name=name, attr_bytes=pad).SerializeToString(), n


def _names(chunks: list[Chunk]) -> list[str]:
    out = []
    for data, n in chunks:
        msg = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
        names = [s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(names) == n, "a chunk's count is the number of spans it holds"
        out.extend(names)
    return out


def _sizes(chunks: list[Chunk]) -> list[int]:
    return [n for _, n in chunks]


def test_below_send_batch_size_waits_for_the_timer() -> None:
    b = Batcher("traces", Config(send_batch_size=100))
    assert b.add(*_req(60)) == []
    assert b.items == 60
    chunk = b.take()
    assert chunk[1] == 60
    assert b.items == 0


def test_send_batch_size_is_a_trigger_not_a_cut() -> None:
    b = Batcher("traces", Config(send_batch_size=100))
    assert b.add(*_req(60, "a")) == []
    chunks = b.add(*_req(60, "b"))
    assert _sizes(chunks) == [120]
    assert _names(chunks) == [f"a-{i}" for i in range(60)] + [f"b-{i}" for i in range(60)]
    assert _sizes(b.add(*_req(1000))) == [1000]


def test_send_batch_max_size_cuts_while_the_trigger_holds() -> None:
    b = Batcher("traces", Config(send_batch_size=100, send_batch_max_size=150))
    chunks = b.add(*_req(400))
    assert _sizes(chunks) == [150, 150, 100]
    assert _names(chunks) == [f"s-{i}" for i in range(400)]
    assert b.items == 0
    assert _sizes(b.add(*_req(260))) == [150, 110]


def test_remainder_below_the_trigger_waits() -> None:
    b = Batcher("traces", Config(send_batch_size=100, send_batch_max_size=100))
    assert _sizes(b.add(*_req(250))) == [100, 100]
    assert b.items == 50
    assert b.take()[1] == 50


def test_the_timer_sends_one_chunk_of_at_most_max_size() -> None:
    b = Batcher("traces", Config(send_batch_size=1000, send_batch_max_size=100))
    assert b.add(*_req(250)) == []
    assert b.take()[1] == 100
    assert b.items == 150
    assert _sizes(b.drain()) == [100, 50]


def test_timeout_zero_sends_at_once_in_max_size_chunks() -> None:
    b = Batcher("traces", Config(timeout=0))
    assert _sizes(b.add(*_req(5))) == [5]
    b = Batcher("traces", Config(timeout=0, send_batch_size=8192, send_batch_max_size=2))
    chunks = b.add(*_req(5))
    assert _sizes(chunks) == [2, 2, 1]
    assert _names(chunks) == [f"s-{i}" for i in range(5)]


def test_several_resources_survive_a_cut() -> None:
    req = spans_request(3, name="x", service="one")
    other = spans_request(3, name="y", service="two")
    req.resource_spans.extend(other.resource_spans)
    b = Batcher("traces", Config(send_batch_size=4, send_batch_max_size=4))
    chunks = b.add(req.SerializeToString(), 6)
    assert _sizes(chunks) == [4]
    first = trace_service_pb2.ExportTraceServiceRequest.FromString(chunks[0][0])
    services = [rs.resource.attributes[0].value.string_value for rs in first.resource_spans]
    assert services == ["one", "two"]
    assert [len(rs.scope_spans[0].spans) for rs in first.resource_spans] == [3, 1]
    assert _names([*chunks, *b.drain()]) == ["x-0", "x-1", "x-2", "y-0", "y-1", "y-2"]


def test_byte_bound_keeps_every_batch_under_4_mib_where_the_collector_would_not() -> None:
    # The Collector's defaults: 8192 spans of ~1 KiB make an 8 MiB batch, over a 4 MiB gRPC limit.
    b = Batcher("traces", Config())
    chunks: list[Chunk] = []
    for r in range(16):
        chunks += b.add(*_req(512, f"r{r}", pad=1000))
    chunks += b.drain()
    assert sum(_sizes(chunks)) == 8192
    assert max(len(d) for d, _ in chunks) <= Config().send_batch_max_bytes < 4 * MIB
    assert _names(chunks) == [f"r{r}-{i}" for r in range(16) for i in range(512)]


def test_a_single_request_over_the_byte_bound_is_split() -> None:
    b = Batcher("traces", Config(send_batch_max_bytes=100_000, send_batch_size=10))
    chunks = b.add(*_req(50, pad=10_000))  # ~500 KB in one request
    chunks += b.drain()
    assert all(len(d) <= 100_000 for d, _ in chunks)
    assert len(chunks) >= 5
    assert _names(chunks) == [f"s-{i}" for i in range(50)]


def test_byte_trigger_sends_before_the_item_trigger() -> None:
    b = Batcher("traces", Config(send_batch_size=10_000, send_batch_max_bytes=200_000))
    sent = []
    for r in range(10):
        sent += b.add(*_req(10, f"r{r}", pad=5_000))  # ~50 KB each
    assert sent, "the byte bound triggers a send long before 10000 spans"
    assert all(len(d) <= 200_000 for d, _ in sent)
    assert _names([*sent, *b.drain()]) == [f"r{r}-{i}" for r in range(10) for i in range(10)]


def test_max_size_and_byte_bound_together() -> None:
    b = Batcher("traces", Config(send_batch_size=20, send_batch_max_size=30, send_batch_max_bytes=150_000))
    chunks = b.add(*_req(100, pad=2_000))  # ~200 KB
    chunks += b.drain()
    assert all(n <= 30 for _, n in chunks)
    assert all(len(d) <= 150_000 for d, _ in chunks)
    assert _names(chunks) == [f"s-{i}" for i in range(100)]


def test_config_rules() -> None:
    assert Config(send_batch_size=100, send_batch_max_size=10).validate() == [
        "send_batch_max_size must be greater or equal to send_batch_size"]
    assert Config(send_batch_max_size=0).validate() == []
    assert Config(timeout=-1).validate() == ["timeout must not be negative"]


def test_concat_batch_joins_only_when_asked() -> None:
    parts = [_req(3, "a")[0], _req(2, "b")[0], _req(4, "c")[0]]
    batch = Batch.concat("traces", parts, 9, RequestContext(tenant="t1"))
    assert batch.chunks() is parts  # a sender writes the pieces as they are
    assert batch.nbytes() == sum(map(len, parts))
    other = batch.with_context(RequestContext(tenant="t2"))
    assert other.chunks() == parts and other.context.tenant == "t2" and other.items == 9
    assert [n[0] for n in _names([(batch.data(), 9)])] == list("aaabbcccc")  # one valid request
    assert batch.chunks() == [batch.data()]
    # Changing the message drops the pieces with the old bytes.
    msg = other.mutable_message()
    msg.resource_spans[0].scope_spans[0].spans[0].name = "changed"
    other.changed()
    assert _names([(other.data(), 9)])[0] == "changed" and other.chunks() == [other.data()]
    assert Batch.concat("traces", parts[:1], 3).chunks() == parts[:1]
