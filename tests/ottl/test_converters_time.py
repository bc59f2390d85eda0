"""Time, duration and id converters: Go's layout parsing and formatting (through the ctime
directives), locations, zone abbreviations, Go's ParseDuration, the duration and time accessors,
Log and UUIDs, with the Collector's error texts."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from pipelines.batch import RequestContext
from pipelines.ottl.compile import compile_condition, compile_statement
from pipelines.ottl.contexts import Env
from pipelines.ottl.functions import time_funcs
from pipelines.ottl.functions.time_funcs import go_float_v, parse_duration, strptime_to_gotime
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.values import EvalError

START_NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z, a Tuesday


@pytest.fixture(autouse=True)
def utc_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """time.Local is UTC in these tests, whatever the machine's zone."""
    monkeypatch.setattr(time_funcs, "local", lambda: time_funcs.UTC)


def span_env() -> Env:
    rs = ResourceSpans()
    ss = rs.scope_spans.add()
    sp = ss.spans.add(name="GET /health", start_time_unix_nano=START_NS, end_time_unix_nano=START_NS + 1_500_000)
    kv = sp.attributes.add()
    kv.key, kv.value.string_value = "when", "2023-05-26 12:34:56"
    kv = sp.attributes.add()
    kv.key, kv.value.int_value = "i", 7
    env = Env(RequestContext())
    env.resource, env.scope, env.item = rs, ss, sp
    return env


def ev(expr: str) -> Any:
    """Evaluate a converter call through `attributes["out"]` (times through UnixNano first)."""
    env = span_env()
    compile_statement(f'set(attributes["out"], {expr})', "span").run(env)
    for kv in env.item.attributes:
        if kv.key == "out":
            kind = kv.value.WhichOneof("value")
            return getattr(kv.value, kind) if kind else None
    return None


def unix(expr: str) -> int:
    value = ev(f"UnixSeconds({expr})")
    assert isinstance(value, int)
    return value


# ---------------------------------------------------------------- Time

@pytest.mark.parametrize(("expr", "expected"), [
    ('Time("02/04/2023", "%m/%d/%Y")', 1675468800),
    ('Time("Feb 15, 2023", "%b %d, %Y")', 1676419200),
    ('Time("february 15, 2023", "%B %d, %Y")', 1676419200),  # names match case-insensitively
    ('Time("2023-05-26 12:34:56 HST", "%Y-%m-%d %H:%M:%S %Z")', 1685140496),  # HST as an IANA zone
    ('Time("1986-10-01T00:17:33 MST", "%Y-%m-%dT%H:%M:%S %Z")', 528535053),
    ('Time("2012-11-01T22:08:41+0000 EST", "%Y-%m-%dT%H:%M:%S%z %Z")', 1351807721),  # the offset wins
    ('Time("2023-05-26 12:34:56", "%Y-%m-%d %H:%M:%S", "America/New_York")', 1685118896),
    ('Time(attributes["when"], "%Y-%m-%d %H:%M:%S", "Asia/Tokyo")', 1685072096),
    ('Time("2023-01-15 12:00:00 EST", "%Y-%m-%d %H:%M:%S %Z", "America/New_York")', 1673802000),
    ('Time("2023-05-26 12:34:56 -0700", "%Y-%m-%d %H:%M:%S %z")', 1685129696),
    ('Time("2023-05-26 12:34:56 +05:30", "%Y-%m-%d %H:%M:%S %j")', 1685084696),
    ('Time("2023-05-26 12:34:56 -07", "%Y-%m-%d %H:%M:%S %i")', 1685129696),
    ('Time("2023-05-26T12:34:56Z", "%Y-%m-%dT%H:%M:%SZ", "America/New_York")', 1685118896),  # location wins
    ('Time("2023-05-26T12:34:56Z", "%Y-%m-%dT%H:%M:%SZ")', 1685104496),
    ('Time("2023-05-26 12:34:56 UTC", "%Y-%m-%d %H:%M:%S %Z", "Asia/Tokyo")', 1685104496),
    ('Time("5/6/23 1:02:03 PM", "%q/%g/%y %l:%M:%S %p")', 1683378123),
    ('Time("05/06/69 12:00:00 am", "%m/%d/%y %I:%M:%S %P")', -20736000),  # 69 is 1969
    ('Time("Mon Jan 02 15:04:05 2006", "%c")', 1136214245),
    ('Time("2006-01-02   15:04", "%F %R")', 1136214240),  # a layout space takes any run of spaces
    ('Time("Tue Feb  7 2023", "%a %b %e %Y")', 1675728000),
])
def test_time_parses(expr: str, expected: int) -> None:
    assert unix(expr) == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ('Time("2023-05-26 12:34:56.789", "%Y-%m-%d %H:%M:%S.%L")', 1685104496789000000),
    ('Time("2023-05-26 12:34:56.7", "%Y-%m-%d %H:%M:%S.%f")', 1685104496700000000),
    ('Time("2023-05-26 12:34:56", "%Y-%m-%d %H:%M:%S.%s")', 1685104496000000000),  # the fraction may be absent
    ('Time("2023-05-26 12:34:56,123456789", "%Y-%m-%d %H:%M:%S")', 1685104496123456789),  # always accepted
    ('Time("2023-05-26 12:34:56.1234567891", "%Y-%m-%d %H:%M:%S.%L")', 1685104496123456789),  # 9 digits kept
])
def test_time_fractions(expr: str, expected: int) -> None:
    assert ev(f"UnixNano({expr})") == expected


