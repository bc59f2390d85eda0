"""Classify a backend's answer once, where it is seen: permanent, or retryable with the delay the
server asked for (gRPC RetryInfo, HTTP Retry-After as seconds or a date). Per the OTLP spec.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from gateway.transport.grpc_status import Status
from pipelines.errors import ConsumerError, PermanentError, RetryableError

RETRYABLE_GRPC_CODES = frozenset({
    Status.UNAVAILABLE,
    Status.CANCELLED,
    Status.DEADLINE_EXCEEDED,
    Status.ABORTED,
    Status.OUT_OF_RANGE,
    Status.DATA_LOSS,
})
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})


def retry_info_delay(trailing: Iterable[tuple[str, Any]] | None) -> float | None:
    for key, value in trailing or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                        info = error_details_pb2.RetryInfo()
                        detail.Unpack(info)
                        return max(0.0, float(info.retry_delay.ToNanoseconds()) / 1e9)
            except DecodeError:
                return None  # details a backend got wrong: no delay asked for
    return None


def from_grpc(code: Status, details: str, trailing: Iterable[tuple[str, Any]] | None, *, answered: bool = True,
              unreachable: bool = False) -> ConsumerError:
    """`answered` / `unreachable`: as `GrpcCallError`'s (the server sent the status, or no connection)."""
    delay = retry_info_delay(trailing)
    message = f"gRPC {code.name}: {details}"
    if code in RETRYABLE_GRPC_CODES or (code == Status.RESOURCE_EXHAUSTED and delay is not None):
        return RetryableError(message, delay, answered=answered, unreachable=unreachable)
    return PermanentError(message)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def from_http(status: int, body_text: str, retry_after: str | None) -> ConsumerError:
    message = f"HTTP {status}: {body_text[:200]}"
    if status in RETRYABLE_HTTP_STATUSES:
        return RetryableError(message, parse_retry_after(retry_after))
    return PermanentError(message)
