"""Consistent-probability-sampling arithmetic (OTEP 235, W3C Trace Context level 2) and the W3C
`tracestate` with its OpenTelemetry `ot=` entry, as the Collector's `pkg/sampling` reads and writes them.

Randomness is a 56-bit integer (`rv`, or the low 56 bits of the trace id); a threshold is an integer
in [0, 2**56] (`th`, hex with trailing zeros dropped); an item is sampled iff randomness >= threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

MAX_ADJUSTED_COUNT = 1 << 56
NUM_HEX_DIGITS = 14
ALWAYS_SAMPLE = 0
NEVER_SAMPLE = MAX_ADJUSTED_COUNT
ALL_PROBABILITIES_RANDOMNESS = MAX_ADJUSTED_COUNT - 1
MIN_SAMPLING_PROBABILITY = 1.0 / MAX_ADJUSTED_COUNT

_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_OT_VALUE = re.compile(r"[a-z][a-z0-9]*:[a-zA-Z0-9._\-]*(?:;[a-z][a-z0-9]*:[a-zA-Z0-9._\-]*)*\Z")
_KEY = re.compile(r"(?:[a-z][a-z0-9_\-*/]*|[a-z0-9][a-z0-9_\-*/]*@[a-z][a-z0-9_\-*/]*)\Z")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]*[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")


class TraceStateError(ValueError):
    pass


def tvalue(threshold: int) -> str:
    if threshold == ALWAYS_SAMPLE:
        return "0"
    return format(threshold, "014x").rstrip("0")


def parse_tvalue(s: str) -> int:
    if not s:
        raise TraceStateError("t-value is empty")
    if len(s) > NUM_HEX_DIGITS:
        raise TraceStateError("t-value exceeds 14 hex digits")
    if not _HEX.match(s):
        raise TraceStateError(f"invalid t-value {s!r}")
    return int(s, 16) << (4 * (NUM_HEX_DIGITS - len(s)))


def rvalue(randomness: int) -> str:
    return format(randomness, "014x")


def parse_rvalue(s: str) -> int:
    if len(s) != NUM_HEX_DIGITS or not _HEX.match(s):
        raise TraceStateError("r-value must have 14 hex digits")
    return int(s, 16)


def trace_id_randomness(trace_id: bytes) -> int:
    return int.from_bytes(trace_id[9:16], "big")


def probability(threshold: int) -> float:
    return (MAX_ADJUSTED_COUNT - threshold) / MAX_ADJUSTED_COUNT


def _go_round(x: float) -> int:
    """Go's math.Round for x >= 0: halves away from zero (Python's round() goes to even)."""
    r = math.floor(x)
    return int(r + 1 if x - r >= 0.5 else r)


class ProbabilityRangeError(ValueError):
    pass


def probability_to_threshold(prob: float, precision: int) -> int:
    """The threshold for `prob`, rounded to `precision` significant hex digits (0: full precision).

    Raises ProbabilityRangeError outside [2**-56, 1]. Where the precision cannot be met the Collector
    returns the always-sample threshold with an error its callers ignore; this returns it too.
    """
    if not MIN_SAMPLING_PROBABILITY <= prob <= 1:
        raise ProbabilityRangeError("sampling probability out of the range [1/MaxAdjustedCount, 1]")
    scaled = _go_round(prob * MAX_ADJUSTED_COUNT)
    if precision == 0:
        return MAX_ADJUSTED_COUNT - scaled
    if prob == 1:
        return ALWAYS_SAMPLE
    reject = 1 - prob
    while reject * 16 < 1:
        reject *= 16
        precision += 1
    if precision > NUM_HEX_DIGITS:
        return ALWAYS_SAMPLE
    rscaled = MAX_ADJUSTED_COUNT - scaled
    shift = 4 * (NUM_HEX_DIGITS - precision)
    if shift == 0:
        return rscaled
    rscaled += 1 << (shift - 1)
    return (rscaled >> shift) << shift


@dataclass
class TraceState:
    """A parsed W3C tracestate: the `ot` entry's rv/th/other fields, and the other vendors' entries."""

    rv: str = ""
    th: str = ""
    threshold: int = 0
    randomness: int = 0
    ot_extra: list[tuple[str, str]] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: str) -> TraceState:
        ts = cls()
        if not raw:
            return ts
        if len(raw) > 1024:
            raise TraceStateError("tracestate exceeds 1024 characters")
        members = 0
        for part in raw.split(","):
            member = part.strip(" \t")
            if not member:
                continue
            key, eq, value = member.partition("=")
            if not eq or not _KEY.match(key) or len(value) > 256 or not _VALUE.match(value):
                raise TraceStateError("invalid tracestate syntax")
            members += 1
            if members > 32 or len(key) > 256:
                raise TraceStateError("tracestate too large")
            tenant, at, system = key.partition("@")
            if at and (len(tenant) > 241 or len(system) > 14):
                raise TraceStateError("tracestate key too long")
            if key == "ot":
                ts._parse_ot(value)
            else:
                ts.extra.append((key, value))
        return ts

    def _parse_ot(self, value: str) -> None:
        if len(value) > 256:
            raise TraceStateError("ot tracestate exceeds 256 characters")
        if not _OT_VALUE.match(value):
            raise TraceStateError("invalid ot tracestate syntax")
        for item in value.split(";"):
            k, _, v = item.partition(":")
            if k == "rv":
                self.randomness = parse_rvalue(v)
                self.rv = v
            elif k == "th":
                self.threshold = parse_tvalue(v)
                self.th = v
            else:
                self.ot_extra.append((k, v))

    def set_randomness(self, randomness: int) -> None:
        self.randomness = randomness
        self.rv = rvalue(randomness)

    def clear_threshold(self) -> None:
        self.th = ""
        self.threshold = 0

    def update_threshold(self, threshold: int) -> bool:
        """Record sampling at `threshold`; refused (False) if that would raise the sampling probability."""
        if self.th and self.threshold > threshold:
            return False
        self.threshold = threshold
        self.th = tvalue(threshold)
        return True

    def serialize(self) -> str:
        ot = []
        if self.rv:
            ot.append(f"rv:{self.rv}")
        if self.th:
            ot.append(f"th:{self.th}")
        ot.extend(f"{k}:{v}" for k, v in self.ot_extra)
        parts = [f"ot={';'.join(ot)}"] if ot else []
        parts.extend(f"{k}={v}" for k, v in self.extra)
        return ",".join(parts)
