"""The `routing` connector's decisions (contrib `connector/routingconnector`): which pipelines get
which part of a request.

Semantics at Collector v0.161.0: routes are tried in table order and each takes, out of what earlier
routes left, the part its condition matches (a resource, or a span, log record, metric or data point
with its resource and scope); what no route takes goes to `default_pipelines`, or is dropped when there
are none (counted in `Routed.unrouted`). A `request` route matches the whole remaining request or
nothing. A route without `context` gets the one its paths name (`span.name` -> span), else `resource`.
A route that says exactly what an earlier one says (same context and condition) is ignored with a
warning, as there.

`match_once: false` (removed from the Collector in v0.120.0, kept here for old configs) gives every
item to every route that matches it, and to the defaults when none does or an evaluation failed.

Errors while evaluating (e.g. indexing a string: `body["k"]` on a text body) follow `error_mode`:
`propagate` refuses the request (PermanentError), `ignore` counts the condition as not matching and
reports the error in `Routed.errors` (each distinct message once per request), `silent` does the same
without reporting.

Our extension: in the `request` context, `request["auth.tenant"]` is the tenant the authenticator
(`bearertokenauth`) found for the request; and conditions there may combine comparisons with `and`,
`or`, `not` and use `IsMatch` (see `pipelines.ottl.compile.compile_request`).

The output groups pipelines that receive the same items, so each pipeline appears once. When every
item goes to the same pipelines the request is passed on as it came, without re-encoding; a table of
`request` routes only does not even parse it. When items of a resource go different ways, each part
holds copies of their resource and scope; a resource (or scope, or metric) with no items is then left
out, where the Collector would pass it, empty, to the default pipelines.

Not supported (refused by the config decoder or at validation, never misread): the `action` key
(move/copy), `route([...])` statements naming their pipelines, and the `otelcol` context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pipelines import otlp
from pipelines.batch import Batch, Signal
from pipelines.errors import PermanentError
from pipelines.ottl.compile import Compiled, compile_route
from pipelines.ottl.contexts import Env
from pipelines.ottl.lexer import OttlError

Context = Literal["", "resource", "span", "log", "metric", "datapoint", "request"]
ErrorMode = Literal["propagate", "ignore", "silent"]

SIGNAL_CONTEXTS: dict[str, tuple[str, ...]] = {
    "traces": ("resource", "span", "request"),
    "metrics": ("resource", "metric", "datapoint", "request"),
    "logs": ("resource", "log", "request"),
}
# How deep in the request a context decides: 0 the whole request, 1 a resource, 3 an item, 4 a point.
_LEVEL = {"request": 0, "resource": 1, "span": 3, "log": 3, "metric": 3, "datapoint": 4}


@dataclass(frozen=True)
class RouteConfig:
    """One `table` entry."""

    statement: str = ""
    condition: str = ""
    # "" (the default): inferred from the paths, as the Collector does since it made `context` optional.
    context: Context = ""
    pipelines: tuple[str, ...] = ()

    def validate(self) -> list[str]:
        """The Collector's checks of one entry (its condition is parsed by `Config.validate`)."""
        errors = []
        if not self.statement and not self.condition:
            errors.append("invalid route: no condition or statement provided")
        elif self.statement and self.condition:
            errors.append("invalid route: both condition and statement provided")
        if not self.pipelines:
            errors.append("invalid route: no pipelines defined")
        if self.context == "request" and (self.statement or not self.condition):
            errors.append("\"request\" context requires a 'condition'")
        return errors

    def compile(self) -> Compiled:
        """OttlError if the statement or condition does not compile."""
        form = "statement" if self.statement else "condition"
        return compile_route(self.statement or self.condition, form, self.context)


@dataclass(frozen=True)
class Config:
    table: tuple[RouteConfig, ...] = ()
    default_pipelines: tuple[str, ...] = ()
    # `ignore` since v0.157.0, when the `connector.routing.defaultErrorModeIgnore` gate went beta
    # (enabled by default); it was `propagate` before.
    error_mode: ErrorMode = "ignore"
    # The key was removed in v0.120.0; since then the Collector always routes to the first match.
    match_once: bool = True

    def validate(self) -> list[str]:
        """An empty table, and every statement or condition that does not compile, naming its entry.
        The entries' own checks are `RouteConfig.validate` (the config decoder runs both)."""
        if not self.table:
            return ["invalid routing table: the routing table is empty"]
        errors = []
        for i, route in enumerate(self.table):
            if route.validate():
                continue
            try:
                route.compile()
            except OttlError as exc:
                errors.append(f"table[{i}]::{'statement' if route.statement else 'condition'}: {exc}")
        return errors

    def check_pipelines(self, fed: frozenset[str]) -> list[str]:
        """Each pipeline named must be one this connector feeds (one listing it under `receivers`)."""
        errors = []
        for i, route in enumerate(self.table):
            errors += [f'table[{i}]::pipelines: pipeline not found: missing consumer: "{p}"'
                       for p in route.pipelines if p not in fed]
        errors += [f'default_pipelines: pipeline not found: missing consumer: "{p}"'
                   for p in self.default_pipelines if p not in fed]
        return errors

    def check_signal(self, signal: str) -> list[str]:
        """Each route's context (given or inferred) must exist for the signal of the pipelines."""
        allowed = SIGNAL_CONTEXTS[signal]
        errors = []
        for i, route in enumerate(self.table):
            try:
                context = route.compile().context
            except OttlError:
                continue  # reported by validate
            if context not in allowed:
                form = "statement" if route.statement else "condition"
                how = "context" if route.context else f"{form} (inferred context)"
                errors.append(f'table[{i}]::{how}: "{context}" is not valid in a {signal} pipeline; '
                              f"valid: {', '.join(allowed)}")
        return errors


