"""What the `transform` and `filter` processors share: their config's statement/condition groups,
compiled once, and the walk over a request that gives each group the items of its context.

A group has a context (given, or inferred from its paths as the Collector infers it), optional
conditions (ORed) and statements or conditions. `error_mode` (the processor's, or the group's own):
`propagate` refuses the request with the error, `ignore` reports the error and goes on (a condition
that fails counts as false), `silent` goes on without reporting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.batch import RequestContext
from pipelines.ottl.compile import Predicate, compile_condition, infer, statement_functions, statement_paths
from pipelines.ottl.contexts import Env
from pipelines.ottl.lexer import OttlError

ErrorMode = Literal["ignore", "silent", "propagate"]
Report = Callable[[str], None]

# The contexts each signal's statements may be written in, from the top of a request down.
SIGNAL_CONTEXTS: dict[str, tuple[str, ...]] = {
    "traces": ("resource", "scope", "span", "spanevent"),
    "metrics": ("resource", "scope", "metric", "datapoint"),
    "logs": ("resource", "scope", "log"),
}
STATEMENT_KEYS = {"traces": "trace_statements", "metrics": "metric_statements", "logs": "log_statements"}


class OttlRefusal(Exception):
    """A statement or condition failed with `error_mode: propagate`: the request is refused."""


def infer_context(statements: list[str] | tuple[str, ...], conditions: list[str] | tuple[str, ...],
                  signal: str) -> str:
    """The context the Collector infers for a group: from the paths of its statements and conditions."""
    paths = [p for text in statements for p in statement_paths(text, "statement")]
    paths += [p for text in conditions for p in statement_paths(text, "condition")]
    functions = {f for text in statements for f in statement_functions(text, "statement")}
    functions |= {f for text in conditions for f in statement_functions(text, "condition")}
    return infer(paths, SIGNAL_CONTEXTS[signal], functions)


def check_context(context: str, signal: str) -> None:
    if context not in SIGNAL_CONTEXTS[signal]:
        raise OttlError(f'context "{context}" is not available for {signal} '
                        f'(use one of {", ".join(SIGNAL_CONTEXTS[signal])})')


@dataclass
class Runner:
    """Runs compiled functions under an error mode, reporting what fails."""

    mode: ErrorMode
    report: Report

    def fail(self, what: str, exc: Exception) -> None:
        message = f"failed to execute {what}: {exc}"
        if self.mode == "propagate":
            raise OttlRefusal(message) from None
        if self.mode == "ignore":
            self.report(message)

    def holds(self, predicate: Predicate, text: str, env: Env) -> bool:
        try:
            return predicate(env)
        except Exception as exc:
            self.fail(f'condition "{text}"', exc)
            return False

    def run(self, fn: Callable[[Env], None], text: str, env: Env) -> None:
        try:
            fn(env)
        except Exception as exc:
            self.fail(f'statement "{text}"', exc)


def compile_conditions(texts: tuple[str, ...], context: str) -> list[tuple[str, Predicate]]:
    return [(t, compile_condition(t, context)) for t in texts]


# ---------------------------------------------------------------- walking a request

@dataclass(frozen=True)
class Shape:
    resources: str
    scopes: str
    items: str


SHAPES = {
    "traces": Shape("resource_spans", "scope_spans", "spans"),
    "metrics": Shape("resource_metrics", "scope_metrics", "metrics"),
    "logs": Shape("resource_logs", "scope_logs", "log_records"),
}


def points(metric: Any) -> Any:
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind is not None else ()


# How many items the statements of one group may append to a scope of n and then visit: at most
# APPEND_FACTOR * n + APPEND_SLACK in all (the Collector has no bound: `copy_metric()` with no where
# clause copies its copies until the process dies).
APPEND_FACTOR = 4
APPEND_SLACK = 16


def visit(msg: Any, signal: str, context: str, ctx: RequestContext,
          on_runaway: Callable[[str], None] | None = None) -> Iterator[Env]:
    """Each item of `context` in the request, as the Env a statement of that context sees. The Env
    is reused from item to item: use it before asking for the next.

    Items are walked by index with the length read again at each step, as the Collector's loops
    (`for k := 0; k < metrics.Len(); k++`): a metric that a statement appends to its scope
    (`copy_metric`, `extract_sum_metric`, ...) is visited in its turn by the same group, as the
    transform processor's README warns."""
    shape = SHAPES[signal]
    env = Env(ctx)
    for res in getattr(msg, shape.resources):
        env.resource = res
        if context == "resource":
            env.cache = None
            yield env
            continue
        for scope in getattr(res, shape.scopes):
            env.scope = scope
            if context == "scope":
                env.cache = None
                yield env
                continue
            items = getattr(scope, shape.items)
            original = len(items)
            limit = APPEND_FACTOR * original + APPEND_SLACK
            k = 0
            while k < len(items):
                if k >= limit:
                    del items[original:]
                    if on_runaway is not None:
                        on_runaway(f"the statements appended more than {limit - original} items to one scope "
                                   f"of {original} (a copy_metric without a where clause that leaves out "
                                   "its copies?): what they appended there is taken back")
                    break
                item = items[k]
                k += 1
                env.item = item
                if context == "spanevent":
                    for i, event in enumerate(item.events):
                        env.event, env.event_index = event, i
                        env.cache = None
                        yield env
                elif context == "datapoint":
                    for point in points(item):
                        env.point = point
                        env.cache = None
                        yield env
                else:
                    env.cache = None
                    yield env
