"""What both OTLP transports do with a request once it is read: authenticate, decode, validate,
hand to the pipelines, count. The outcome is a `Result`, which each transport maps to its wire codes
through the one table below.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.auth import ANONYMOUS, Authenticator, AuthError, Identity
from gateway.component import Consumer
from gateway.own_telemetry.traces import end, receiver_span
from gateway.telemetry import Telemetry
from gateway.transport.grpc_status import Status
from pipelines import otlp
from pipelines.batch import Batch, RequestContext, Signal
from pipelines.errors import PermanentError, RetryableError

log = logging.getLogger("gateway.receiver")

Outcome = Literal[
    "ok", "invalid", "unauthenticated", "unavailable", "too_large", "unsupported", "not_found", "method_not_allowed",
    "timeout",
]

# outcome -> (gRPC status, HTTP status)
WIRE_CODES: dict[Outcome, tuple[Status, int]] = {
    "ok": (Status.OK, 200),
    "invalid": (Status.INVALID_ARGUMENT, 400),
    "unauthenticated": (Status.UNAUTHENTICATED, 401),
    "unavailable": (Status.UNAVAILABLE, 503),
    "too_large": (Status.RESOURCE_EXHAUSTED, 413),
    "unsupported": (Status.UNIMPLEMENTED, 415),
    "not_found": (Status.UNIMPLEMENTED, 404),
    "method_not_allowed": (Status.UNIMPLEMENTED, 405),
    "timeout": (Status.DEADLINE_EXCEEDED, 408),  # the HTTP body not received within read_timeout
}


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    message: str = ""
    retry_after: float | None = None
    response: bytes = b""
    # The items the request carried, when it could be read (the gateway's own span reports them).
    items: int = 0


class Ingest:
    """One receiver's entry to one signal's pipelines, over one transport."""

    def __init__(
        self,
        receiver: str,
        transport: str,
        signal: Signal,
        consumer: Consumer,
        telemetry: Telemetry,
        authenticator: Authenticator | None,
        include_metadata: bool,
    ) -> None:
        self.receiver = receiver
        self.transport = transport
        self.signal: Signal = signal
        self._consumer = consumer
        self._telemetry = telemetry
        self._auth = authenticator
        # Request headers travel with the data only when asked for: the transports skip collecting them otherwise.
        self.include_metadata = include_metadata
        self._accepted = telemetry.receiver_accepted(signal, receiver, transport)
        self._refused = telemetry.dropped_spans(signal, receiver, "refused_at_edge",
                                               telemetry.receiver_refused(signal, receiver, transport))
        self._ok_response = otlp.SHAPES[signal].response().SerializeToString()
        self._tracer = telemetry.tracer
        # With own traces off, `push` is the untraced path itself: no span object, no check per request.
        self.traced = self._tracer is not None
        self.push = self._push_traced if self.traced else self._push

    def fail(self, reason: Outcome, message: str) -> Result:
        self._telemetry.receiver_failed_request(self.receiver, self.transport, reason).inc()
        return Result(reason, message)

    async def authenticate(self, headers: Mapping[str, str]) -> tuple[Identity, Result | None]:
        if self._auth is None:
            return ANONYMOUS, None
        try:
            return await self._auth.identify(headers), None
        except AuthError as exc:
            return ANONYMOUS, self.fail("unauthenticated", str(exc))
        except RetryableError as exc:  # the authenticator cannot check now (too many checks waiting)
            self.fail("unavailable", str(exc))
            return ANONYMOUS, Result("unavailable", f"authentication unavailable, retry later: {exc}",
                                     retry_after=exc.delay if exc.delay is not None else 1.0)
        except Exception as exc:  # a bug or odd input in an authenticator: refused, never a crash
            log.error("%s: the authenticator failed (%s); request refused", self.receiver, type(exc).__name__)
            return ANONYMOUS, self.fail("unauthenticated", "authentication failed")

    def context(self, identity: Identity, metadata: Mapping[str, tuple[str, ...]] | None) -> RequestContext:
        if identity is ANONYMOUS and not (self.include_metadata and metadata):
            return RequestContext()
        return RequestContext(identity.tenant, dict(metadata) if self.include_metadata and metadata else {},
                              identity.attributes)

    async def _push_traced(self, data: bytes | None, msg: Any, context: RequestContext,
                           traceparent: str | None = None) -> Result:
        """`_push` inside a span of the gateway's own (sampled by its sampler; the client's traceparent a link)."""
        assert self._tracer is not None
        if not self._tracer.keep():
            return await self._push(data, msg, context)
        span = receiver_span(self._tracer.tracer, self.receiver, self.transport, self.signal, traceparent)
        result = await self._push(data, msg, context)
        end(span, result.outcome, result.items)
        return result

    async def _push(self, data: bytes | None, msg: Any, context: RequestContext,
                    traceparent: str | None = None) -> Result:
        """Validate a decoded request and hand it to the pipelines."""
        ids = None
        try:
            if msg is None:
                assert data is not None
                # One upb parse of a validation view, no Python per item (pipelines/otlp.py `check`).
                items, ids = otlp.check(self.signal, data)
            else:
                items = otlp.validate(self.signal, msg)
        except PermanentError as exc:
            return self.fail("invalid", str(exc))
        if items == 0:
            return Result("ok", response=self._ok_response)
        batch = Batch(self.signal, data, items, context, msg, ids=ids)
        try:
            await self._consumer.consume(batch)
        except RetryableError as exc:
            self._refused.inc(items)
            return Result("unavailable", f"data refused, retry later: {exc}", retry_after=exc.delay, items=items)
        except PermanentError as exc:
            self._refused.inc(items)
            return Result("invalid", f"data refused: {exc}", items=items)
        except Exception:
            self._refused.inc(items)
            log.exception("pipeline failed on a request to %s", self.receiver)
            return Result("unavailable", "internal error in the gateway; retry later", items=items)
        self._accepted.inc(items)
        return Result("ok", response=self._ok_response, items=items)
