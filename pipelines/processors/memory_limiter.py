"""The memory_limiter's decisions, free of clocks and /proc: limits from config, state from a reading.

Keys, defaults and messages follow the Collector's memorylimiter. The soft limit is `limit - spike`;
at or above it the processor refuses data (retryable), at or above the hard limit it also asks for a
garbage collection at every check. A spike limit left at 0 means 20% of the limit, as in the Collector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.config_types import Duration

MIB = 1024 * 1024
DEFAULT_SPIKE_FRACTION = 0.2

State = Literal["ok", "soft", "hard"]


@dataclass(frozen=True)
class Config:
    check_interval: Duration = 0.0
    limit_mib: int = 0
    spike_limit_mib: int = 0
    limit_percentage: int = 0
    spike_limit_percentage: int = 0
    min_gc_interval_when_soft_limited: Duration = 10.0
    min_gc_interval_when_hard_limited: Duration = 0.0

    def validate(self) -> list[str]:
        errors = []
        if self.check_interval <= 0:
            errors.append("'check_interval' must be greater than zero")
        if self.min_gc_interval_when_soft_limited < self.min_gc_interval_when_hard_limited:
            errors.append(
                "'min_gc_interval_when_soft_limited' should be larger than 'min_gc_interval_when_hard_limited'"
            )
        if self.limit_mib <= 0 and self.limit_percentage <= 0:
            errors.append("'limit_mib' or 'limit_percentage' must be greater than zero")
        if self.limit_mib > 0 and self.spike_limit_mib >= self.limit_mib:
            errors.append("'spike_limit_mib' must be smaller than 'limit_mib'")
        if self.limit_mib <= 0 and self.limit_percentage > 0:
            if not (0 < self.limit_percentage <= 100 and 0 <= self.spike_limit_percentage <= 100):
                errors.append("'limit_percentage' and 'spike_limit_percentage' must be greater than zero and "
                              "less than or equal to hundred")
            elif self.spike_limit_percentage >= self.limit_percentage:
                errors.append("'spike_limit_percentage' must be smaller than 'limit_percentage'")
        if self.spike_limit_mib < 0 or self.spike_limit_percentage < 0:
            errors.append("spike limits must not be negative")
        return errors


@dataclass(frozen=True)
class Limits:
    hard: int
    soft: int

    @classmethod
    def of(cls, config: Config, total_memory: int | None) -> Limits:
        """`limit_mib` wins over `limit_percentage` (of `total_memory`: the cgroup limit or the host's)."""
        if config.limit_mib > 0:
            hard = config.limit_mib * MIB
            spike = config.spike_limit_mib * MIB or int(hard * DEFAULT_SPIKE_FRACTION)
        else:
            if not total_memory:
                raise ValueError("limit_percentage needs the total memory, which could not be read")
            hard = total_memory * config.limit_percentage // 100
            spike = total_memory * config.spike_limit_percentage // 100 or int(hard * DEFAULT_SPIKE_FRACTION)
        return cls(hard=hard, soft=max(0, hard - spike))

    def state(self, rss: int) -> State:
        if rss >= self.hard:
            return "hard"
        if rss >= self.soft:
            return "soft"
        return "ok"
