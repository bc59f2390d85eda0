"""A CPU profile in pprof's format (github.com/google/pprof, proto/profile.proto), gzip'ed as `go tool pprof`
and flame-graph viewers read it: a hand encoder of the few messages a profile of Python stacks needs, so no
.proto is vendored and no code is generated.

The profile has two sample types, as Go's CPU profiles do: `samples/count` and `cpu/nanoseconds` (the
default). Each Python frame is a `Location` (its line) of a `Function` (qualified name, file, first line);
every location is in one `Mapping` that says the functions are known, so pprof symbolizes nothing.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipelines.wire import field_bytes, varint

# profile.proto field numbers.
_P_SAMPLE_TYPE, _P_SAMPLE, _P_MAPPING, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 3, 4, 5, 6
_P_TIME, _P_DURATION, _P_PERIOD_TYPE, _P_PERIOD, _P_COMMENT, _P_DEFAULT_TYPE = 9, 10, 11, 12, 13, 14


@dataclass(frozen=True)
class Frame:
    """One Python frame: the function (qualified name, file, first line) and the line it was at."""

    function: str
    filename: str
    start_line: int
    line: int


@dataclass(frozen=True)
class StackKey:
    """What a sample is counted by: a thread's name and its stack, the innermost frame first."""

    thread: str
    frames: tuple[Frame, ...]


@dataclass
class Tally:
    count: int = 0
    cpu_ns: int = 0


# Every number in a profile is non-negative, so each is one plain varint.
def _int(field: int, n: int) -> bytes:
    return varint(field << 3) + varint(n) if n else b""


def _bytes(field: int, data: bytes) -> bytes:
    return field_bytes(field << 3 | 2, data)


def _packed(field: int, values: Iterable[int]) -> bytes:
    return _bytes(field, b"".join(varint(v) for v in values))


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        return self.index.setdefault(s, len(self.index))


def encode(samples: Mapping[StackKey, Tally], *, time_ns: int, duration_ns: int, period_ns: int,
           comments: Iterable[str] = (), binary: str = "python") -> bytes:
    """The gzip'ed profile of `samples`, taken from `time_ns` for `duration_ns`, one sample each
    `period_ns`; `comments` are shown by `go tool pprof` with the profile."""
    s = _Strings()
    functions: dict[tuple[str, str, int], int] = {}
    locations: dict[tuple[int, int], int] = {}
    out = bytearray()
    for name, unit in (("samples", "count"), ("cpu", "nanoseconds")):
        out += _bytes(_P_SAMPLE_TYPE, _int(1, s(name)) + _int(2, s(unit)))
    for key, tally in samples.items():
        ids = []
        for f in key.frames:
            fid = functions.setdefault((f.function, f.filename, f.start_line), len(functions) + 1)
            ids.append(locations.setdefault((fid, f.line), len(locations) + 1))
        label = _bytes(3, _int(1, s("thread")) + _int(2, s(key.thread)))
        out += _bytes(_P_SAMPLE, _packed(1, ids) + _packed(2, (tally.count, tally.cpu_ns)) + label)
    # One mapping, with functions, file names and lines known: pprof looks up no binary.
    out += _bytes(_P_MAPPING, _int(1, 1) + _int(5, s(binary)) + _int(7, 1) + _int(8, 1) + _int(9, 1))
    for (fid, line), lid in locations.items():
        out += _bytes(_P_LOCATION, _int(1, lid) + _int(2, 1) + _bytes(4, _int(1, fid) + _int(2, line)))
    for (name, filename, start), fid in functions.items():
        out += _bytes(_P_FUNCTION, _int(1, fid) + _int(2, s(name)) + _int(3, s(name)) + _int(4, s(filename))
                      + _int(5, start))
    comment_ids = [s(c) for c in comments]
    tail = (_int(_P_TIME, time_ns) + _int(_P_DURATION, duration_ns)
            + _bytes(_P_PERIOD_TYPE, _int(1, s("cpu")) + _int(2, s("nanoseconds"))) + _int(_P_PERIOD, period_ns)
            + (_packed(_P_COMMENT, comment_ids) if comment_ids else b"") + _int(_P_DEFAULT_TYPE, s("cpu")))
    for text in s.index:
        out += _bytes(_P_STRINGS, text.encode("utf-8", "replace"))
    return gzip.compress(bytes(out + tail), compresslevel=6, mtime=0)
