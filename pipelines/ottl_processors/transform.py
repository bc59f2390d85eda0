"""The `transform` processor (contrib `processor/transformprocessor`, v0.161.0): OTTL statements that
change traces, metrics and logs.

Config: `error_mode` (default `ignore`, as at v0.161), and per signal `trace_statements` / `metric_statements` /
`log_statements`, each either a flat list of statements (the basic style: one group whose context is
inferred from the paths, e.g. `span.name` -> span; a mixed list runs in its deepest context) or a list of
`{context, conditions, statements, error_mode}` groups (the advanced style; without `context` it is
inferred). Groups run one after the other over the whole request; in a group, each item of the
context gets the statements in order, when one of the group's `conditions` holds (or there are none).
A statement that fails follows `error_mode`: `propagate` refuses the request (retryable, as the
Collector answers an error that is not permanent), `ignore` reports and goes on with the next
statement, `silent` goes on.

A statement in the `resource` or `scope` context visits only resources or scopes, never their items.
A batch is copied only when some group exists for its signal (the parse may be shared with other
pipelines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.batch import Batch
from pipelines.config_types import unsupported
from pipelines.errors import RetryableError
from pipelines.ottl.compile import Statement, compile_statement
from pipelines.ottl.lexer import OttlError
from pipelines.ottl_processors.groups import (
    ErrorMode,
    OttlRefusal,
    Report,
    Runner,
    check_context,
    compile_conditions,
    infer_context,
    visit,
)

Context = Literal["", "resource", "scope", "span", "spanevent", "metric", "datapoint", "log"]


@dataclass(frozen=True)
class ContextStatements:
    """One group of the advanced style."""

    context: Context = ""
    conditions: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    error_mode: ErrorMode | None = None
    shared_cache: bool = unsupported("a cache shared by the statements of a group is not supported", False)


@dataclass(frozen=True)
class Config:
    # `ignore`: at v0.161 the Collector skips what fails unless `propagate` is asked for (the
    # differential corpus shows it; older releases propagated by default).
    error_mode: ErrorMode = "ignore"
    trace_statements: tuple[str | ContextStatements, ...] = ()
    metric_statements: tuple[str | ContextStatements, ...] = ()
    log_statements: tuple[str | ContextStatements, ...] = ()
    profile_statements: tuple[str | ContextStatements, ...] = unsupported(
        "profiles are not a signal this gateway carries", ())
    flatten_data: bool = unsupported("flattening log data per resource is not supported", False)

    def statements(self, signal: str) -> tuple[str | ContextStatements, ...]:
        return {"traces": self.trace_statements, "metrics": self.metric_statements,
                "logs": self.log_statements}[signal]

    def validate(self) -> list[str]:
        errors: list[str] = []
        for signal, key in (("traces", "trace_statements"), ("metrics", "metric_statements"),
                            ("logs", "log_statements")):
            try:
                groups(self, signal)
            except GroupError as exc:
                errors.append(f"{key}{exc.where}: {exc}")
        return errors


class GroupError(OttlError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True)
class Group:
    context: str
    conditions: list[tuple[str, object]]
    statements: list[Statement]
    error_mode: ErrorMode | None


def groups(config: Config, signal: str) -> list[Group]:
    """The signal's statement groups compiled; GroupError names the entry that does not compile."""
    entries = config.statements(signal)
    flat = [e for e in entries if isinstance(e, str)]
    if flat and len(flat) != len(entries):
        raise GroupError("", "configuring multiple configuration styles is not supported, please use only "
                             "Basic configuration or only Advanced configuration")
    if flat:
        return [_group(ContextStatements(statements=tuple(flat)), signal, "")]
    return [_group(e, signal, f"[{i}]") for i, e in enumerate(entries) if isinstance(e, ContextStatements)]


def _group(entry: ContextStatements, signal: str, where: str) -> Group:
    context: str = entry.context
    if not context:
        try:
            context = infer_context(entry.statements, entry.conditions, signal)
        except OttlError as exc:
            raise GroupError(where, str(exc)) from None
    try:
        check_context(context, signal)
    except OttlError as exc:
        raise GroupError(f"{where}::context" if where else "", str(exc)) from None
    prefix = f"{where}::statements" if where else ""
    statements = []
    for i, text in enumerate(entry.statements):
        try:
            statements.append(compile_statement(text, context))
        except OttlError as exc:
            raise GroupError(f"{prefix}[{i}]", f"{exc} (in {text!r})") from None
    conditions = []
    for i, text in enumerate(entry.conditions):
        try:
            conditions += compile_conditions((text,), context)
        except OttlError as exc:
            raise GroupError(f"{where}::conditions[{i}]", f"{exc} (in {text!r})") from None
    return Group(context, conditions, statements, entry.error_mode)  # type: ignore[arg-type]


class TransformProcessor:
    def __init__(self, config: Config, signal: str, report: Report = lambda message: None) -> None:
        self.signal = signal
        self.groups = groups(config, signal)
        self.runners = [Runner(g.error_mode or config.error_mode, report) for g in self.groups]

    def process(self, batch: Batch) -> Batch | None:
        if not self.groups:
            return batch
        msg = batch.mutable_message()  # this stage's own handle: a copy unless it already owns its parse
        try:
            for group, runner in zip(self.groups, self.runners, strict=True):
                self._run(group, runner, msg, batch)
        except OttlRefusal as exc:
            raise RetryableError(str(exc)) from None
        batch.changed()
        return batch

    def _run(self, group: Group, runner: Runner, msg: object, batch: Batch) -> None:
        conditions = group.conditions
        statements = group.statements
        def runaway(message: str) -> None:
            runner.fail(f"the group of {statements[0].text!r}", RuntimeError(message))

        for env in visit(msg, self.signal, group.context, batch.context, runaway):
            if conditions and not any(runner.holds(p, t, env) for t, p in conditions):  # type: ignore[arg-type]
                continue
            for stmt in statements:
                runner.run(stmt.run, stmt.text, env)
