"""The `filter` processor (contrib `processor/filterprocessor`, v0.161.0): drop telemetry that OTTL
conditions match.

Config: `error_mode` (default `ignore`, as at v0.161); the context blocks `traces: {resource, span, spanevent}`,
`metrics: {resource, metric, datapoint}`, `logs: {resource, log_record}` (conditions written in that
context, `name == "x"` or `span.name == "x"`); and `trace_conditions` / `metric_conditions` /
`log_conditions`, where each condition's context is inferred from its paths (`span.name` -> span),
or groups `{context, conditions, error_mode}`. Every condition of every group is ORed: an item any
condition matches is dropped. Conditions run from the top of the request down (resource, scope,
item, span event or data point); a dropped resource's items are never looked at.

When conditions below a level ran, a level left empty by them is removed too (a scope whose spans
were all dropped, a resource whose scopes were), and a metric whose data points were all dropped;
a request left with nothing is acknowledged and goes no further (the Collector's
`ErrSkipProcessingData`). A condition that fails follows `error_mode`: `propagate` refuses the
request (retryable, as the Collector answers an error that is not permanent), `ignore` reports it
and counts the condition as false, `silent` counts it as false.

The legacy `include`/`exclude` match properties (`spans`, `metrics.include`, `logs.exclude`, ...)
are refused by `validate` with their path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines import wire
from pipelines.batch import Batch
from pipelines.config_types import unsupported
from pipelines.errors import RetryableError
from pipelines.ottl.compile import Predicate, compile_condition
from pipelines.ottl.contexts import Env
from pipelines.ottl.grammar import parse_condition
from pipelines.ottl.lexer import OttlError
from pipelines.ottl.needles import Needs, necessary
from pipelines.ottl_processors.groups import (
    SHAPES,
    ErrorMode,
    OttlRefusal,
    Report,
    Runner,
    check_context,
    infer_context,
    points,
)

Context = Literal["", "resource", "scope", "span", "spanevent", "metric", "datapoint", "log"]
_LEGACY = "the legacy include/exclude match properties are not supported: write OTTL conditions"


@dataclass(frozen=True)
class TraceFilters:
    resource: tuple[str, ...] = ()
    span: tuple[str, ...] = ()
    spanevent: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricFilters:
    resource: tuple[str, ...] = ()
    metric: tuple[str, ...] = ()
    datapoint: tuple[str, ...] = ()
    include: Any = unsupported(_LEGACY)
    exclude: Any = unsupported(_LEGACY)
    regexp: Any = unsupported(_LEGACY)


@dataclass(frozen=True)
class LogFilters:
    resource: tuple[str, ...] = ()
    log_record: tuple[str, ...] = ()
    include: Any = unsupported(_LEGACY)
    exclude: Any = unsupported(_LEGACY)


@dataclass(frozen=True)
class ContextConditions:
    context: Context = ""
    conditions: tuple[str, ...] = ()
    error_mode: ErrorMode | None = None


@dataclass(frozen=True)
class Config:
    # `ignore`: at v0.161 the Collector skips what fails unless `propagate` is asked for (the
    # differential corpus shows it; older releases propagated by default).
    error_mode: ErrorMode = "ignore"
    traces: TraceFilters = field(default_factory=TraceFilters)
    metrics: MetricFilters = field(default_factory=MetricFilters)
    logs: LogFilters = field(default_factory=LogFilters)
    trace_conditions: tuple[str | ContextConditions, ...] = ()
    metric_conditions: tuple[str | ContextConditions, ...] = ()
    log_conditions: tuple[str | ContextConditions, ...] = ()
    spans: Any = unsupported(_LEGACY)
    profiles: Any = unsupported("profiles are not a signal this gateway carries")
    profile_conditions: Any = unsupported("profiles are not a signal this gateway carries")

    def validate(self) -> list[str]:
        errors: list[str] = []
        for signal in ("traces", "metrics", "logs"):
            try:
                compile_filters(self, signal, lambda message: None)
            except FilterError as exc:
                errors.append(f"{exc.where}: {exc}")
        return errors


class FilterError(OttlError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


_BLOCKS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "traces": ("trace_conditions", (("resource", "resource"), ("span", "span"), ("spanevent", "spanevent"))),
    "metrics": ("metric_conditions", (("resource", "resource"), ("metric", "metric"), ("datapoint", "datapoint"))),
    "logs": ("log_conditions", (("resource", "resource"), ("log_record", "log"))),
}


@dataclass
class Conditions:
    """The conditions of one context, each with the runner of its error mode."""

    items: list[tuple[str, Predicate, Runner]] = field(default_factory=list)
    # What bytes each condition needs in the request to be able to hold (None: it cannot be told).
    needs: list[Needs | None] = field(default_factory=list)

    def match(self, env: Env) -> bool:
        return any(runner.holds(pred, text, env) for text, pred, runner in self.items)

    def may_match(self, data: bytes) -> bool:
        return any(n is None or n.present(data) for n in self.needs)


def compile_filters(config: Config, signal: str, report: Report) -> dict[str, Conditions]:
    """context -> its conditions, for `signal`; FilterError names a condition that does not compile."""
    out: dict[str, Conditions] = {}
    default = Runner(config.error_mode, report)

    def add(context: str, text: str, runner: Runner, where: str) -> None:
        try:
            check_context(context, signal)
            pred = compile_condition(text, context)
        except OttlError as exc:
            raise FilterError(where, f"{exc} (in {text!r})") from None
        conditions = out.setdefault(context, Conditions())
        conditions.items.append((text, pred, runner))
        conditions.needs.append(necessary(parse_condition(text), context))

    key, blocks = _BLOCKS[signal]
    block = getattr(config, signal)
    for name, context in blocks:
        for i, text in enumerate(getattr(block, name)):
            add(context, text, default, f"{signal}::{name}[{i}]")
    entries = getattr(config, key)
    flat = [e for e in entries if isinstance(e, str)]
    if flat and len(flat) != len(entries):
        raise FilterError(key, "configuring multiple configuration styles is not supported, please use only "
                               "Basic configuration or only Advanced configuration")
    for i, entry in enumerate(entries):
        group = entry if isinstance(entry, ContextConditions) else ContextConditions(conditions=(entry,))
        runner = Runner(group.error_mode, report) if group.error_mode else default
        for j, text in enumerate(group.conditions):
            where = f"{key}[{i}]" if isinstance(entry, str) else f"{key}[{i}]::conditions[{j}]"
            context = group.context
            if not context:
                try:
                    context = infer_context((), (text,), signal)
                except OttlError as exc:
                    raise FilterError(where, f"{exc} (in {text!r})") from None
            add(context, text, runner, where)
    return out


class FilterProcessor:
    def __init__(self, config: Config, signal: str, report: Report = lambda message: None) -> None:
        self.signal = signal
        self.shape = SHAPES[signal]
        self.by_context = compile_filters(config, signal, report)
        order = {"traces": ("resource", "scope", "span", "spanevent"),
                 "metrics": ("resource", "scope", "metric", "datapoint"),
                 "logs": ("resource", "scope", "log")}[signal]
        self.levels = [self.by_context.get(c) for c in order]

    def process(self, batch: Batch) -> Batch | None:
        if not self.by_context:
            return batch
        # A request none of whose conditions can hold (their strings are not in its bytes: a health
        # check filter on a request without health checks) passes as it came, unparsed, unless it has
        # an empty scope or resource, which filtering would remove (traces: the wire split tells).
        if self.signal == "traces" and not any(c.may_match(batch.data()) for c in self.by_context.values()) \
                and not _has_empty_levels(batch.data()):
            return batch
        # Decide on the shared read-only parse; copy and delete only when something goes.
        removals: list[tuple[tuple[int, ...], list[int]]] = []
        try:
            self._plan(batch.message(), Env(batch.context), removals)
        except OttlRefusal as exc:
            raise RetryableError(str(exc)) from None
        if not removals:
            return batch
        msg = batch.mutable_message()
        for path, dropped in removals:
            container = _container(msg, self.shape, self.signal, path)
            for i in reversed(dropped):
                del container[i]
        batch.changed()
        return batch if batch.items or len(getattr(msg, self.shape.resources)) else None

    def _plan(self, msg: Any, env: Env, removals: list[tuple[tuple[int, ...], list[int]]]) -> None:
        """What to remove, as (path of the container, indexes to drop), deepest containers first: the
        order in which deleting keeps every later path valid."""
        res_c, scope_c, item_c, sub_c = self.levels + [None] * (4 - len(self.levels))
        below_resource = scope_c or item_c or sub_c
        below_scope = item_c or sub_c
        shape = self.shape
        traces = self.signal == "traces"

        def sweep(entries: Any, keep: Callable[[Any, tuple[int, ...]], bool], path: tuple[int, ...]) -> int:
            """Ask `keep` of each entry; record the dropped; how many are left."""
            dropped = [i for i, entry in enumerate(entries) if not keep(entry, (*path, i))]
            if dropped:
                removals.append((path, dropped))
            return len(entries) - len(dropped)

        def keep_resource(res: Any, path: tuple[int, ...]) -> bool:
            env.resource = res
            env.cache = None
            if res_c is not None and res_c.match(env):
                return False
            return not below_resource or sweep(getattr(res, shape.scopes), keep_scope, path) > 0

        def keep_scope(scope: Any, path: tuple[int, ...]) -> bool:
            env.scope = scope
            env.cache = None
            if scope_c is not None and scope_c.match(env):
                return False
            return not below_scope or sweep(getattr(scope, shape.items), keep_item, path) > 0

        def keep_item(item: Any, path: tuple[int, ...]) -> bool:
            env.item = item
            env.cache = None
            if item_c is not None and item_c.match(env):
                return False
            if sub_c is None:
                return True
            if traces:
                sweep(item.events, keep_event, path)
                return True
            pts = points(item)
            # A metric without data points is not a datapoint filter's to remove.
            return not len(pts) or sweep(pts, keep_point, path) > 0

        def keep_event(event: Any, path: tuple[int, ...]) -> bool:
            env.event, env.event_index = event, path[-1]
            env.cache = None
            return not sub_c.match(env)  # type: ignore[union-attr]

        def keep_point(point: Any, path: tuple[int, ...]) -> bool:
            env.point = point
            env.cache = None
            return not sub_c.match(env)  # type: ignore[union-attr]

        sweep(getattr(msg, shape.resources), keep_resource, ())


def _container(msg: Any, shape: Any, signal: str, path: tuple[int, ...]) -> Any:
    """The repeated field a removal path names: resources, a resource's scopes, a scope's items, an
    item's span events or data points."""
    node = getattr(msg, shape.resources)
    names = (shape.scopes, shape.items)
    for depth, i in enumerate(path):
        entry = node[i]
        if depth >= 2:
            return entry.events if signal == "traces" else points(entry)
        node = getattr(entry, names[depth])
    return node


def _has_empty_levels(data: bytes) -> bool:
    """Whether a traces request has a resource without scopes or a scope without spans (or does not
    split: then the full path decides)."""
    try:
        req = wire.walk(data)
    except wire.WireError:
        return True
    return any(not res.scopes or any(sc.first == sc.last for sc in res.scopes) for res in req.resources)
