"""The receivers' one outcome table: every outcome has a gRPC status and an HTTP status."""

from __future__ import annotations

from typing import get_args

from google.rpc import error_details_pb2, status_pb2

from gateway.receivers.ingest import WIRE_CODES, Outcome
from gateway.receivers.otlp_grpc import _status_details
from gateway.transport.grpc_status import Status


def test_every_outcome_maps_to_wire_codes() -> None:
    assert set(WIRE_CODES) == set(get_args(Outcome))
    assert WIRE_CODES["ok"] == (Status.OK, 200)
    assert WIRE_CODES["unavailable"] == (Status.UNAVAILABLE, 503)
    assert all(isinstance(code, Status) and 200 <= http < 600 for code, http in WIRE_CODES.values())


def test_grpc_refusal_details_carry_the_status_and_retry_info() -> None:
    status = status_pb2.Status.FromString(_status_details(Status.UNAVAILABLE, "queue full", 1.5))
    assert (status.code, status.message) == (14, "queue full")
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() == 1_500_000_000
