"""The `tail_sampling` processor's config: the Collector's keys (contrib v0.161.0) and ours.

A policy is `{name, type, <type>: {...}}`; `and`, `drop` and `composite` hold sub-policies, and `not`
(inside `and` and `drop`) one. Python cannot name a field `and` or `not`: they are `and_`/`not_`,
read from the config under their Collector names (`renamed`). Rules the Collector checks only when
it builds the evaluators (an unknown status code, a bad regex, a numeric policy with neither bound)
are config errors here, with their path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.config_types import Duration, renamed, unsupported
from pipelines.headers_on_disk import disk_refusals, listed_credentials
from pipelines.ottl.compile import compile_condition
from pipelines.ottl.lexer import OttlError
from pipelines.processors.actions import compile_go_regex

PolicyType = Literal[
    "always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
    "rate_limiting", "bytes_limiting", "composite", "and", "not", "drop", "span_count", "trace_state",
    "boolean_attribute", "ottl_condition", "trace_flags", "",
]
STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
_INT32 = 2**31 - 1


@dataclass(frozen=True)
class LatencyCfg:
    threshold_ms: int = 0
    upper_threshold_ms: int = 0


@dataclass(frozen=True)
class NumericAttributeCfg:
    key: str = ""
    min_value: int = 0
    max_value: int = 0
    invert_match: bool = False


@dataclass(frozen=True)
class ProbabilisticCfg:
    hash_salt: str = ""
    sampling_percentage: float = 0.0


@dataclass(frozen=True)
class StatusCodeCfg:
    status_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StringAttributeCfg:
    key: str = ""
    values: tuple[str, ...] = ()
    enabled_regex_matching: bool = False
    cache_max_size: int = 0
    invert_match: bool = False


@dataclass(frozen=True)
class RateLimitingCfg:
    spans_per_second: int = 0
    burst_capacity: int = 0


@dataclass(frozen=True)
class BytesLimitingCfg:
    bytes_per_second: int = 0
    burst_capacity: int = 0


@dataclass(frozen=True)
class SpanCountCfg:
    min_spans: int = 0
    max_spans: int = 0


@dataclass(frozen=True)
class TraceStateCfg:
    key: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class BooleanAttributeCfg:
    key: str = ""
    value: bool = False
    invert_match: bool = False


@dataclass(frozen=True)
class OTTLConditionCfg:
    # "" is the Collector's default: a failing condition counts as false and is not logged.
    error_mode: Literal["", "ignore", "silent", "propagate"] = ""
    span: tuple[str, ...] = ()
    spanevent: tuple[str, ...] = ()


@dataclass(frozen=True)
class SharedPolicyCfg:
    """The policies every level may hold (the Collector's sharedPolicyCfg)."""

    name: str = ""
    type: PolicyType = ""
    latency: LatencyCfg = field(default_factory=LatencyCfg)
    numeric_attribute: NumericAttributeCfg = field(default_factory=NumericAttributeCfg)
    probabilistic: ProbabilisticCfg = field(default_factory=ProbabilisticCfg)
    status_code: StatusCodeCfg = field(default_factory=StatusCodeCfg)
    string_attribute: StringAttributeCfg = field(default_factory=StringAttributeCfg)
    rate_limiting: RateLimitingCfg = field(default_factory=RateLimitingCfg)
    bytes_limiting: BytesLimitingCfg = field(default_factory=BytesLimitingCfg)
    span_count: SpanCountCfg = field(default_factory=SpanCountCfg)
    trace_state: TraceStateCfg = field(default_factory=TraceStateCfg)
    boolean_attribute: BooleanAttributeCfg = field(default_factory=BooleanAttributeCfg)
    ottl_condition: OTTLConditionCfg = field(default_factory=OTTLConditionCfg)


@dataclass(frozen=True)
class NotSubPolicyCfg(SharedPolicyCfg):
    pass


@dataclass(frozen=True)
class NotCfg:
    not_sub_policy: NotSubPolicyCfg = field(default_factory=NotSubPolicyCfg)


@dataclass(frozen=True)
class AndSubPolicyCfg(SharedPolicyCfg):
    not_: NotCfg = renamed("not", default_factory=NotCfg)


@dataclass(frozen=True)
class AndCfg:
    and_sub_policy: tuple[AndSubPolicyCfg, ...] = ()


@dataclass(frozen=True)
class DropCfg:
    drop_sub_policy: tuple[AndSubPolicyCfg, ...] = ()


@dataclass(frozen=True)
class CompositeSubPolicyCfg(SharedPolicyCfg):
    and_: AndCfg = renamed("and", default_factory=AndCfg)


@dataclass(frozen=True)
class RateAllocationCfg:
    policy: str = ""
    percent: int = 0


@dataclass(frozen=True)
class CompositeCfg:
    max_total_spans_per_second: int = 0
    policy_order: tuple[str, ...] = ()
    composite_sub_policy: tuple[CompositeSubPolicyCfg, ...] = ()
    rate_allocation: tuple[RateAllocationCfg, ...] = ()


@dataclass(frozen=True)
class PolicyCfg(SharedPolicyCfg):
    composite: CompositeCfg = field(default_factory=CompositeCfg)
    and_: AndCfg = renamed("and", default_factory=AndCfg)
    not_: NotCfg = renamed("not", default_factory=NotCfg)
    drop: DropCfg = field(default_factory=DropCfg)


@dataclass(frozen=True)
class DecisionCacheCfg:
    sampled_cache_size: int = 0
    non_sampled_cache_size: int = 0


@dataclass(frozen=True)
class Config:
    decision_wait: Duration = 30.0
    decision_wait_after_root_received: Duration = 0.0
    num_traces: int = 50000
    block_on_overflow: bool = False
    # The Collector sizes its maps with it; Python's dicts grow on their own, so it changes nothing.
    expected_new_traces_per_sec: int = 0
    policies: tuple[PolicyCfg, ...] = ()
    decision_cache: DecisionCacheCfg = field(default_factory=DecisionCacheCfg)
    sample_on_first_match: bool = False
    drop_pending_traces_on_shutdown: bool = False
    maximum_trace_size_bytes: int = 0
    sampling_strategy: str = unsupported("only `trace-complete` decisions are made: span-ingest is not "
                                         "implemented", default="trace-complete")
    num_shards: int = unsupported("one event loop decides; there are no shards to set", default=1)
    tail_storage: Any = unsupported("pending spans are kept on disk with `storage: file_storage/<name>`")
    # Beyond the Collector: the bound on everything pending, in bytes, and where pending spans survive
    # a crash.
    max_pending_bytes: int = 256 * 1024 * 1024
    storage: str = ""
    # Request headers, beyond the tenant headers (`pipelines.headers_on_disk`), that the operator declares
    # free of credentials, so that `storage` may write them (a downstream `batch` processor's metadata_keys).
    persist_metadata_keys: tuple[str, ...] = ()

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.decision_wait <= 0:
            errors.append("decision_wait must be positive")
        if self.decision_wait_after_root_received < 0:
            errors.append("decision_wait_after_root_received must not be negative")
        if self.num_traces <= 0:
            errors.append("num_traces must be positive")
        if self.max_pending_bytes <= 0:
            errors.append("max_pending_bytes must be positive")
        for key in ("expected_new_traces_per_sec", "maximum_trace_size_bytes"):
            if getattr(self, key) < 0:
                errors.append(f"{key} must not be negative")
        for key in ("sampled_cache_size", "non_sampled_cache_size"):
            if getattr(self.decision_cache, key) < 0:
                errors.append(f"decision_cache::{key} must not be negative")
        if self.storage and not self.storage.startswith("file_storage"):
            errors.append(f"storage {self.storage!r}: want a file_storage extension id")
        errors += listed_credentials(self.persist_metadata_keys, "persist_metadata_keys")
        if not self.policies:
            errors.append("policies: at least one policy is required")
        names: set[str] = set()
        for i, p in enumerate(self.policies):
            if p.name in names:
                errors.append(f"policies[{i}]: duplicate policy name {p.name!r}")
            names.add(p.name)
            errors += check_policy(p, f"policies[{i}]", "top")
        return errors


def check_policy(p: SharedPolicyCfg, where: str, level: str) -> list[str]:
    """What is wrong with one policy (and its sub-policies), each message led by its path."""
    errors: list[str] = []
    if not p.name and level != "not":
        errors.append(f"{where}: policy name cannot be empty")
    allowed = {"top": {"composite", "and", "not", "drop"}, "composite": {"and"}, "and": {"not"}, "not": set()}
    if not p.type:
        return [*errors, f"{where}: policy type is missing"]
    if p.type in ("composite", "and", "not", "drop") and p.type not in allowed[level]:
        return [*errors, f"{where}: unknown sampling policy type {p.type}"]
    t = p.type
    if t == "numeric_attribute" and p.numeric_attribute.min_value == 0 and p.numeric_attribute.max_value == 0:
        errors.append(f"{where}::numeric_attribute: at least one of min_value or max_value must be set")
    elif t == "probabilistic" and not math.isfinite(p.probabilistic.sampling_percentage):
        errors.append(f"{where}::probabilistic: sampling_percentage must be a number")
    elif t == "status_code":
        if not p.status_code.status_codes:
            errors.append(f"{where}::status_code: expected at least one status code to filter on")
        for code in p.status_code.status_codes:
            if code not in STATUS_CODES:
                errors.append(f'{where}::status_code: unknown status code "{code}", supported: OK, ERROR, UNSET')
    elif t == "string_attribute" and p.string_attribute.enabled_regex_matching:
        for value in p.string_attribute.values:
            try:
                compile_go_regex(value)
            except re.error as exc:
                errors.append(f"{where}::string_attribute: invalid regex `{value}`: {exc}")
    elif t in ("rate_limiting", "bytes_limiting"):
        block = p.rate_limiting if t == "rate_limiting" else p.bytes_limiting
        if min(getattr(block, f.name) for f in block.__dataclass_fields__.values()) < 0:
            errors.append(f"{where}::{t}: rates and burst_capacity must not be negative")
    elif t == "span_count" and not (0 <= p.span_count.min_spans <= _INT32 and 0 <= p.span_count.max_spans <= _INT32):
        errors.append(f"{where}::span_count: min_spans and max_spans must fit in 0..{_INT32}")
    elif t == "ottl_condition":
        errors += _check_ottl(p.ottl_condition, f"{where}::ottl_condition")
    elif t == "and" and isinstance(p, (PolicyCfg, CompositeSubPolicyCfg)):
        for j, sub in enumerate(p.and_.and_sub_policy):
            errors += check_policy(sub, f"{where}::and::and_sub_policy[{j}]", "and")
    elif t == "drop" and isinstance(p, PolicyCfg):
        for j, sub in enumerate(p.drop.drop_sub_policy):
            errors += check_policy(sub, f"{where}::drop::drop_sub_policy[{j}]", "and")
    elif t == "not" and isinstance(p, (PolicyCfg, AndSubPolicyCfg)):
        errors += check_policy(p.not_.not_sub_policy, f"{where}::not::not_sub_policy", "not")
    elif t == "composite" and isinstance(p, PolicyCfg):
        for j, csub in enumerate(p.composite.composite_sub_policy):
            errors += check_policy(csub, f"{where}::composite::composite_sub_policy[{j}]", "composite")
    return errors


def _check_ottl(cfg: OTTLConditionCfg, where: str) -> list[str]:
    if not cfg.span and not cfg.spanevent:
        return [f"{where}: expected at least one OTTL condition to filter on"]
    errors = []
    for context, texts in (("span", cfg.span), ("spanevent", cfg.spanevent)):
        for i, text in enumerate(texts):
            try:
                compile_condition(text, context)
            except OttlError as exc:
                errors.append(f"{where}::{context}[{i}]: {exc} (in {text!r})")
    return errors


def storage_refusals(config: Config, kept: Mapping[str, str]) -> list[str]:
    """Why `storage` must not write the batching headers in `kept` (header -> the config path that asks
    for it) with the pending spans: the rule of persistent queues (`pipelines.headers_on_disk`)."""
    if not config.storage:
        return []
    return disk_refusals(kept, config.persist_metadata_keys, "storage", "persist_metadata_keys",
                         "keep pending spans in memory (no storage)")

