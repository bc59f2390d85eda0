"""OTTL time, duration and id converters (contrib `pkg/ottl/ottlfuncs`, v0.161.0).

A time is a `GoTime` (ns since the epoch); `Time`, `Now`, `Unix` and `TruncateTime` of those return a
`ZonedTime`, a `GoTime` that also keeps its location as Go's `time.Time` does, so `Hour(Time("12:00",
"%H:%M", "America/New_York"))` is 12 as in the Collector. A time without a location (a span's
`start_time`) is UTC, as pdata's `AsTime()`; `time.Local` is `$TZ`, else /etc/localtime, else UTC.

`Time`/`FormatTime` formats are ctime-like directives (`%Y-%m-%d`) that the Collector's `timeutils`
turns into a Go layout ("2006-01-02"), which Go's `time.Parse`/`Time.Format` then read: this module
does the same, on bytes, with Go's layout tokens, its parse rules (a space in the layout matches any
run of spaces, `15` takes one or two digits, a fraction after the seconds is always accepted, `%Z`
takes an abbreviation the location knows or an IANA zone of that name) and its error texts (`parsing
time "x" as "2006-01-02": cannot parse "x" as "2006"`). `Duration` is Go's `time.ParseDuration`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import secrets
import threading
import time as _time
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import converter
from pipelines.ottl.values import EvalError, GoDuration, GoTime

Run = Callable[[Env], Any]

_NS = 1_000_000_000
_DAY = 86_400
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _wrap64(v: int) -> int:
    return (v + 2**63) % 2**64 - 2**63


# ---------------------------------------------------------------- locations

class Loc:
    """A `time.Location`: the zone abbreviation and UTC offset in effect at a Unix second."""

    name = "UTC"

    def lookup(self, sec: int) -> tuple[str, int]:
        return "UTC", 0

    def lookup_name(self, abbrev: str, sec: int) -> int | None:
        """`Location.lookupName`: the offset of the zone called `abbrev`, preferring one in effect."""
        return 0 if abbrev == "UTC" else None


UTC = Loc()


class FixedLoc(Loc):
    def __init__(self, name: str, offset: int) -> None:
        self.name, self.offset = name, offset

    def lookup(self, sec: int) -> tuple[str, int]:
        return self.name, self.offset

    def lookup_name(self, abbrev: str, sec: int) -> int | None:
        return self.offset if abbrev == self.name else None


# datetime's range, a day in from each end
_MIN_SEC, _MAX_SEC = -62135596800 + _DAY, 253402300799 - _DAY


class ZoneLoc(Loc):
    def __init__(self, zone: ZoneInfo, name: str) -> None:
        self.zone, self.name = zone, name

    @functools.lru_cache(maxsize=4096)  # noqa: B019  (locations live as long as the process)
    def lookup(self, sec: int) -> tuple[str, int]:
        dt = datetime.fromtimestamp(min(max(sec, _MIN_SEC), _MAX_SEC), self.zone)
        off = dt.utcoffset()
        return dt.tzname() or "", int(off.total_seconds()) if off is not None else 0

    def lookup_name(self, abbrev: str, sec: int) -> int | None:
        # Go walks the zone's table of abbreviations; zoneinfo has none to walk, so this samples the
        # two years around `sec`, which finds every abbreviation in use then.
        samples = [self.lookup(sec + k * 30 * _DAY) for k in range(-12, 13)]
        for name, off in samples:
            if name == abbrev and self.lookup(sec - off)[0] == abbrev:
                return off
        for name, off in samples:
            if name == abbrev:
                return off
        return None


@functools.cache
def load_location(name: str) -> Loc:
    """`time.LoadLocation`, with its error text."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local()
    try:
        return ZoneLoc(ZoneInfo(name), name)
    except (ValueError, OSError, LookupError):
        raise EvalError(f"unknown time zone {name}") from None


@functools.cache
def local() -> Loc:
    tz = os.environ.get("TZ")
    try:
        if tz is not None:
            return load_location(tz.lstrip(":")) if tz else UTC
        with open("/etc/localtime", "rb") as f:
            return ZoneLoc(ZoneInfo.from_file(f, key="Local"), "Local")
    except (EvalError, OSError, ValueError):
        return UTC


