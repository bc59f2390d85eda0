"""The two ways a consumer refuses data. Classified once where the failure is seen."""

from __future__ import annotations


class ConsumerError(Exception):
    """Base of the typed refusals a consumer raises."""


class PermanentError(ConsumerError):
    """The data is bad and will never be accepted: do not retry."""


class RetryableError(ConsumerError):
    """The data may be accepted later; `delay` is the wait the refusing side asked for, if any.
    Where the sender can tell (OTLP/gRPC): `answered`, the backend itself sent this refusal;
    `unreachable`, there is no connection to the backend (cannot connect, or the connection was lost)."""

    def __init__(self, message: str, delay: float | None = None, *, answered: bool = False,
                 unreachable: bool = False) -> None:
        super().__init__(message)
        self.delay = delay
        self.answered = answered
        self.unreachable = unreachable
