"""The server's side of RFC 9113 section 5.1 as a table, receive-window accounting (section 6.9), and
the per-connection budget for frames that cost work but carry no request.

A stream is in `streams` while it is open or half-closed; ids the server no longer holds are IDLE
above the highest id seen, RESET_LOCAL or RESET_REMOTE when one side reset them lately (5.1: frames
after our reset are ignored; after the peer's, all but PRIORITY are a stream error STREAM_CLOSED),
CLOSED otherwise (5.1: after END_STREAM both ways, a connection error STREAM_CLOSED).
`TRANSITIONS[state, event]` is the next state, or an `Error` naming what the RFC asks for; a pair
missing from the table is the state's default error in `DEFAULT_ERRORS`. Both lookups are per frame,
never per byte.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from gateway.transport.h2 import FLOW_CONTROL_ERROR, MAX_WINDOW, PROTOCOL_ERROR, STREAM_CLOSED, ConnectionError_

# States (ints: they are dict keys on the hot path). The server never pushes, so never "reserved".
IDLE, OPEN, HALF_CLOSED_REMOTE, HALF_CLOSED_LOCAL, CLOSED, RESET_LOCAL, RESET_REMOTE = range(7)
STATE_NAMES: Final = ("idle", "open", "half-closed (remote)", "half-closed (local)", "closed", "reset by us",
                      "reset by the peer")

# Events: frames received (RECV_*), and what the server sends (SEND_*).
(RECV_HEADERS, RECV_HEADERS_END, RECV_DATA, RECV_DATA_END, RECV_RST, RECV_WINDOW_UPDATE, RECV_PRIORITY,
 SEND_HEADERS, SEND_END, SEND_RST) = range(10)


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    connection: bool  # a connection error (GOAWAY) rather than a stream error (RST_STREAM)


_STREAM_CLOSED = Error(STREAM_CLOSED, connection=False)
_CONN_STREAM_CLOSED = Error(STREAM_CLOSED, connection=True)
# 8.1: a HEADERS frame after the first that does not end the stream is not trailers: malformed.
_MALFORMED = Error(PROTOCOL_ERROR, connection=False)
_IGNORED = RESET_LOCAL  # frames on a stream we reset are dropped (after counting DATA on the connection)

TRANSITIONS: Final[dict[tuple[int, int], int | Error]] = {
    (IDLE, RECV_HEADERS): OPEN,
    (IDLE, RECV_HEADERS_END): HALF_CLOSED_REMOTE,
    (IDLE, RECV_PRIORITY): IDLE,
    (OPEN, RECV_HEADERS): _MALFORMED,
    (OPEN, RECV_HEADERS_END): HALF_CLOSED_REMOTE,  # trailers
    (OPEN, RECV_DATA): OPEN,
    (OPEN, RECV_DATA_END): HALF_CLOSED_REMOTE,
    (OPEN, RECV_RST): RESET_REMOTE,
    (OPEN, RECV_WINDOW_UPDATE): OPEN,
    (OPEN, RECV_PRIORITY): OPEN,
    (OPEN, SEND_HEADERS): OPEN,
    (OPEN, SEND_END): HALF_CLOSED_LOCAL,
    (OPEN, SEND_RST): RESET_LOCAL,
    (HALF_CLOSED_REMOTE, RECV_HEADERS): _STREAM_CLOSED,
    (HALF_CLOSED_REMOTE, RECV_HEADERS_END): _STREAM_CLOSED,
    (HALF_CLOSED_REMOTE, RECV_DATA): _STREAM_CLOSED,
    (HALF_CLOSED_REMOTE, RECV_DATA_END): _STREAM_CLOSED,
    (HALF_CLOSED_REMOTE, RECV_RST): RESET_REMOTE,
    (HALF_CLOSED_REMOTE, RECV_WINDOW_UPDATE): HALF_CLOSED_REMOTE,
    (HALF_CLOSED_REMOTE, RECV_PRIORITY): HALF_CLOSED_REMOTE,
    (HALF_CLOSED_REMOTE, SEND_HEADERS): HALF_CLOSED_REMOTE,
    (HALF_CLOSED_REMOTE, SEND_END): CLOSED,
    (HALF_CLOSED_REMOTE, SEND_RST): RESET_LOCAL,
    (HALF_CLOSED_LOCAL, RECV_HEADERS): _MALFORMED,
    (HALF_CLOSED_LOCAL, RECV_HEADERS_END): CLOSED,
    (HALF_CLOSED_LOCAL, RECV_DATA): HALF_CLOSED_LOCAL,
    (HALF_CLOSED_LOCAL, RECV_DATA_END): CLOSED,
    (HALF_CLOSED_LOCAL, RECV_RST): RESET_REMOTE,
    (HALF_CLOSED_LOCAL, RECV_WINDOW_UPDATE): HALF_CLOSED_LOCAL,
    (HALF_CLOSED_LOCAL, RECV_PRIORITY): HALF_CLOSED_LOCAL,
    (HALF_CLOSED_LOCAL, SEND_RST): RESET_LOCAL,
    # 5.1 "closed": WINDOW_UPDATE, RST_STREAM and PRIORITY may still arrive for a while; anything
    # else after the peer's END_STREAM or RST_STREAM is a connection error STREAM_CLOSED.
    (CLOSED, RECV_RST): CLOSED,
    (CLOSED, RECV_WINDOW_UPDATE): CLOSED,
    (CLOSED, RECV_PRIORITY): CLOSED,
    (RESET_LOCAL, RECV_HEADERS): _IGNORED,
    (RESET_LOCAL, RECV_HEADERS_END): _IGNORED,
    (RESET_LOCAL, RECV_DATA): _IGNORED,
    (RESET_LOCAL, RECV_DATA_END): _IGNORED,
    (RESET_LOCAL, RECV_RST): _IGNORED,
    (RESET_LOCAL, RECV_WINDOW_UPDATE): _IGNORED,
    (RESET_LOCAL, RECV_PRIORITY): _IGNORED,
    # WINDOW_UPDATE and RST_STREAM may cross the peer's RST_STREAM on the wire: tolerated.
    (RESET_REMOTE, RECV_RST): RESET_REMOTE,
    (RESET_REMOTE, RECV_WINDOW_UPDATE): RESET_REMOTE,
    (RESET_REMOTE, RECV_PRIORITY): RESET_REMOTE,
}

# 5.1 "idle": any frame but HEADERS or PRIORITY is a connection error PROTOCOL_ERROR.
DEFAULT_ERRORS: Final[dict[int, Error]] = {
    IDLE: Error(PROTOCOL_ERROR, connection=True),
    OPEN: Error(PROTOCOL_ERROR, connection=True),
    HALF_CLOSED_REMOTE: _STREAM_CLOSED,
    HALF_CLOSED_LOCAL: Error(PROTOCOL_ERROR, connection=True),
    CLOSED: _CONN_STREAM_CLOSED,
    RESET_LOCAL: Error(PROTOCOL_ERROR, connection=True),
    RESET_REMOTE: _STREAM_CLOSED,
}


def transition(state: int, event: int) -> int | Error:
    nxt = TRANSITIONS.get((state, event))
    return DEFAULT_ERRORS[state] if nxt is None else nxt


class RecentResets:
    """The last `size` streams reset, by us (RESET_LOCAL) or the peer (RESET_REMOTE): `ids` maps each
    to its state; older ones count as CLOSED."""

    __slots__ = ("ids", "order")

    def __init__(self, size: int = 256) -> None:
        self.ids: dict[int, int] = {}
        self.order: deque[int] = deque(maxlen=size)

    def add(self, sid: int, state: int = RESET_LOCAL) -> None:
        if sid in self.ids:
            return
        if len(self.order) == self.order.maxlen:
            self.ids.pop(self.order[0], None)
        self.order.append(sid)
        self.ids[sid] = state


class RecvWindow:
    """What the peer may still send us (h2's `windows.py`): DATA beyond it is refused with
    FLOW_CONTROL_ERROR; window is given back only for bytes the application has taken, in one
    WINDOW_UPDATE once `threshold` bytes are owed."""

    __slots__ = ("available", "owed", "size", "threshold")

    def __init__(self, size: int, threshold: int) -> None:
        self.size = size
        self.available = size
        self.owed = 0
        self.threshold = threshold

    def received(self, n: int) -> None:
        if n > self.available:
            raise ConnectionError_(FLOW_CONTROL_ERROR, f"{n} bytes of DATA past a window of {self.available}")
        self.available -= n

    def consumed(self, n: int) -> int:
        """Bytes the application took; the increment to send now, or 0."""
        self.owed += n
        if self.owed < self.threshold:
            return 0
        increment = min(self.owed, MAX_WINDOW - self.available)
        self.available += increment
        self.owed = 0
        return increment


# Work a connection may cause without making progress (a request handed to a handler): RST_STREAM,
# SETTINGS, PRIORITY, empty or tiny DATA, CONTINUATION, refused streams. Each costs one; each request
# handed to a handler gives back REFILL, up to the starting BUDGET. Past zero: GOAWAY ENHANCE_YOUR_CALM
# (as Go's server answers rapid resets and nghttp2 empty-frame floods).
CALM_BUDGET = 1000
CALM_REFILL = 100
TINY_DATA = 128  # a DATA frame smaller than this without END_STREAM is "tiny"