def test_time_keeps_its_location() -> None:
    parsed = 'Time("2023-05-26 12:34:56", "%Y-%m-%d %H:%M:%S", "America/New_York")'
    assert ev(f"Hour({parsed})") == 12
    assert ev(f"Day({parsed})") == 26
    assert ev(f'FormatTime({parsed}, "%Y-%m-%d %H:%M:%S %Z %z %j")') == "2023-05-26 12:34:56 EDT -0400 -04:00"
    # A fixed offset from the input keeps that offset; without a name, %Z prints it.
    fixed = 'Time("2023-05-26 12:34:56 +0530", "%Y-%m-%d %H:%M:%S %z")'
    assert ev(f'FormatTime({fixed}, "%H:%M %Z")') == "12:34 +0530"
    assert ev(f"Hour({fixed})") == 12


def test_missing_date_or_year_comes_from_today() -> None:
    today = time.gmtime()
    got = unix('Time("12:30", "%H:%M")')
    assert time.gmtime(got)[:5] == (*today[:3], 12, 30)
    year = ev('Year(Time("Jan 02 03:04:05", "%b %d %H:%M:%S"))')
    assert year in (today.tm_year, today.tm_year - 1)


@pytest.mark.parametrize(("expr", "message"), [
    ('Time("2023-13-26", "%Y-%m-%d")', 'parsing time "2023-13-26": month out of range'),
    ('Time("2023-02-29", "%Y-%m-%d")', 'parsing time "2023-02-29": day out of range'),
    ('Time("2023-05-26 24:00", "%Y-%m-%d %H:%M")', 'parsing time "2023-05-26 24:00": hour out of range'),
    ('Time("x2023", "%Y")', 'parsing time "x2023" as "2006": cannot parse "x2023" as "2006"'),
    ('Time("2023-5-26", "%Y-%m-%d")', 'parsing time "2023-5-26" as "2006-01-02": cannot parse "5-26" as "01"'),
    ('Time("2023-05-26 extra", "%Y-%m-%d")', 'parsing time "2023-05-26 extra": extra text: " extra"'),
    ('Time("2023/05/26", "%Y-%m-%d")', 'parsing time "2023/05/26" as "2006-01-02": cannot parse "/05/26" as "-"'),
    ('Time("2023-05-26 12:34:56 PST", "%Y-%m-%d %H:%M:%S %Z")', "failed to load location PST: unknown time zone PST"),
    ('Time("2023-05-26", "%Y-%m-%d", "Mars/Olympus")', "failed to load location Mars/Olympus: unknown time zone "
                                                       "Mars/Olympus"),
    ('Time("", "%Y")', "time cannot be nil"),
    ('Time(attributes["i"], "%Y")', "expected string but got int64"),
    ('Time(attributes["missing"], "%Y")', "expected string but got <nil>"),
    ('Time("mercoledì", "%A", "", "it")', "unsupported locale 'it': this gateway parses English names only"),
])
def test_time_errors(expr: str, message: str) -> None:
    with pytest.raises(EvalError) as exc:
        ev(expr)
    assert str(exc.value) == message


@pytest.mark.parametrize(("fmt", "message"), [
    ("", "format cannot be nil"),
    ("%Y-%Q", "convert to go time format: [unsupported ctimefmt.ToNative() directive: %Q]"),
    ("%Y 2", "format string should not contain decimals"),
])
def test_bad_formats_fail_at_load(fmt: str, message: str) -> None:
    with pytest.raises(OttlError, match=re.escape(message)):
        compile_statement(f'set(attributes["out"], Time("2023", "{fmt}"))', "span")
    with pytest.raises(OttlError, match=re.escape(message)):
        compile_statement(f'set(attributes["out"], FormatTime(span.start_time, "{fmt}"))', "span")


def test_directives_to_go_layout() -> None:
    assert strptime_to_gotime("%Y-%m-%dT%H:%M:%S.%L%z") == "2006-01-02T15:04:05.999-0700"
    assert strptime_to_gotime("%e %o %q %g %l %I %p %P %%") == "_2 _1 1 2 3 03 PM pm %"
    assert strptime_to_gotime("%D|%x|%F|%T|%X|%r|%R|%n|%t") == "01/02/2006|01/02/2006|2006-01-02|15:04:05|" \
                                                             "15:04:05|03:04:05 pm|15:04|\n|\t"


# ---------------------------------------------------------------- FormatTime

@pytest.mark.parametrize(("fmt", "expected"), [
    ("%Y-%m-%d %H:%M:%S", "2023-11-14 22:13:20"),
    ("%Y-%m-%dT%H:%M:%S.%L", "2023-11-14T22:13:20.123"),
    ("%H:%M:%S.%f", "22:13:20.123456"),
    ("%H:%M:%S.%s", "22:13:20.12345678"),  # Go's layout has 8 nines for %s
    ("%A %a %B %b %h", "Tuesday Tue November Nov Nov"),
    ("%e|%g|%q|%o|%y", "14|14|11|_11|23"),
    ("%I %l %p %P", "10 10 PM pm"),
    ("%Z %z %i %j %k %w", "UTC +0000 +00 +00:00 +00:00:00 +000000"),
    ("%c", "Tue Nov 14 22:13:20 2023"),
    ("%D %r", "11/14/2023 10:13:20 pm"),
    ("%S%L", "20999"),  # a fraction needs its '.' or ',': else "999" is literal text
    ("100%%", None),  # decimals are refused (checked below)
])
def test_format_time(fmt: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(OttlError, match="decimals"):
            ev(f'FormatTime(span.start_time, "{fmt}")')
        return
    assert ev(f'FormatTime(span.start_time, "{fmt}")') == expected


def test_format_time_trims_an_all_zero_fraction() -> None:
    assert ev('FormatTime(Unix(1700000000), "%H:%M:%S.%L|")') == "22:13:20|"
    assert ev('FormatTime(Unix(1700000000, 5000000), "%S.%L %e")') == "20.005 14"
    assert ev('FormatTime(Time("2023-02-05", "%Y-%m-%d"), "%e|%g|%d")') == " 5|5|05"


def test_format_time_type_errors() -> None:
    with pytest.raises(EvalError, match="expected time but got string"):
        ev('FormatTime("2023", "%Y")')


# ---------------------------------------------------------------- Unix, accessors, TruncateTime

@pytest.mark.parametrize(("expr", "expected"), [
    ("UnixNano(span.start_time)", START_NS),
    ("UnixMicro(span.start_time)", START_NS // 1_000),
    ("UnixMilli(span.start_time)", START_NS // 1_000_000),
    ("UnixSeconds(span.start_time)", START_NS // 1_000_000_000),
    ("UnixNano(Unix(1672527600))", 1672527600 * 10**9),
    ("UnixNano(Unix(1672527600, 42))", 1672527600 * 10**9 + 42),
    ("UnixMilli(Unix(-1, 5))", -1000),  # floors, as Go's UnixMilli
    ("UnixSeconds(Unix(0, -1))", -1),
    ("Year(span.start_time)", 2023),
    ("Month(span.start_time)", 11),
    ("Day(span.start_time)", 14),
    ("Weekday(span.start_time)", 2),
    ("Hour(span.start_time)", 22),
    ("Minute(span.start_time)", 13),
    ("Second(span.start_time)", 20),
    ("Nanosecond(span.start_time)", 123456789),
    ("Weekday(Unix(0))", 4),  # a Thursday
    ("Year(Unix(-62135596800))", 1),
    ('UnixNano(TruncateTime(span.start_time, Duration("1s")))', 1_700_000_000 * 10**9),
    ('UnixSeconds(TruncateTime(span.start_time, Duration("1h")))', 1699999200),
    ('UnixSeconds(TruncateTime(span.start_time, Duration("7h")))', 1699984800),  # from year 1, not 1970
    ('UnixNano(TruncateTime(span.start_time, Duration("0s")))', START_NS),
    ('UnixNano(TruncateTime(span.start_time, Duration("-1h")))', START_NS),
    ('Hour(TruncateTime(Time("2023-05-26 12:34", "%Y-%m-%d %H:%M", "Asia/Kolkata"), Duration("1h")))', 12),
])
def test_time_accessors(expr: str, expected: int) -> None:
    assert ev(expr) == expected


def test_time_comparisons_and_math() -> None:
    env = span_env()
    assert compile_condition('span.start_time == Unix(1700000000, 123456789)', "span")(env)
    assert compile_condition('Time("2023-05-26", "%Y-%m-%d") < Now()', "span")(env)
    assert compile_condition('Milliseconds(span.end_time - span.start_time) == 1', "span")(env)
    assert compile_condition('UnixSeconds(Time("2023-05-26", "%Y-%m-%d") + Duration("24h")) == 1685145600',
                             "span")(env)


def test_now_is_now() -> None:
    before = time.time_ns()
    got = ev("UnixNano(Now())")
    assert before <= got <= time.time_ns()


@pytest.mark.parametrize("expr", ["Hour(1)", 'Year("2023")', "UnixNano(attributes[\"missing\"])"])
def test_accessors_want_a_time(expr: str) -> None:
    with pytest.raises(EvalError, match="expected time but got"):
        ev(expr)


def test_unix_wants_ints() -> None:
    with pytest.raises(EvalError, match="expected int64 but got string"):
        ev('UnixNano(Unix("1"))')


# ---------------------------------------------------------------- durations

@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("+0", 0), ("-0", 0), ("1h2m3s", 3723 * 10**9), ("1.5h", 5400 * 10**9), ("-1.5h", -5400 * 10**9),
    ("300ms", 300_000_000), ("2h45m", 9900 * 10**9), ("1µs", 1000), ("1μs", 1000), ("1us", 1000), ("7ns", 7),
    (".5s", 500_000_000), ("1.s", 10**9), ("1h1h", 7200 * 10**9), ("0.000000001s", 1),
    ("9223372036854775807ns", 2**63 - 1), ("-9223372036854775808ns", -(2**63)),
    ("1.0000000005s", 1_000_000_000),  # float rounding as Go's
])
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'),
    ("1", 'time: missing unit in duration "1"'),
    ("1x", 'time: unknown unit "x" in duration "1x"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("h", 'time: invalid duration "h"'),
    (".s", 'time: invalid duration ".s"'),
    ("1h ", 'time: unknown unit "h " in duration "1h "'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("µs", 'time: invalid duration "\\xc2\\xb5s"'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(EvalError) as exc:
        parse_duration(text)
    assert str(exc.value) == message


@pytest.mark.parametrize(("expr", "expected"), [
    ('Nanoseconds(Duration("1h"))', 3_600_000_000_000),
    ('Microseconds(Duration("1h"))', 3_600_000_000),
    ('Milliseconds(Duration("1h"))', 3_600_000),
    ('Milliseconds(Duration("-1.9ms"))', -1),  # truncates toward zero
    ('Microseconds(Duration("1999ns"))', 1),
    ('Seconds(Duration("1h30m"))', 5400.0),
    ('Seconds(Duration("1500ms"))', 1.5),
    ('Minutes(Duration("90s"))', 1.5),
    ('Hours(Duration("-90m"))', -1.5),
    ('Hours(Duration("1ns"))', 1 / 3.6e12),
])
def test_duration_accessors(expr: str, expected: float) -> None:
    got = ev(expr)
    assert got == expected
    assert type(got) is type(expected)


def test_duration_errors() -> None:
    with pytest.raises(EvalError, match='time: unknown unit "d" in duration "1d"'):
        ev('Nanoseconds(Duration("1d"))')
    with pytest.raises(EvalError, match="expected duration but got int64"):
        ev("Seconds(5)")
    with pytest.raises(EvalError, match="expected string but got <nil>"):
        ev('Duration(attributes["missing"])')


# ---------------------------------------------------------------- Log, UUIDs

def test_log() -> None:
    assert ev("Log(2.718281828459045)") == 1.0
    assert ev("Log(1)") == 0.0
    assert ev('Log("100")') == pytest.approx(4.605170185988092)
    assert ev("Log(true)") == 0.0
    assert ev('Log(attributes["i"])') == pytest.approx(1.9459101090932196)
    for arg, shown in (("0", "0"), ("-1", "-1"), ("-0.5", "-0.5"), ("false", "0"), ("-1000000", "-1e+06")):
        with pytest.raises(EvalError) as exc:
            ev(f"Log({arg})")
        assert str(exc.value) == f"invalid input: expected number greater than zero but got {shown}"
    with pytest.raises(EvalError, match=r"^invalid input: <nil>$"):
        ev('Log(attributes["missing"])')


def test_go_float_v() -> None:
    cases = {0.5: "0.5", 123456.0: "123456", 1234567.0: "1.234567e+06", 0.0001: "0.0001", 0.00001: "1e-05",
             -2.5e-7: "-2.5e-07", 1e21: "1e+21", 100.0: "100"}
    for value, shown in cases.items():
        assert go_float_v(value) == shown


def test_uuids() -> None:
    v4 = ev("UUID()")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", v4)
    assert ev("UUID()") != v4
    before = time.time_ns() // 1_000_000
    ids = [ev("UUIDv7()") for _ in range(50)]
    for u in ids:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u)
        assert before <= int(u.replace("-", "")[:12], 16) <= time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # monotonic
