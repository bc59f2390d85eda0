"""healthcheckv2's view of component status: the latest event of every instance aggregated per pipeline
(extensions as one pseudo-pipeline) and overall, by the Collector's rules, and what each aggregate
means for HTTP, gRPC and `healthy`. Pure: `now` is passed in.

Aggregation (the Collector's `status.Aggregator`): when every part has one status, that is the status;
otherwise a fatal error wins, then starting, stopping (a stopped part among others counts as stopping),
then the errors, a permanent one before a recoverable one unless only recoverable errors are included.
An error aggregate takes the earliest event of that status (when the failure began: what
`recovery_duration` counts from), any other status the latest.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.component import ERROR_STATUSES, InstanceID, StatusEvent

# Before any component reported (the Collector's zero event).
NONE = "StatusNone"

HTTP_CODES = {NONE: 503, "StatusStarting": 503, "StatusOK": 200, "StatusRecoverableError": 200,
              "StatusPermanentError": 200, "StatusFatalError": 500, "StatusStopping": 503, "StatusStopped": 503}
# use_v2: false answers as the old health_check: a fatal error is a 503 there.
LEGACY_HTTP_CODES = {**HTTP_CODES, "StatusFatalError": 503}
SERVING = {"StatusOK", "StatusRecoverableError", "StatusPermanentError"}


@dataclass(frozen=True)
class Aggregate:
    status: str
    error: str | None
    timestamp: float
    components: Mapping[str, Aggregate] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    """`component_health`; `enabled` False when it is not configured (errors never make it unhealthy)."""

    enabled: bool = False
    include_permanent: bool = False
    include_recoverable: bool = False
    recovery_duration: float = 300.0

    @property
    def recoverable_first(self) -> bool:
        return self.include_recoverable and not self.include_permanent

    def healthy(self, agg: Aggregate, now: float) -> bool:
        if not self.enabled:
            return True
        if agg.status == "StatusPermanentError":
            return not self.include_permanent
        if agg.status == "StatusRecoverableError" and self.include_recoverable:
            return now < agg.timestamp + self.recovery_duration
        return agg.status != "StatusFatalError"

    def serving(self, agg: Aggregate, now: float) -> bool:
        """The gRPC health service's SERVING / NOT_SERVING."""
        if self.include_recoverable and agg.status == "StatusRecoverableError" \
                and now > agg.timestamp + self.recovery_duration:
            return False
        if self.include_permanent and agg.status == "StatusPermanentError":
            return False
        return agg.status in SERVING

    def http_code(self, agg: Aggregate, now: float) -> int:
        return 500 if self.enabled and not self.healthy(agg, now) else HTTP_CODES[agg.status]

    def turns_at(self, agg: Aggregate) -> float | None:
        """When a recoverable error's recovery time runs out, if it is one that will."""
        if self.include_recoverable and agg.status == "StatusRecoverableError":
            return agg.timestamp + self.recovery_duration
        return None


def aggregate(statuses: Mapping[InstanceID, StatusEvent], rules: Rules, now: float) -> Aggregate:
    """The whole tree: overall, then `extensions` and `pipeline:<id>`, then `<kind>:<id>` in each."""
    scopes: dict[str, dict[str, Aggregate]] = {}
    for instance, event in statuses.items():
        leaf = Aggregate(event.status, event.error, event.timestamp)
        keys = ["extensions"] if instance.kind == "extension" else [f"pipeline:{p}" for p in instance.pipelines]
        for key in keys:
            scopes.setdefault(key, {})[instance.key] = leaf
    parts = {key: _combine(children, rules) for key, children in sorted(scopes.items())}
    return _combine(parts, rules) if parts else Aggregate(NONE, None, now)


def scope(tree: Aggregate, name: str) -> Aggregate | None:
    """The overall status for "", the extensions for "extensions", else the pipeline `name`."""
    if name == "":
        return tree
    return tree.components.get(name if name == "extensions" else f"pipeline:{name}")


def _status(parts: Mapping[str, Aggregate], rules: Rules) -> str:
    seen = {p.status for p in parts.values()}
    if len(seen) == 1:
        return next(iter(seen))
    for status in ("StatusFatalError", "StatusStarting", "StatusStopping"):
        if status in seen:
            return status
    if "StatusStopped" in seen:
        return "StatusStopping"
    errors = ["StatusRecoverableError", "StatusPermanentError"]
    for status in errors if rules.recoverable_first else reversed(errors):
        if status in seen:
            return status
    return NONE


def _combine(parts: Mapping[str, Aggregate], rules: Rules) -> Aggregate:
    status = _status(parts, rules)
    if status in ERROR_STATUSES:
        first = min((p for p in parts.values() if p.status == status), key=lambda p: p.timestamp)
        return Aggregate(status, first.error, first.timestamp, parts)
    latest = max(parts.values(), key=lambda p: p.timestamp)
    return Aggregate(status, latest.error if latest.status == status else None, latest.timestamp, parts)


def to_json(agg: Aggregate, rules: Rules, now: float, verbose: bool, start_time: float | None) -> dict[str, Any]:
    """The Collector's response body: `start_time` at the top only, `components` only when verbose."""
    out: dict[str, Any] = {} if start_time is None else {"start_time": _time(start_time)}
    out["healthy"] = rules.healthy(agg, now)
    out["status"] = agg.status
    if agg.error:
        out["error"] = agg.error
    out["status_time"] = _time(agg.timestamp)
    if verbose and agg.components:
        out["components"] = {k: to_json(c, rules, now, True, None) for k, c in agg.components.items()}
    return out


def _time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")
