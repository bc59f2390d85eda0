"""Property tests across processors: batching conserves every span and never mixes tenants; insert
never overwrites; hashing is stable and type-aware."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import otlp
from pipelines.processors import anyvalue
from pipelines.processors.actions import ActionConfig
from pipelines.processors.attributes import AttributesProcessor, Config
from pipelines.processors.batch import Batcher
from pipelines.processors.batch import Config as BatchConfig
from tests.processors.build import batch_of, span_attrs, span_request

scalars = st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                    st.floats(allow_nan=False))


def _names(data: bytes) -> list[str]:
    msg = otlp.parse("traces", data)
    return [span.name for rs in msg.resource_spans for ss in rs.scope_spans for span in ss.spans]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 64), st.integers(0, 3),
       st.sampled_from([0, 600, 4000]))
def test_batcher_conserves_every_span(sizes: list[int], batch_size: int, extra: int, max_bytes: int) -> None:
    cfg = BatchConfig(send_batch_size=batch_size, send_batch_max_size=batch_size + extra,
                      send_batch_max_bytes=max_bytes)
    b = Batcher("traces", cfg)
    sent: list[tuple[bytes, int]] = []
    expected: list[str] = []
    for r, n in enumerate(sizes):
        req = span_request([{"name": f"r{r}-{i}"} for i in range(n)])
        expected += [f"r{r}-{i}" for i in range(n)]
        sent += b.add(req.SerializeToString(), n)
        if r % 3 == 0 and b.items:
            sent.append(b.take())
    sent += b.drain()
    got = [name for data, _ in sent for name in _names(data)]
    assert sorted(got) == sorted(expected)
    assert all(n == len(_names(data)) for data, n in sent)
    assert all(n <= batch_size + extra for _, n in sent)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), scalars, max_size=4), scalars,
       st.sampled_from(["a", "b", "e"]))
def test_insert_never_overwrites(attrs: dict[str, Any], value: Any, key: str) -> None:
    proc = AttributesProcessor(Config(actions=(ActionConfig(key=key, value=value, action="insert"),)), "traces")
    out = proc.process(batch_of(span_request([{"attrs": attrs}])))
    assert out is not None
    got = span_attrs(out)[0]
    for k, v in attrs.items():
        assert got[k] == v or (v != v and got[k] != got[k])
    if key not in attrs:
        assert got[key] == value
    else:
        assert out.data() == batch_of(span_request([{"attrs": attrs}])).data()


@settings(max_examples=150, deadline=None)
@given(scalars)
def test_hash_is_stable_and_hex_sha256(value: Any) -> None:
    proc = AttributesProcessor(Config(actions=(ActionConfig(key="v", action="hash"),)), "traces")
    first = span_attrs(proc.process(batch_of(span_request([{"attrs": {"v": value}}]))))[0]["v"]  # type: ignore[arg-type]
    again = span_attrs(proc.process(batch_of(span_request([{"attrs": {"v": value}}]))))[0]["v"]  # type: ignore[arg-type]
    assert first == again
    if value == "":
        assert first == ""  # the Collector hashes no bytes to the empty string
        return
    assert len(first) == 64 and int(first, 16) >= 0
    v = anyvalue.from_raw(value)
    anyvalue.hash_value(v)
    assert v.string_value == first
    if isinstance(value, str):
        assert first == hashlib.sha256(value.encode()).hexdigest()
