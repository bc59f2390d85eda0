"""The two ways a consumer refuses data. Classified once where the failure is seen."""

from __future__ import annotations


class ConsumerError(Exception):
    """Base of the typed refusals a consumer raises."""


class PermanentError(ConsumerError):
    """The data is bad and will never be accepted: do not retry."""


class RetryableError(ConsumerError):
    """The data may be accepted later; `delay` is the wait the refusing side asked for, if any."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay
