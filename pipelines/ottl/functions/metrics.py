"""The transform processor's own metric functions (contrib `processor/transformprocessor/internal/metrics`,
v0.161.0): editors that change a metric's type, add metrics to its scope, scale or aggregate points.

They run in the metric context (`convert_summary_sum_val_to_sum` and `convert_summary_count_val_to_sum`
in the datapoint context) of `metric_statements`; elsewhere a statement using them is refused. A
metric a function appends goes to the end of the scope's metrics, where the group's walk reaches it
in its turn (`groups.visit`), as in the Collector.

Where the Collector's output order follows a Go map (the groups `aggregate_on_*` merge), the groups
come out here in the order of their first point; `convert_exponential_histogram_to_histogram`'s
`random` distribution is seeded by nothing, as there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import editor
from pipelines.ottl.values import EvalError, json_marshal
from pipelines.processors import anyvalue

Run = Callable[[Env], None]
METRIC = ("metric",)
DATAPOINT = ("datapoint",)
_INT64_MIN = -(2**63)
_U64 = 2**64
_TEMPORALITIES = {"delta": 1, "cumulative": 2}
_TYPE_NAMES = {None: "Empty", "gauge": "Gauge", "sum": "Sum", "histogram": "Histogram",
               "exponential_histogram": "ExponentialHistogram", "summary": "Summary"}


def _kind(metric: Metric) -> str | None:
    kind: str | None = metric.WhichOneof("data")
    return kind


def _temporality(name: str) -> int:
    if name not in _TEMPORALITIES:
        raise ValueError(f"unknown aggregation temporality: {name}")
    return _TEMPORALITIES[name]


def _to_int64(u: int) -> int:
    return (u + 2**63) % _U64 - 2**63


def go_float_to_int64(f: float) -> int:
    """Go's `int64(f)` on amd64: truncated toward zero; NaN and out-of-range values give the
    "integer indefinite" value, math.MinInt64."""
    if not math.isfinite(f) or not -(2.0**63) <= f < 2.0**63:
        return _INT64_MIN
    return int(f)


# ---------------------------------------------------------------- type conversions

@editor("convert_sum_to_gauge", "", contexts=METRIC)
def convert_sum_to_gauge() -> Run:
    def run(env: Env) -> None:
        metric = env.item
        if _kind(metric) != "sum":
            return
        points = list(metric.sum.data_points)
        metric.ClearField("sum")
        metric.gauge.SetInParent()
        metric.gauge.data_points.extend(points)
    return run


@editor("convert_gauge_to_sum", "string_agg_temp:lit_string, monotonic:lit_bool", contexts=METRIC)
def convert_gauge_to_sum(string_agg_temp: str, monotonic: bool) -> Run:
    temporality = _temporality(string_agg_temp)

    def run(env: Env) -> None:
        metric = env.item
        if _kind(metric) != "gauge":
            return
        points = list(metric.gauge.data_points)
        metric.ClearField("gauge")
        metric.sum.aggregation_temporality = temporality
        metric.sum.is_monotonic = monotonic
        metric.sum.data_points.extend(points)
    return run


def _summary_to_sum(name: str, default_suffix: str, value: Callable[[Any, NumberDataPoint], None]) -> None:
    @editor(name, "string_agg_temp:lit_string, monotonic:lit_bool, ?suffix:lit_string", contexts=DATAPOINT)
    def build(string_agg_temp: str, monotonic: bool, suffix: str | None) -> Run:
        temporality = _temporality(string_agg_temp)
        end = default_suffix if suffix is None else suffix

        def run(env: Env) -> None:
            metric = env.item
            if _kind(metric) != "summary":
                return
            new = env.scope.metrics.add()
            new.description, new.name, new.unit = metric.description, metric.name + end, metric.unit
            new.sum.aggregation_temporality = temporality
            new.sum.is_monotonic = monotonic
            new.sum.SetInParent()
            for dp in metric.summary.data_points:
                out = new.sum.data_points.add()
                out.attributes.extend(dp.attributes)
                value(dp, out)
                out.start_time_unix_nano, out.time_unix_nano = dp.start_time_unix_nano, dp.time_unix_nano
        return run


def _set_count(dp: Any, out: NumberDataPoint) -> None:
    out.as_int = _to_int64(dp.count)


def _set_sum(dp: Any, out: NumberDataPoint) -> None:
    out.as_double = dp.sum


_summary_to_sum("convert_summary_sum_val_to_sum", "_sum", _set_sum)
_summary_to_sum("convert_summary_count_val_to_sum", "_count", _set_count)


# ---------------------------------------------------------------- new metrics from old

def _extract(name: str, default_suffix: str, what: str) -> None:
    """`extract_sum_metric` / `extract_count_metric`: a Sum of each point's sum or count."""
    @editor(name, "monotonic:lit_bool, ?suffix:lit_string", contexts=METRIC)
    def build(monotonic: bool, suffix: str | None) -> Run:
        end = default_suffix if suffix is None else suffix

        def run(env: Env) -> None:
            metric = env.item
            kind = _kind(metric)
            if kind == "summary":
                temporality = 2
            elif kind in ("histogram", "exponential_histogram"):
                temporality = getattr(metric, kind).aggregation_temporality
            else:
                temporality = 0
            if temporality == 0:
                raise EvalError(f"{name} requires an input metric of type Histogram, ExponentialHistogram or "
                                f"Summary, got {_TYPE_NAMES[kind]}")
            new = Metric()
            new.description, new.name = metric.description, metric.name + end
            new.unit = metric.unit if what == "sum" else "1"
            new.sum.aggregation_temporality = temporality  # type: ignore[assignment]
            new.sum.is_monotonic = monotonic
            for dp in getattr(metric, kind).data_points:  # type: ignore[arg-type]
                if what == "sum" and kind != "summary" and not dp.HasField("sum"):
                    continue
                out = new.sum.data_points.add()
                out.attributes.extend(dp.attributes)
                if what == "sum":
                    out.as_double = dp.sum
                else:
                    out.as_int = _to_int64(dp.count)
                out.start_time_unix_nano, out.time_unix_nano = dp.start_time_unix_nano, dp.time_unix_nano
            if new.sum.data_points:
                env.scope.metrics.add().CopyFrom(new)
        return run


_extract("extract_sum_metric", "_sum", "sum")
_extract("extract_count_metric", "_count", "count")


@editor("copy_metric", "?name:string, ?description:string, ?unit:string", contexts=METRIC)
def copy_metric(name: Getter | None, description: Getter | None, unit: Getter | None) -> Run:
    def run(env: Env) -> None:
        new = env.scope.metrics.add()
        new.CopyFrom(env.item)
        # The copy is in place before the names are read: a name that fails leaves it as copied.
        if name is not None:
            new.name = name(env)
        if description is not None:
            new.description = description(env)
        if unit is not None:
            new.unit = unit(env)
    return run


# ---------------------------------------------------------------- scale_metric

def _scale_exemplars(exemplars: Any, multiplier: float) -> None:
    for ex in exemplars:
        which = ex.WhichOneof("value")
        if which == "as_int":
            ex.as_int = go_float_to_int64(float(ex.as_int) * multiplier)
        elif which == "as_double":
            ex.as_double = ex.as_double * multiplier


@editor("scale_metric", "multiplier:lit_float, ?unit:string", contexts=METRIC)
def scale_metric(multiplier: float, unit: Getter | None) -> Run:
    def run(env: Env) -> None:
        metric = env.item
        new_unit = None
        if unit is not None:
            try:
                new_unit = unit(env)
            except EvalError as exc:
                raise EvalError(f"could not get unit from ScaleArguments: {exc}") from None
        kind = _kind(metric)
        if kind in ("gauge", "sum"):
            for dp in getattr(metric, kind).data_points:
                which = dp.WhichOneof("value")
                if which == "as_int":
                    dp.as_int = go_float_to_int64(float(dp.as_int) * multiplier)
                elif which == "as_double":
                    dp.as_double = dp.as_double * multiplier
        elif kind == "histogram":
            for hp in metric.histogram.data_points:
                for field in ("sum", "min", "max"):
                    if hp.HasField(field):
                        setattr(hp, field, getattr(hp, field) * multiplier)
                bounds = [b * multiplier for b in hp.explicit_bounds]
                del hp.explicit_bounds[:]
                hp.explicit_bounds.extend(bounds)
                _scale_exemplars(hp.exemplars, multiplier)
        elif kind == "summary":
            for sp in metric.summary.data_points:
                sp.sum = sp.sum * multiplier
                for q in sp.quantile_values:
                    q.value = q.value * multiplier
        elif kind == "exponential_histogram":
            raise EvalError("exponential histograms are not supported by the 'scale_metric' function")
        else:
            raise EvalError(f"unsupported metric type: '{_TYPE_NAMES[kind]}'")
        if new_unit is not None:
            metric.unit = new_unit
    return run


# ---------------------------------------------------------------- aggregation (coreinternal/aggregateutil)

_AGGREGATIONS = ("sum", "mean", "min", "max", "median", "count")


def _aggregation(name: str) -> str:
    if name not in _AGGREGATIONS:
        raise ValueError(f"invalid aggregation function: 'unsupported function: '{name}'', valid options: "
                         f"{', '.join(_AGGREGATIONS)}")
    return name


def _points_of(metric: Metric) -> Any:
    kind = _kind(metric)
    return getattr(metric, kind).data_points if kind is not None else ()


def _details(metric: Metric) -> Metric:
    """`CopyMetricDetails`: name, unit, description and an empty data field of the same type."""
    new = Metric()
    new.name, new.unit, new.description = metric.name, metric.unit, metric.description
    kind = _kind(metric)
    if kind is not None:
        getattr(new, kind).SetInParent()
        if kind in ("sum", "histogram", "exponential_histogram"):
            getattr(new, kind).aggregation_temporality = getattr(metric, kind).aggregation_temporality
        if kind == "sum":
            new.sum.is_monotonic = metric.sum.is_monotonic
    return new


def _group_key(dp: Any, kind: str, by_start: bool) -> str:
    """`dataPointHashKey`: the point's attributes, its timestamp and what else must match to merge."""
    parts: list[Any] = [{kv.key: anyvalue.to_raw(kv.value) for kv in dp.attributes}, str(dp.time_unix_nano)]
    if kind == "histogram":
        parts.extend(dp.explicit_bounds)
        if by_start:
            parts.append(str(dp.start_time_unix_nano))
        parts.extend([dp.HasField("min"), dp.HasField("max"), dp.flags])
    elif kind == "exponential_histogram":
        parts.extend([dp.scale, dp.HasField("min"), dp.HasField("max"), dp.flags])
        if by_start:
            parts.append(str(dp.start_time_unix_nano))
    elif by_start:
        parts.append(str(dp.start_time_unix_nano))
    return json_marshal(parts)


def _aggregate(metric: Metric, how: str) -> None:
    """`GroupDataPoints` then `MergeDataPoints` into a new metric that replaces `metric`. A summary
    keeps no points (the Collector groups none of them)."""
    kind = _kind(metric)
    new = _details(metric)
    if kind is not None and kind != "summary":
        field = getattr(metric, kind)
        by_start = kind != "gauge" and field.aggregation_temporality == 1
        groups: dict[str, list[Any]] = {}
        for dp in field.data_points:
            groups.setdefault(_group_key(dp, kind, by_start), []).append(dp)
        out = getattr(new, kind).data_points
        for group in groups.values():
            if kind in ("gauge", "sum"):
                _merge_numbers(group, how, out.add())
            else:
                _merge_distributions(group, out.add(),
                                     _explicit_buckets if kind == "histogram" else _exponential_buckets)
    metric.CopyFrom(new)


def _double(dp: Any) -> float:
    which = dp.WhichOneof("value")
    return float(dp.as_double if which == "as_double" else dp.as_int if which == "as_int" else 0)


def _int(dp: Any) -> int:
    which = dp.WhichOneof("value")
    if which == "as_double":
        return go_float_to_int64(dp.as_double)
    return int(dp.as_int) if which == "as_int" else 0


def _go_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _merge_numbers(group: list[Any], how: str, dp: Any) -> None:
    dp.CopyFrom(group[0])
    n = len(group)
    which = dp.WhichOneof("value")
    if which == "as_double":
        values = [dp.as_double]
        for other in group[1:]:
            v = _double(other)
            if how in ("sum", "mean"):
                dp.as_double = dp.as_double + v
            elif how == "max":
                dp.as_double = _go_max(dp.as_double, v)
            elif how == "min":
                dp.as_double = _go_min(dp.as_double, v)
            elif how == "median":
                values.append(v)
            else:
                dp.as_double = float(n)
            dp.start_time_unix_nano = min(dp.start_time_unix_nano, other.start_time_unix_nano)
        if how == "mean":
            dp.as_double = dp.as_double / n
        elif how == "median" and n > 1:
            values.sort()
            mid = n // 2
            dp.as_double = values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2
    elif which == "as_int":
        ints = [dp.as_int]
        for other in group[1:]:
            if how in ("sum", "mean"):
                dp.as_int = _to_int64(dp.as_int + other.as_int)  # the other's int value, 0 for a double
            elif how == "max":
                dp.as_int = max(dp.as_int, _int(other))
            elif how == "min":
                dp.as_int = min(dp.as_int, _int(other))
            elif how == "median":
                ints.append(_int(other))
            else:
                dp.as_int = n
            dp.start_time_unix_nano = min(dp.start_time_unix_nano, other.start_time_unix_nano)
        if how == "median" and n > 1:
            ints.sort()
            mid = n // 2
            dp.as_int = ints[mid] if n % 2 else _go_div(_to_int64(ints[mid - 1] + ints[mid]), 2)
        elif how == "mean":
            dp.as_int = _go_div(dp.as_int, n)


def _go_max(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


def _go_min(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return min(a, b)


def _merge_distributions(group: list[Any], dp: Any, merge_buckets: Callable[[Any, Any], None]) -> None:
    """`mergeHistogramDataPoints` / `mergeExponentialHistogramDataPoints`: the first point takes in
    the others' counts, sums, extremes (when it has them), buckets and exemplars; an empty one is
    passed over."""
    dp.CopyFrom(group[0])
    for other in group[1:]:
        if other.count == 0:
            continue
        dp.count = (dp.count + other.count) % _U64
        dp.sum = dp.sum + other.sum
        if dp.HasField("min") and dp.min > other.min:
            dp.min = other.min
        if dp.HasField("max") and dp.max < other.max:
            dp.max = other.max
        merge_buckets(dp, other)
        dp.exemplars.extend(other.exemplars)
        dp.start_time_unix_nano = min(dp.start_time_unix_nano, other.start_time_unix_nano)


def _explicit_buckets(dp: Any, other: Any) -> None:
    for b, count in enumerate(other.bucket_counts):
        if b >= len(dp.bucket_counts):
            raise EvalError(f"index out of range [{b}] with length {len(dp.bucket_counts)}")
        dp.bucket_counts[b] = (dp.bucket_counts[b] + count) % _U64


def _exponential_buckets(dp: Any, other: Any) -> None:
    dp.zero_count = (dp.zero_count + other.zero_count) % _U64
    for side in ("negative", "positive"):
        mine, theirs = getattr(dp, side), getattr(other, side)
        moved = mine.offset != theirs.offset
        counts = list(mine.bucket_counts)
        _merge_buckets(counts, list(theirs.bucket_counts), mine.offset, theirs.offset)
        if moved and theirs.bucket_counts:
            mine.offset = min(mine.offset, theirs.offset)
            while counts and counts[0] == 0:
                counts.pop(0)
        del mine.bucket_counts[:]
        mine.bucket_counts.extend(counts)


def _merge_buckets(tgt: list[int], src: list[int], tgt_off: int, src_off: int) -> None:
    """`mergeExponentialHistogramBuckets`, quirks kept: a source starting lower has its non-empty
    buckets pushed in front one by one, whatever the gap."""
    if tgt_off == src_off:
        for b, count in enumerate(src):
            if b < len(tgt):
                tgt[b] = (tgt[b] + count) % _U64
            else:
                tgt.append(count)
        return
    if src_off < tgt_off:
        for count in reversed(src):
            if count > 0:
                tgt.insert(0, count)
        return
    for b, count in enumerate(src):
        if count == 0:
            continue
        idx = b + (src_off - tgt_off)
        while len(tgt) <= idx:
            tgt.append(0)
        tgt[idx] = (tgt[idx] + count) % _U64


@editor("aggregate_on_attributes", "aggregation_function:lit_string, ?attributes:lit_strings", contexts=METRIC)
def aggregate_on_attributes(aggregation_function: str, attributes: list[str] | None) -> Run:
    how = _aggregation(aggregation_function)
    keep = None if attributes is None else frozenset(attributes)

    def run(env: Env) -> None:
        metric = env.item
        if _kind(metric) == "summary":
            raise EvalError("aggregate_on_attributes does not support aggregating Summary metrics")
        if keep is not None:
            for dp in _points_of(metric):
                kept = [kv for kv in dp.attributes if kv.key in keep]
                if len(kept) != len(dp.attributes):
                    del dp.attributes[:]
                    dp.attributes.extend(kept)
        _aggregate(metric, how)
    return run


@editor("aggregate_on_attribute_value",
        "aggregation_function:lit_string, attribute:lit_string, values:lit_strings, new_value:lit_string",
        contexts=METRIC)
def aggregate_on_attribute_value(aggregation_function: str, attribute: str, values: list[str],
                                 new_value: str) -> Run:
    how = _aggregation(aggregation_function)

    def run(env: Env) -> None:
        metric = env.item
        for dp in _points_of(metric):
            found = anyvalue.get(dp.attributes, attribute)
            if found is None:
                continue
            for v in values:
                # pdata's Str() of a value that is not a string is "".
                current = found.string_value if found.WhichOneof("value") == "string_value" else ""
                if current == v:
                    found.string_value = new_value
        _aggregate(metric, how)
    return run


# ---------------------------------------------------------------- exponential to explicit histogram

def _upper(count: int, upper: float, lower: float, bounds: list[float], out: list[int]) -> None:
    for j, bound in enumerate(bounds):
        if upper <= bound:
            out[j] += count
            return
    out[-1] += count


def _midpoint(count: int, upper: float, lower: float, bounds: list[float], out: list[int]) -> None:
    mid = (upper + lower) / 2
    for j, bound in enumerate(bounds):
        if mid <= bound:
            out[j - 1 if j > 0 else j] += count
            return
    out[-1] += count


def _uniform(count: int, upper: float, lower: float, bounds: list[float], out: list[int]) -> None:
    start = next((i for i, b in enumerate(bounds) if lower <= b), len(bounds))
    end = next((i for i in range(start, len(bounds)) if upper <= bounds[i]), len(bounds))
    end = min(end, len(bounds) - 1)
    if end > start:
        each, remainder = divmod(count, end - start + 1)
        for j in range(start, end + 1):
            out[j] += each
            if remainder > 0:
                out[j] += 1
                remainder -= 1
    else:
        out[start] += count


def _random(count: int, upper: float, lower: float, bounds: list[float], out: list[int]) -> None:
    start = 0
    while start < len(bounds) and bounds[start] < lower:
        start += 1
    end = start
    while end < len(bounds) and bounds[end] < upper:
        end += 1
    end = min(end, len(bounds) - 1)
    if end <= start:
        out[start] += count
        return
    width = upper - lower
    allocated = 0
    for j in range(start, end + 1):
        low = lower if j == 0 else bounds[j - 1]
        high = upper if j == len(bounds) else bounds[j]
        share = int(count * ((min(high, upper) - max(low, lower)) / width))
        given = int(random.random() * share)
        out[j] += given
        allocated += given
    rest = count - allocated
    if rest > _ONE_BY_ONE:
        # A count from the data can be 2**63: hand most of the rest out evenly, so the work depends on
        # the number of buckets, not on the count (the Collector loops once per unit).
        n = end - start + 1
        for j in range(start, end + 1):
            out[j] += (rest - _ONE_BY_ONE) // n
        rest = _ONE_BY_ONE + (rest - _ONE_BY_ONE) % n
    for _ in range(rest):
        out[random.randint(start, end)] += 1


# Up to this many units of a count are placed one by one at random, as the Collector places them.
_ONE_BY_ONE = 10_000


_DISTRIBUTIONS: dict[str, Callable[[int, float, float, list[float], list[int]], None]] = {
    "upper": _upper, "midpoint": _midpoint, "random": _random, "uniform": _uniform,
}


def bucket_counts(dp: Any, bounds: list[float], distribute: Callable[..., None]) -> list[int]:
    """`calculateBucketCounts`: one count per bound (no overflow bucket of its own: the last bound's
    takes what lies above), the zero bucket to the first when it is 0, negative buckets dropped."""
    factor = math.ldexp(math.log(2), -dp.scale)
    out = [0] * len(bounds)
    if dp.zero_count > 0 and bounds[0] == 0:
        out[0] += dp.zero_count
    for pos, count in enumerate(dp.positive.bucket_counts):
        index = dp.positive.offset + pos
        upper = _exp((index + 1) * factor)
        lower = _exp(index * factor)
        if lower > bounds[-1]:
            out[-1] += count
            continue
        for b in range(1, len(bounds)):
            if lower > bounds[b - 1] and upper <= bounds[b]:
                out[b - 1] += count
                break
        else:
            distribute(count, upper, lower, bounds, out)
    return [c % _U64 for c in out]


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


@editor("convert_exponential_histogram_to_histogram", "distribution_fn:lit_string, explicit_bounds:lit_floats",
        contexts=METRIC)
def convert_exponential_histogram_to_histogram(distribution_fn: str, explicit_bounds: list[float]) -> Run:
    name = distribution_fn or "random"
    if name not in _DISTRIBUTIONS:
        raise ValueError(f"invalid conversion function: {name}, must be one of [upper, midpoint, random, uniform]")
    if not explicit_bounds:
        raise ValueError(f"explicit bounds cannot be empty: {explicit_bounds}")
    distribute = _DISTRIBUTIONS[name]
    bounds = list(explicit_bounds)

    def run(env: Env) -> None:
        metric = env.item
        if _kind(metric) != "exponential_histogram":
            return
        new = Metric()
        new.name, new.description, new.unit = metric.name, metric.description, metric.unit
        hist = new.histogram
        hist.SetInParent()
        hist.aggregation_temporality = metric.exponential_histogram.aggregation_temporality
        for ep in metric.exponential_histogram.data_points:
            hp = hist.data_points.add()
            hp.start_time_unix_nano, hp.time_unix_nano = ep.start_time_unix_nano, ep.time_unix_nano
            hp.count, hp.sum, hp.min, hp.max = ep.count, ep.sum, ep.min, ep.max
            hp.exemplars.extend(ep.exemplars)
            hp.explicit_bounds.extend(bounds)
            hp.bucket_counts.extend(bucket_counts(ep, bounds, distribute))
            hp.attributes.extend(ep.attributes)
        metric.CopyFrom(new)
    return run
