"""What an exporter's retries are doing now (`RetryState`), kept by its retry layer
(`gateway.exporters.retry`) and shown by the admin endpoint's `/api/v1/stats`, `gateway top` and the page.

Touched only on the failure path (a success after failures resets it, one comparison otherwise). The last
error is kept short and without secrets (`short_error`): no URL credentials, no header or token values, no
query strings, one line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

# The longest last error kept, in characters.
ERROR_CHARS = 160
# A name whose value is a secret: any x- header (x-honeycomb-team, x-api-key...), or one that says so.
_SENSITIVE = (r"(?:x-[\w.-]+|[\w.-]*(?:token|secret|passw|api[-_]?key|apikey|cookie|session|credential|auth"
              r"|signature)[\w.-]*)")
_REDACT = (
    (re.compile(r"(\w+://)[^\s/]*@"), r"\1"),  # user:password@ in a URL (up to its last @: a raw @ in a password)
    (re.compile(r"(https?://[^\s?#;]*)[?#;][^\s]*"), r"\1"),  # a query string or ;params may carry a key
    # A sensitive name and its whole value: quoted, to the closing quote; else to the next separator.
    (re.compile(rf"(?i)({_SENSITIVE}['\"]?\s*[:=]\s*)(['\"])(?:\\.|(?!\2).)*\2"), r"\1\2<redacted>\2"),
    (re.compile(rf"(?i)({_SENSITIVE}['\"]?\s*[:=]\s*)[^'\",;&}}\s][^'\",;&}}]*"), r"\1<redacted>"),
    (re.compile(r"(?i)\b(bearer|basic)\s+\S+"), r"\1 <redacted>"),
)


def short_error(error: BaseException | str) -> str:
    """One line of at most `ERROR_CHARS`, with credentials, header values and query strings taken out."""
    text = " ".join(str(error).split()) or type(error).__name__
    for pattern, repl in _REDACT:
        text = pattern.sub(repl, text)
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


class RetryState:
    """One exporter's retries: batches in their backoff wait now, when the first of them is due, the
    consecutive failed attempts (0 after a success) and the last error."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.failures = 0
        self.last_error = ""
        self.last_error_at = 0.0  # wall time, so that workers' errors can be ordered
        self._due: dict[int, float] = {}  # a waiting send's token -> when its next attempt is due
        self._tokens = 0

    def failed(self, error: BaseException | str) -> None:
        self.failures += 1
        self.last_error = short_error(error)
        self.last_error_at = time.time()

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = ""

    def waiting(self, delay: float) -> int:
        """A send starts its backoff wait of `delay` seconds; the token to give `woke`."""
        self._tokens += 1
        self._due[self._tokens] = self._clock() + delay
        return self._tokens

    def woke(self, token: int) -> None:
        self._due.pop(token, None)

    def view(self) -> dict[str, Any]:
        """For `/api/v1/stats`: `waiting` batches, `next_in` seconds (None when none waits), `failures`,
        `last_error` and its wall time."""
        next_in = max(0.0, min(self._due.values()) - self._clock()) if self._due else None
        return {"waiting": len(self._due), "next_in": next_in, "failures": self.failures,
                "last_error": self.last_error, "last_error_at": self.last_error_at}


def merge(views: list[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' `view()`s of one exporter: waiting summed, the soonest due, the most failures in a
    row, the newest error."""
    due = [v["next_in"] for v in views if v.get("next_in") is not None]
    newest = max(views, key=lambda v: v.get("last_error_at", 0.0) if v.get("last_error") else -1.0)
    return {"waiting": sum(v.get("waiting", 0) for v in views), "next_in": min(due) if due else None,
            "failures": max(v.get("failures", 0) for v in views), "last_error": newest.get("last_error", ""),
            "last_error_at": newest.get("last_error_at", 0.0)}