class ZonedTime(GoTime):
    """A time.Time with its location (a plain GoTime is UTC)."""

    __slots__ = ("loc",)

    def __init__(self, ns: int, loc: Loc) -> None:
        super().__init__(ns)
        self.loc = loc

    def __repr__(self) -> str:
        return f"ZonedTime({self.ns}, {self.loc.name})"


def location_of(t: GoTime) -> Loc:
    return t.loc if isinstance(t, ZonedTime) else UTC


def zoned(ns: int, loc: Loc) -> GoTime:
    return GoTime(ns) if loc is UTC else ZonedTime(ns, loc)


# ---------------------------------------------------------------- civil calendar

def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (day may run past the month's end)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


class Fields:
    """A time broken down in its location."""

    __slots__ = ("day", "hour", "minute", "month", "nsec", "offset", "second", "weekday", "year", "zone")

    def __init__(self, t: GoTime) -> None:
        sec, self.nsec = divmod(t.ns, _NS)
        self.zone, self.offset = location_of(t).lookup(sec)
        days, rem = divmod(sec + self.offset, _DAY)
        self.year, self.month, self.day = civil_from_days(days)
        self.hour, rem = divmod(rem, 3600)
        self.minute, self.second = divmod(rem, 60)
        self.weekday = (days + 4) % 7  # 1970-01-01 was a Thursday


def go_date(year: int, month: int, day: int, hour: int, minute: int, sec: int, nsec: int, loc: Loc) -> GoTime:
    """`time.Date`: the wall clock in `loc` as an instant (months, days and times may overflow)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    unix = days_from_civil(year, month, 1) * _DAY + (day - 1) * _DAY + hour * 3600 + minute * 60 + sec
    _, offset = loc.lookup(unix)
    if offset != 0:
        _, offset = loc.lookup(unix - offset)  # the offset in effect at the instant Go settles on
        unix -= offset
    return zoned(unix * _NS + nsec, loc)


# ---------------------------------------------------------------- ctime directives -> Go layout

_CTIME = {
    "Y": "2006", "y": "06", "m": "01", "o": "_1", "q": "1", "b": "Jan", "h": "Jan", "B": "January", "d": "02",
    "e": "_2", "g": "2", "a": "Mon", "A": "Monday", "H": "15", "l": "3", "I": "03", "p": "PM", "P": "pm",
    "M": "04", "S": "05", "L": "999", "f": "999999", "s": "99999999", "Z": "MST", "z": "-0700", "w": "-070000",
    "i": "-07", "j": "-07:00", "k": "-07:00:00", "D": "01/02/2006", "x": "01/02/2006", "F": "2006-01-02",
    "T": "15:04:05", "X": "15:04:05", "r": "03:04:05 pm", "R": "15:04", "n": "\n", "t": "\t", "%": "%",
    "c": "Mon Jan 02 15:04:05 2006",
}


def strptime_to_gotime(fmt: str) -> str:
    """`timeutils.StrptimeToGotime` (ctimefmt.ToNative): ValueError with its text when refused."""
    if any(c.isdigit() and c.isascii() for c in fmt):
        raise ValueError("format string should not contain decimals")
    out: list[str] = []
    bad: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            directive = fmt[i + 1]
            sub = _CTIME.get(directive)
            if sub is None:
                bad.append(f"unsupported ctimefmt.ToNative() directive: %{directive}")
            else:
                out.append(sub)
            i += 2
            continue
        out.append(c)
        i += 1
    if bad:
        raise ValueError(f"convert to go time format: [{' '.join(bad)}]")
    return "".join(out)


# ---------------------------------------------------------------- Go layouts

# Standard chunks, by the text Go recognises; fractional seconds are ("frac", digits, separator).
Std = str | tuple[str, int, int]
_STD0X = ("01", "02", "03", "04", "05", "06")


def _lower_at(b: bytes, i: int) -> bool:
    return i < len(b) and 0x61 <= b[i] <= 0x7A


def _digit_at(b: bytes, i: int) -> bool:
    return i < len(b) and 0x30 <= b[i] <= 0x39


def next_std_chunk(layout: bytes) -> tuple[bytes, Std | None, bytes]:
    """Go's `nextStdChunk`: the literal prefix, the first standard chunk, and the rest."""
    n = len(layout)
    for i in range(n):
        c = layout[i:i + 1]
        if c == b"J" and layout[i:i + 3] == b"Jan":
            if layout[i:i + 7] == b"January":
                return layout[:i], "January", layout[i + 7:]
            if not _lower_at(layout, i + 3):
                return layout[:i], "Jan", layout[i + 3:]
        elif c == b"M" and n >= i + 3:
            if layout[i:i + 3] == b"Mon":
                if layout[i:i + 6] == b"Monday":
                    return layout[:i], "Monday", layout[i + 6:]
                if not _lower_at(layout, i + 3):
                    return layout[:i], "Mon", layout[i + 3:]
            if layout[i:i + 3] == b"MST":
                return layout[:i], "MST", layout[i + 3:]
        elif c == b"0":
            if n >= i + 2 and 0x31 <= layout[i + 1] <= 0x36:
                return layout[:i], _STD0X[layout[i + 1] - 0x31], layout[i + 2:]
            if layout[i + 1:i + 3] == b"02":
                return layout[:i], "002", layout[i + 3:]
        elif c == b"1":
            if layout[i + 1:i + 2] == b"5":
                return layout[:i], "15", layout[i + 2:]
            return layout[:i], "1", layout[i + 1:]
        elif c == b"2":
            if layout[i:i + 4] == b"2006":
                return layout[:i], "2006", layout[i + 4:]
            return layout[:i], "2", layout[i + 1:]
        elif c == b"_":
            if layout[i + 1:i + 2] == b"2":
                if layout[i + 1:i + 5] == b"2006":
                    return layout[:i + 1], "2006", layout[i + 5:]
                return layout[:i], "_2", layout[i + 2:]
            if layout[i + 1:i + 3] == b"_2":
                return layout[:i], "__2", layout[i + 3:]
        elif c in (b"3", b"4", b"5"):
            return layout[:i], c.decode(), layout[i + 1:]
        elif c == b"P" and layout[i + 1:i + 2] == b"M":
            return layout[:i], "PM", layout[i + 2:]
        elif c == b"p" and layout[i + 1:i + 2] == b"m":
            return layout[:i], "pm", layout[i + 2:]
        elif c == b"-":
            for tok in (b"-070000", b"-07:00:00", b"-0700", b"-07:00", b"-07"):
                if layout[i:i + len(tok)] == tok:
                    return layout[:i], tok.decode(), layout[i + len(tok):]
        elif c == b"Z":
            for tok in (b"Z070000", b"Z07:00:00", b"Z0700", b"Z07:00", b"Z07"):
                if layout[i:i + len(tok)] == tok:
                    return layout[:i], tok.decode(), layout[i + len(tok):]
        elif c in (b".", b",") and i + 1 < n and layout[i + 1] in (0x30, 0x39):
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            if not _digit_at(layout, j):
                kind = "frac0" if ch == 0x30 else "frac9"
                return layout[:i], (kind, j - (i + 1), layout[i]), layout[j:]
    return layout, None, b""


def go_quote(s: bytes | str) -> str:
    """The time package's `quote`: non-ASCII and control bytes as \\xHH."""
    data = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
    out = ['"']
    for b in data:
        if b >= 0x80 or b < 0x20:
            out.append(f"\\x{b:02x}")
        else:
            if b in (0x22, 0x5C):
                out.append("\\")
            out.append(chr(b))
    out.append('"')
    return "".join(out)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class _Bad(Exception):
    """Go's errBad: the value does not fit the layout element."""


def _getnum(v: bytes, fixed: bool) -> tuple[int, bytes]:
    if not _digit_at(v, 0):
        raise _Bad
    if not _digit_at(v, 1):
        if fixed:
            raise _Bad
        return v[0] - 0x30, v[1:]
    return (v[0] - 0x30) * 10 + v[1] - 0x30, v[2:]


def _leading_int(v: bytes) -> tuple[int, bytes]:
    x, i = 0, 0
    while i < len(v) and 0x30 <= v[i] <= 0x39:
        x = x * 10 + v[i] - 0x30
        if x > 1 << 63:
            raise _Bad
        i += 1
    return x, v[i:]


def _atoi(v: bytes) -> int:
    neg = v[:1] == b"-"
    if v[:1] in (b"-", b"+"):
        v = v[1:]
    x, rem = _leading_int(v)
    if rem or x > _INT64_MAX:
        raise _Bad
    return -x if neg else x


def _lookup_name(names: tuple[str, ...], v: bytes) -> tuple[int, bytes]:
    for i, name in enumerate(names):
        if len(v) >= len(name) and v[:len(name)].lower() == name.lower().encode():
            return i, v[len(name):]
    raise _Bad


def _signed_offset_len(v: bytes) -> int:
    if v[:1] not in (b"-", b"+"):
        return 0
    try:
        x, rem = _leading_int(v[1:])
    except _Bad:
        return 0
    if rem == v[1:] or x > 12:
        return 0
    return len(v) - len(rem)


def _tz_len(v: bytes) -> int:
    """Go's `parseTimeZone`: the length of a zone abbreviation at the start of `v` (0: none)."""
    if len(v) < 3:
        return 0
    if v[:4] in (b"ChST", b"MeST"):
        return 4
    if v[:3] == b"GMT":
        return 3 + (_signed_offset_len(v[3:]) if len(v) > 3 else 0)
    if v[:1] in (b"+", b"-"):
        return _signed_offset_len(v)
    upper = 0
    while upper < 6 and upper < len(v) and 0x41 <= v[upper] <= 0x5A:
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (v[3:4] == b"T" or v[:4] == b"WITA"):
        return 4
    if upper == 5 and v[4:5] == b"T":
        return 5
    return 0


def _skip(value: bytes, prefix: bytes) -> bytes:
    while prefix:
        if prefix[:1] == b" ":
            if value and value[:1] != b" ":
                raise _Bad
            prefix = prefix.lstrip(b" ")
            value = value.lstrip(b" ")
            continue
        if not value or value[0] != prefix[0]:
            raise _Bad
        prefix, value = prefix[1:], value[1:]
    return value


def _nanoseconds(v: bytes, nbytes: int) -> int:
    if v[:1] not in (b".", b","):
        raise _Bad
    nbytes = min(nbytes, 10)
    ns: int = _atoi(v[1:nbytes]) * 10 ** (10 - nbytes)
    return ns


class ParseError(EvalError):
    pass


def _parse_error(layout: bytes, value: bytes, value_elem: bytes, layout_elem: bytes, message: str) -> ParseError:
    if message:
        return ParseError(f"parsing time {go_quote(value)}{message}")
    return ParseError(f"parsing time {go_quote(value)} as {go_quote(layout)}: cannot parse {go_quote(value_elem)} "
                      f"as {go_quote(layout_elem)}")


def go_parse(layout: bytes, avalue: bytes, loc: Loc) -> GoTime:
    """`time.ParseInLocation(layout, value, loc)`."""
    alayout, value = layout, avalue
    year, month, day, hour, minute, sec, nsec = 0, -1, -1, 0, 0, 0, 0
    utc = False
    zone_offset: int | None = None
    zone_name = b""
    pm = am = False
    while True:
        before = layout
        prefix, std, layout = next_std_chunk(layout)
        stdstr = before[len(prefix):len(before) - len(layout)]
        try:
            value = _skip(value, prefix)
        except _Bad:
            raise _parse_error(alayout, avalue, value, prefix, "") from None
        if std is None:
            if value:
                raise _parse_error(alayout, avalue, b"", value, ": extra text: " + go_quote(value))
            break
        hold = value
        range_err = ""
        try:
            if std == "2006":
                if len(value) < 4 or not _digit_at(value, 0):
                    raise _Bad
                year, value = _atoi(value[:4]), value[4:]
            elif std == "06":
                if len(value) < 2:
                    raise _Bad
                year, value = _atoi(value[:2]), value[2:]
                year += 1900 if year >= 69 else 2000
            elif std in ("January", "Jan"):
                month, value = _lookup_name(_MONTHS if std == "January" else tuple(m[:3] for m in _MONTHS), value)
                month += 1
            elif std in ("01", "1"):
                month, value = _getnum(value, std == "01")
                if not 0 < month <= 12:
                    range_err = "month"
            elif std in ("Monday", "Mon"):
                _, value = _lookup_name(_DAYS if std == "Monday" else tuple(d[:3] for d in _DAYS), value)
            elif std in ("02", "_2", "2"):
                if std == "_2" and value[:1] == b" ":
                    value = value[1:]
                day, value = _getnum(value, std == "02")
            elif std == "15":
                hour, value = _getnum(value, False)
                if not 0 <= hour < 24:
                    range_err = "hour"
            elif std in ("3", "03"):
                hour, value = _getnum(value, std == "03")
                if not 0 <= hour <= 12:
                    range_err = "hour"
            elif std in ("4", "04"):
                minute, value = _getnum(value, std == "04")
                if not 0 <= minute < 60:
                    range_err = "minute"
            elif std in ("5", "05"):
                sec, value = _getnum(value, std == "05")
                if not 0 <= sec < 60:
                    range_err = "second"
                elif len(value) >= 2 and value[:1] in (b".", b",") and _digit_at(value, 1):
                    _, following, _ = next_std_chunk(layout)
                    if not isinstance(following, tuple):
                        n = 2
                        while n < len(value) and _digit_at(value, n):
                            n += 1
                        nsec, value = _nanoseconds(value, n), value[n:]
            elif std in ("PM", "pm"):
                if len(value) < 2:
                    raise _Bad
                p, value = value[:2], value[2:]
                if p == (b"PM" if std == "PM" else b"pm"):
                    pm = True
                elif p == (b"AM" if std == "PM" else b"am"):
                    am = True
                else:
                    raise _Bad
            elif isinstance(std, str) and std[0] in "-Z":
                if std[0] == "Z" and value[:1] == b"Z":
                    value, utc = value[1:], True
                else:
                    zone_offset, value, range_err = _num_tz(std[1:], value)
            elif std == "MST":
                if value[:3] == b"UTC":
                    value, utc = value[3:], True
                else:
                    n = _tz_len(value)
                    if n == 0:
                        raise _Bad
                    zone_name, value = value[:n], value[n:]
            elif isinstance(std, tuple):
                kind, digits, _ = std
                if kind == "frac0":
                    if len(value) < digits + 1:
                        raise _Bad
                    nsec, value = _nanoseconds(value, digits + 1), value[digits + 1:]
                elif len(value) >= 2 and value[:1] in (b".", b",") and _digit_at(value, 1):
                    i = 0
                    while i + 1 < len(value) and _digit_at(value, i + 1):
                        i += 1
                    nsec, value = _nanoseconds(value, 1 + i), value[1 + i:]
            else:  # "002", "__2": days of the year, which no directive yields
                raise _Bad
        except _Bad:
            raise _parse_error(alayout, avalue, hold, stdstr, "") from None
        if range_err:
            raise _parse_error(alayout, avalue, value, stdstr, f": {range_err} out of range")
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    month = 1 if month < 0 else month
    day = 1 if day < 0 else day
    if day < 1 or day > days_in(month, year):
        raise _parse_error(alayout, avalue, b"", value, ": day out of range")
    if utc:
        return go_date(year, month, day, hour, minute, sec, nsec, UTC)
    if zone_offset is not None:
        t = go_date(year, month, day, hour, minute, sec, nsec, UTC).ns - zone_offset * _NS
        name, offset = loc.lookup(t // _NS)
        if offset == zone_offset and (not zone_name or name == zone_name.decode()):
            return zoned(t, loc)
        return ZonedTime(t, FixedLoc(zone_name.decode(), zone_offset))
    if zone_name:
        name = zone_name.decode()
        t = go_date(year, month, day, hour, minute, sec, nsec, UTC).ns
        found = loc.lookup_name(name, t // _NS)
        if found is not None:
            return zoned(t - found * _NS, loc)
        fake = 0
        if len(name) > 3 and name.startswith("GMT"):
            fake = int(name[3:]) * 3600
        return ZonedTime(t, FixedLoc(name, fake))
    return go_date(year, month, day, hour, minute, sec, nsec, loc)


def _num_tz(shape: str, value: bytes) -> tuple[int, bytes, str]:
    """A numeric zone offset (`-0700`, `-07:00`, `-07`, `-070000`, `-07:00:00`): seconds east of UTC."""
    if shape == "07:00":
        if len(value) < 6 or value[3:4] != b":":
            raise _Bad
        sign, hh, mm, ss, value = value[:1], value[1:3], value[4:6], b"00", value[6:]
    elif shape == "07":
        if len(value) < 3:
            raise _Bad
        sign, hh, mm, ss, value = value[:1], value[1:3], b"00", b"00", value[3:]
    elif shape == "07:00:00":
        if len(value) < 9 or value[3:4] != b":" or value[6:7] != b":":
            raise _Bad
        sign, hh, mm, ss, value = value[:1], value[1:3], value[4:6], value[7:9], value[9:]
    elif shape == "070000":
        if len(value) < 7:
            raise _Bad
        sign, hh, mm, ss, value = value[:1], value[1:3], value[3:5], value[5:7], value[7:]
    else:
        if len(value) < 5:
            raise _Bad
        sign, hh, mm, ss, value = value[:1], value[1:3], value[3:5], b"00", value[5:]
    hr, _ = _getnum(hh, True)
    mi, _ = _getnum(mm, True)
    se, _ = _getnum(ss, True)
    range_err = ""
    if hr > 24:
        range_err = "time zone offset hour"
    if mi > 60:
        range_err = "time zone offset minute"
    if se > 60:
        range_err = "time zone offset second"
    offset = (hr * 60 + mi) * 60 + se
    if sign == b"-":
        offset = -offset
    elif sign != b"+":
        raise _Bad
    return offset, value, range_err


def go_format(t: GoTime, layout: str) -> str:
    """`Time.Format(layout)`."""
    f = Fields(t)
    out: list[str] = []
    rest = layout.encode()
    while True:
        prefix, std, rest = next_std_chunk(rest)
        out.append(prefix.decode())
        if std is None:
            break
        if isinstance(std, tuple):
            kind, digits, sep = std
            buf = f"{f.nsec:09d}"[:min(digits, 9)]
            if kind == "frac9":
                buf = buf.rstrip("0")
                if not buf:
                    continue
            out.append(chr(sep) + buf)
            continue
        out.append(_format_std(std, f))
    return "".join(out)


def _pad(v: int, width: int) -> str:
    return f"-{-v:0{width}d}" if v < 0 else f"{v:0{width}d}"


def _format_std(std: str, f: Fields) -> str:
    h12 = f.hour % 12 or 12
    simple: dict[str, Callable[[], str]] = {
        "2006": lambda: _pad(f.year, 4), "06": lambda: f"{f.year % 100:02d}",
        "January": lambda: _MONTHS[f.month - 1], "Jan": lambda: _MONTHS[f.month - 1][:3],
        "01": lambda: f"{f.month:02d}", "1": lambda: str(f.month),
        "Monday": lambda: _DAYS[f.weekday], "Mon": lambda: _DAYS[f.weekday][:3],
        "02": lambda: f"{f.day:02d}", "_2": lambda: f"{f.day:2d}", "2": lambda: str(f.day),
        "15": lambda: f"{f.hour:02d}", "03": lambda: f"{h12:02d}", "3": lambda: str(h12),
        "04": lambda: f"{f.minute:02d}", "4": lambda: str(f.minute),
        "05": lambda: f"{f.second:02d}", "5": lambda: str(f.second),
        "PM": lambda: "PM" if f.hour >= 12 else "AM", "pm": lambda: "pm" if f.hour >= 12 else "am",
    }
    fn = simple.get(std)
    if fn is not None:
        return fn()
    if std == "MST":
        return f.zone or _offset_text(f.offset, "0700")
    if std[0] == "Z" and f.offset == 0:
        return "Z"
    if std[0] in "-Z":
        return _offset_text(f.offset, std[1:])
    doy = days_from_civil(f.year, f.month, f.day) - days_from_civil(f.year, 1, 1) + 1
    return f"{doy:03d}" if std == "002" else f"{doy:3d}"


def _offset_text(offset: int, shape: str) -> str:
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    zone = offset // 60
    out = sign + f"{zone // 60:02d}"
    if shape != "07":
        out += (":" if ":" in shape else "") + f"{zone % 60:02d}"
    if shape in ("070000", "07:00:00"):
        out += (":" if ":" in shape else "") + f"{offset % 60:02d}"
    return out


# ---------------------------------------------------------------- timeutils.ParseStrptime

_DATE_ELEMENTS = ("2006", "06", "January", "Jan", "01", "_1", "02", "_2", "Monday", "Mon", "002")


def _now() -> GoTime:
    return zoned(_time.time_ns(), local())


def parse_strptime(layout: str, value: str, loc: Loc) -> GoTime:
    """`timeutils.ParseGotime`: Go's parse, a zone abbreviation the location does not know looked up
    as an IANA zone, and a missing date (or year) taken from today."""
    raw = value.encode()
    t = go_parse(layout.encode(), raw, loc)
    if isinstance(t, ZonedTime) and isinstance(t.loc, FixedLoc) and t.loc.offset == 0:
        zone = t.loc.name
        loc_zone = loc.lookup(t.ns // _NS)[0]
        if zone not in ("UTC", loc_zone):
            try:
                zone_loc = load_location(zone)
            except EvalError as exc:
                raise EvalError(f"failed to load location {zone}: {exc}") from None
            with contextlib.suppress(EvalError):  # Go keeps the first result when the second parse fails
                t = go_parse(layout.encode(), raw, zone_loc)
    f = Fields(t)
    if not any(e in layout for e in _DATE_ELEMENTS):
        n = Fields(_now())
        return go_date(n.year, n.month, n.day, f.hour, f.minute, f.second, f.nsec, location_of(t))
    if f.year > 0:
        return t
    now = _now()
    n = Fields(now)
    d = go_date(n.year, f.month, f.day, f.hour, f.minute, f.second, f.nsec, location_of(t))
    if d.ns > now.ns + 7 * _DAY * _NS:
        d = go_date(n.year - 1, f.month, f.day, f.hour, f.minute, f.second, f.nsec, location_of(t))
    return d


def _location_for(location: str | None, fmt: str) -> Loc:
    """`timeutils.GetLocation`."""
    if location:
        try:
            return load_location(location)
        except EvalError as exc:
            raise EvalError(f"failed to load location {location}: {exc}") from None
    if fmt.endswith("Z") and not fmt.endswith("%Z"):
        return UTC
    return local()


@converter("Time", "time:string, format:lit_string, ?location:string, ?locale:string")
def time_(time: Getter, format: str, location: Getter | None, locale: Getter | None) -> Run:
    if format == "":
        raise ValueError("format cannot be nil")
    layout = strptime_to_gotime(format)

    def run(env: Env) -> GoTime:
        loc = _location_for(None if location is None else location(env), format)
        if locale is not None:
            lang = locale(env)
            if lang and lang.split("-")[0].lower() != "en":
                raise EvalError(f"unsupported locale '{lang}': this gateway parses English names only")
        value = time(env)
        if value == "":
            raise EvalError("time cannot be nil")
        return parse_strptime(layout, value, loc)
    return run


@converter("FormatTime", "time:time, format:lit_string")
def format_time(time: Getter, format: str) -> Run:
    if format == "":
        raise ValueError("format cannot be nil")
    layout = strptime_to_gotime(format)
    return lambda env: go_format(time(env), layout)


# ---------------------------------------------------------------- now, unix times

@converter("Now", "")
def now() -> Run:
    return lambda env: _now()


@converter("Unix", "seconds:int, ?nanoseconds:int")
def unix(seconds: Getter, nanoseconds: Getter | None) -> Run:
    def run(env: Env) -> GoTime:
        nsec = 0 if nanoseconds is None else nanoseconds(env)
        return zoned(seconds(env) * _NS + nsec, local())
    return run


def _time_to_int(name: str, unit: int) -> None:
    @converter(name, "time:time")
    def build(time: Getter) -> Run:
        return lambda env: _wrap64(time(env).ns // unit)


_time_to_int("UnixNano", 1)
_time_to_int("UnixMicro", 1_000)
_time_to_int("UnixMilli", 1_000_000)
_time_to_int("UnixSeconds", _NS)


def _field(name: str, get: Callable[[Fields], int]) -> None:
    @converter(name, "time:time")
    def build(time: Getter) -> Run:
        return lambda env: get(Fields(time(env)))


_field("Year", lambda f: f.year)
_field("Month", lambda f: f.month)
_field("Day", lambda f: f.day)
_field("Weekday", lambda f: f.weekday)
_field("Hour", lambda f: f.hour)
_field("Minute", lambda f: f.minute)
_field("Second", lambda f: f.second)
_field("Nanosecond", lambda f: f.nsec)

# Go's zero time (January 1, year 1, UTC) in seconds since the Unix epoch: Truncate counts from it.
_ZERO_TIME_NS = -62135596800 * _NS


@converter("TruncateTime", "time:time, duration:duration")
def truncate_time(time: Getter, duration: Getter) -> Run:
    def run(env: Env) -> GoTime:
        t: GoTime = time(env)
        d: int = duration(env).ns
        if d <= 0:
            return t
        return zoned(t.ns - (t.ns - _ZERO_TIME_NS) % d, location_of(t))
    return run


# ---------------------------------------------------------------- durations

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": _NS, "m": 60 * _NS,
          "h": 3600 * _NS}


def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration`, in ns; EvalError with its text."""
    invalid = EvalError("time: invalid duration " + go_quote(text))
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        i = 0
        v = 0
        while i < len(s) and "0" <= s[i] <= "9":
            v = v * 10 + ord(s[i]) - 48
            if v > 1 << 63:
                raise invalid
            i += 1
        pre = i > 0
        s = s[i:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            i = 0
            overflow = False
            while i < len(s) and "0" <= s[i] <= "9":
                if not overflow:
                    y = frac * 10 + ord(s[i]) - 48
                    if frac > (2**63 - 1) // 10 or y > 1 << 63:
                        overflow = True
                    else:
                        frac, scale = y, scale * 10
                i += 1
            post = i > 0
            s = s[i:]
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and s[i] != "." and not ("0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise EvalError("time: missing unit in duration " + go_quote(text))
        unit_text, s = s[:i], s[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise EvalError("time: unknown unit " + go_quote(unit_text) + " in duration " + go_quote(text))
        if v > (1 << 63) // unit:
            raise invalid
        v *= unit
        if frac > 0:
            v += int(float(frac) * (float(unit) / scale))
            if v > 1 << 63:
                raise invalid
        total += v
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > _INT64_MAX:
        raise invalid
    return total


@converter("Duration", "duration:string")
def duration_(duration: Getter) -> Run:
    return lambda env: GoDuration(parse_duration(duration(env)))


def _go_div(a: int, b: int) -> tuple[int, int]:
    """Go's truncating integer division and remainder."""
    q = abs(a) // b * (1 if a >= 0 else -1)
    return q, a - q * b


def _duration_to_int(name: str, unit: int) -> None:
    @converter(name, "duration:duration")
    def build(duration: Getter) -> Run:
        return lambda env: _go_div(duration(env).ns, unit)[0]


def _duration_to_float(name: str, unit: int) -> None:
    @converter(name, "duration:duration")
    def build(duration: Getter) -> Run:
        def run(env: Env) -> float:
            whole, rest = _go_div(duration(env).ns, unit)
            return float(whole) + float(rest) / float(unit)
        return run


_duration_to_int("Nanoseconds", 1)
_duration_to_int("Microseconds", 1_000)
_duration_to_int("Milliseconds", 1_000_000)
_duration_to_float("Seconds", _NS)
_duration_to_float("Minutes", 60 * _NS)
_duration_to_float("Hours", 3600 * _NS)


# ---------------------------------------------------------------- Log

def go_float_v(x: float) -> str:
    """Go's `%v` of a float64: strconv's shortest 'g', exponent form below 1e-4 and from 1e+06."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    dp = len(ds) + exp  # position of the decimal point
    e = dp - 1
    out = "-" if sign else ""
    if e < -4 or e >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{out}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if dp <= 0:
        return f"{out}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return out + ds + "0" * (dp - len(ds))
    return f"{out}{ds[:dp]}.{ds[dp:]}"


@converter("Log", "value:float_like")
def log(value: Getter) -> Run:
    def run(env: Env) -> float:
        v = value(env)
        if v is None:
            raise EvalError("invalid input: <nil>")
        if v <= 0:
            raise EvalError(f"invalid input: expected number greater than zero but got {go_float_v(v)}")
        return math.log(v)
    return run


# ---------------------------------------------------------------- UUIDs

@converter("UUID", "")
def uuid4() -> Run:
    return lambda env: str(uuid.uuid4())


_V7_LOCK = threading.Lock()
_v7_last = 0


def uuid7() -> str:
    """google/uuid's NewV7: 48-bit Unix ms, 12 bits of sub-millisecond time kept monotonic, random."""
    global _v7_last
    nano = _time.time_ns()
    milli = nano // 1_000_000
    now = milli << 12 | ((nano - milli * 1_000_000) >> 8)
    with _V7_LOCK:
        if now <= _v7_last:
            now = _v7_last + 1
        _v7_last = now
    milli, seq = now >> 12, now & 0xFFF
    rand = int.from_bytes(secrets.token_bytes(8), "big") & ((1 << 62) - 1)
    value = milli << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))


@converter("UUIDv7", "")
def uuidv7() -> Run:
    return lambda env: uuid7()
