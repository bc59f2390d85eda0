"""The one gRPC status vocabulary agrees with the spec's numbers, as google.rpc and grpcio spell them."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2

from gateway.transport.grpc_status import Status


def test_every_code_has_the_spec_number() -> None:
    assert {s.name: s.value for s in Status} == {c.name: c.value[0] for c in grpc.StatusCode}
    assert all(code_pb2.Code.Value(s.name) == s for s in Status)


def test_a_code_past_the_spec_reads_as_unknown() -> None:
    assert Status.of(14) is Status.UNAVAILABLE
    assert Status.of(17) is Status.UNKNOWN