@dataclass
class Routed:
    # Pipeline ids and the part of the request they get; each pipeline id appears once overall.
    parts: list[tuple[tuple[str, ...], Batch]]
    # Evaluation errors swallowed under error_mode `ignore` (for the log); `silent` keeps none.
    errors: list[str]
    # Items (spans, log records, data points) that went nowhere: unmatched, and no default_pipelines.
    unrouted: int = 0


@dataclass(frozen=True)
class _Route:
    index: int
    level: int
    compiled: Compiled
    pipelines: frozenset[str]


# A unit of routing: (resource index, scope index, item index, point index, then their entries).
Unit = tuple[int, int, int, int, Any, Any, Any, Any]


class Router:
    def __init__(self, config: Config, signal: Signal) -> None:
        problems = [m for r in config.table for m in r.validate()]
        problems += config.validate() + config.check_signal(signal)
        if problems:
            raise ValueError("; ".join(problems))
        self.signal: Signal = signal
        self.shape = otlp.SHAPES[signal]
        self.error_mode = config.error_mode
        self.match_once = config.match_once
        self.warnings: list[str] = []
        self.routes: list[_Route] = []
        seen: set[Any] = set()
        for i, rc in enumerate(config.table):
            compiled = rc.compile()
            if compiled.key in seen:
                self.warnings.append(f"Statement {rc.statement or rc.condition!r} already exists in the routing "
                                     f"table, the route with target pipeline(s) {', '.join(rc.pipelines)!r} "
                                     "will be ignored.")
                continue
            seen.add(compiled.key)
            self.routes.append(_Route(i, _LEVEL[compiled.context], compiled, frozenset(rc.pipelines)))
        self.default = frozenset(config.default_pipelines)
        order = [p for r in config.table for p in r.pipelines] + list(config.default_pipelines)
        self.rank = {p: n for n, p in reversed(list(enumerate(order)))}
        self.level = max(r.level for r in self.routes)

    def route(self, batch: Batch) -> Routed:
        """Split `batch` among the pipelines; PermanentError on an evaluation error under `propagate`."""
        env = Env(batch.context)
        errors: list[str] = []
        if self.level == 0:
            [target] = self._decide([(0, 0, 0, 0, None, None, None, None)], env, errors)
            return self._whole(batch, target, errors)
        msg = batch.message()
        units = self._units(msg)
        targets = self._decide(units, env, errors)
        distinct = list(dict.fromkeys(targets))
        if len(distinct) <= 1:
            return self._whole(batch, distinct[0] if distinct else self.default, errors)
        unrouted = sum(self._weight(u) for u, t in zip(units, targets, strict=True) if not t)
        return Routed(self._split(units, targets, distinct, batch), _distinct(errors), unrouted)

    def _whole(self, batch: Batch, target: frozenset[str], errors: list[str]) -> Routed:
        if not target:
            return Routed([], _distinct(errors), batch.items)
        return Routed([(self._ordered(target), batch)], _distinct(errors), 0)

    def _ordered(self, pipelines: frozenset[str] | set[str]) -> tuple[str, ...]:
        return tuple(sorted(pipelines, key=self.rank.__getitem__))

    # ------------------------------------------------------------ deciding

    def _units(self, msg: Any) -> list[Unit]:
        shape = self.shape
        units: list[Unit] = []
        for ri, res in enumerate(getattr(msg, shape.resources)):
            if self.level == 1:
                units.append((ri, -1, -1, -1, res, None, None, None))
                continue
            for si, scope in enumerate(getattr(res, shape.scopes)):
                for ii, item in enumerate(getattr(scope, shape.items)):
                    if self.level == 3:
                        units.append((ri, si, ii, -1, res, scope, item, None))
                        continue
                    kind = item.WhichOneof("data")
                    points = getattr(item, kind).data_points if kind is not None else ()
                    units.extend((ri, si, ii, di, res, scope, item, p) for di, p in enumerate(points))
        return units

    def _weight(self, unit: Unit) -> int:
        if self.level == 1:
            return sum(len(getattr(scope, self.shape.items)) if self.signal != "metrics"
                       else sum(map(otlp.metric_points, scope.metrics))
                       for scope in getattr(unit[4], self.shape.scopes))
        if self.level == 3 and self.signal == "metrics":
            return otlp.metric_points(unit[6])
        return 1

    def _decide(self, units: list[Unit], env: Env, errors: list[str]) -> list[frozenset[str]]:
        """Per unit, the pipelines it goes to."""
        if self.match_once:
            return self._first_match(units, env, errors)
        return self._all_matches(units, env, errors)

    def _first_match(self, units: list[Unit], env: Env, errors: list[str]) -> list[frozenset[str]]:
        targets = [self.default] * len(units)
        remaining = list(range(len(units)))
        for route in self.routes:
            if not remaining:
                break
            cache: dict[tuple[int, ...], int] = {}
            keep = []
            for u in remaining:
                if self._match(route, units[u], env, cache, errors) == 1:
                    targets[u] = route.pipelines
                else:
                    keep.append(u)
            remaining = keep
        return targets

    def _all_matches(self, units: list[Unit], env: Env, errors: list[str]) -> list[frozenset[str]]:
        targets = []
        caches: list[dict[tuple[int, ...], int]] = [{} for _ in self.routes]
        for unit in units:
            chosen: set[str] = set()
            hits = set()
            for route, cache in zip(self.routes, caches, strict=True):
                hit = self._match(route, unit, env, cache, errors)
                hits.add(hit)
                if hit == 1:
                    chosen |= route.pipelines
            # As the Collector did: a failed evaluation also sends the item to the defaults.
            if 1 not in hits or 2 in hits:
                chosen |= self.default
            targets.append(frozenset(chosen))
        return targets

    def _match(self, route: _Route, unit: Unit, env: Env, cache: dict[tuple[int, ...], int],
               errors: list[str]) -> int:
        """1: matches, 0: does not, 2: evaluation failed (under ignore/silent). Cached per the route's
        level, so a resource condition runs once per resource however many items it has."""
        key = unit[:route.level]
        hit = cache.get(key)
        if hit is not None:
            return hit
        predicate = route.compiled.predicate
        if predicate is None:
            hit = 1
        else:
            env.resource, env.scope, env.item, env.point = unit[4:]
            try:
                hit = 1 if predicate(env) else 0
            except Exception as exc:
                if self.error_mode == "propagate":
                    raise PermanentError(f"routing: table[{route.index}]: {exc}") from None
                if self.error_mode == "ignore":
                    errors.append(f"table[{route.index}]: {exc}")
                hit = 2
        cache[key] = hit
        return hit

    # ------------------------------------------------------------ building

    def _split(self, units: list[Unit], targets: list[frozenset[str]],
               distinct: list[frozenset[str]], batch: Batch) -> list[tuple[tuple[str, ...], Batch]]:
        """One request per set of pipelines that get the same units (a pipeline is in one group)."""
        groups: dict[frozenset[int], set[str]] = {}
        for p in set().union(*distinct):
            member_of = frozenset(i for i, d in enumerate(distinct) if p in d)
            groups.setdefault(member_of, set()).add(p)
        index = {d: i for i, d in enumerate(distinct)}
        which = [index[t] for t in targets]
        parts = []
        for member_of, pipelines in groups.items():
            chosen = [u for u, w in zip(units, which, strict=True) if w in member_of]
            part = Batch.from_message(self.signal, self._build(chosen), batch.context)
            parts.append((self._ordered(pipelines), part))
        parts.sort(key=lambda p: self.rank[p[0][0]])
        return parts

    def _build(self, units: list[Unit]) -> Any:
        """A request of `units` in their order, each under a copy of its resource and scope."""
        shape = self.shape
        out = shape.request()
        resources = getattr(out, shape.resources)
        cur: tuple[int, int, int] = (-1, -1, -1)
        res_out: Any = None
        scope_out: Any = None
        points_out: Any = None
        for ri, si, ii, _, res, scope, item, point in units:
            if self.level == 1:
                resources.append(res)
                continue
            if ri != cur[0]:
                res_out = resources.add()
                res_out.resource.CopyFrom(res.resource)
                res_out.schema_url = res.schema_url
                cur = (ri, -1, -1)
            if si != cur[1]:
                scope_out = getattr(res_out, shape.scopes).add()
                scope_out.scope.CopyFrom(scope.scope)
                scope_out.schema_url = scope.schema_url
                cur = (ri, si, -1)
            if self.level == 3:
                getattr(scope_out, shape.items).append(item)
                continue
            if ii != cur[2]:
                metric = getattr(scope_out, shape.items).add()
                metric.CopyFrom(item)  # then keep only the points routed here
                points_out = getattr(metric, item.WhichOneof("data")).data_points
                del points_out[:]
                cur = (ri, si, ii)
            points_out.append(point)
        return out


def _distinct(errors: list[str]) -> list[str]:
    return list(dict.fromkeys(errors))
