"""`service::telemetry`: the gateway's own metrics, traces and logs, in the Collector's declarative shape
(otelconf, as v0.161 reads it): `readers` and `processors` lists whose one key names the kind, and an
`exporter: {otlp: {...}}` inside each. Times in that schema are integers of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.config_types import Duration, unsupported

_NO_CONSOLE = "the gateway's own telemetry goes out over OTLP; its log lines already go to stderr"
_NO_VIEWS = "the gateway's metrics have fixed names and buckets, as the Collector's default views give them"


@dataclass(frozen=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True)
class OtlpExporter:
    """An OTLP exporter of the SDK (gRPC or HTTP/protobuf), as otelconf's `otlp` block."""

    endpoint: str
    protocol: Literal["grpc", "http/protobuf"] = "http/protobuf"
    headers: tuple[Header, ...] = ()
    # "k1=v1,k2=v2", as OTEL_EXPORTER_OTLP_HEADERS; `headers` wins for a name in both.
    headers_list: str = ""
    # None: TLS unless the endpoint says http:// (gRPC), as the SDK decides.
    insecure: bool | None = None
    certificate: str = ""
    client_key: str = ""
    client_certificate: str = ""
    compression: Literal["gzip", "none", ""] = ""
    timeout: int = 10000
    temporality_preference: str = unsupported(
        "the gateway's counters are cumulative, as Prometheus reads them", default="cumulative")
    default_histogram_aggregation: str = unsupported(
        "histograms are exported with the gateway's explicit buckets", default="")

    def all_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.headers_list.split(","))):
            name, _, value = pair.partition("=")
            out[name.strip().lower()] = value.strip()
        out.update({h.name.lower(): h.value for h in self.headers})
        return out

    def validate(self) -> list[str]:
        errors = [] if self.endpoint else ["endpoint must be set"]
        if self.timeout <= 0:
            errors.append("timeout must be positive (milliseconds)")
        if bool(self.client_key) != bool(self.client_certificate):
            errors.append("client_key and client_certificate go together")
        return errors


@dataclass(frozen=True)
class PushExporter:
    otlp: OtlpExporter | None = None
    console: Any = unsupported(_NO_CONSOLE)

    def validate(self) -> list[str]:
        return [] if self.otlp is not None else ["exporter: want otlp"]


@dataclass(frozen=True)
class Prometheus:
    host: str = "localhost"
    port: int = 8888
    without_units: bool = unsupported("the Collector's metric names are served as they are", default=False)
    without_type_suffix: bool = unsupported("the Collector's metric names are served as they are", default=False)
    without_scope_info: bool = unsupported("no scope info is served", default=False)


@dataclass(frozen=True)
class PullExporter:
    prometheus: Prometheus | None = None


@dataclass(frozen=True)
class PullReader:
    exporter: PullExporter = field(default_factory=PullExporter)


@dataclass(frozen=True)
class PeriodicReader:
    exporter: PushExporter = field(default_factory=PushExporter)
    interval: int = 60000
    timeout: int = 30000

    def validate(self) -> list[str]:
        return [] if self.interval > 0 and self.timeout > 0 else ["interval and timeout must be positive"]


@dataclass(frozen=True)
class Reader:
    pull: PullReader | None = None
    periodic: PeriodicReader | None = None

    def validate(self) -> list[str]:
        return [] if (self.pull is None) != (self.periodic is None) else ["want one of pull, periodic"]


@dataclass(frozen=True)
class MetricsTelemetry:
    address: str = "localhost:8888"
    level: Literal["none", "basic", "normal", "detailed"] = "normal"
    readers: tuple[Reader, ...] = ()
    views: Any = unsupported(_NO_VIEWS)


@dataclass(frozen=True)
class Empty:
    """A block whose presence is its meaning (`always_on: {}`)."""


@dataclass(frozen=True)
class Ratio:
    ratio: float = 1.0

    def validate(self) -> list[str]:
        return [] if 0.0 <= self.ratio <= 1.0 else ["ratio must be between 0 and 1"]


@dataclass(frozen=True)
class ParentBased:
    root: Sampler | None = None


@dataclass(frozen=True)
class Sampler:
    """One of: `always_on`, `always_off`, `trace_id_ratio_based`, `parent_based` (around a `root`). The
    gateway's spans have no parent it trusts (an incoming traceparent is a link), so `parent_based` is
    its root."""

    always_on: Empty | None = None
    always_off: Empty | None = None
    trace_id_ratio_based: Ratio | None = None
    parent_based: ParentBased | None = None

    def validate(self) -> list[str]:
        chosen = [self.always_on, self.always_off, self.trace_id_ratio_based, self.parent_based]
        return [] if sum(c is not None for c in chosen) == 1 else [
            "want one of always_on, always_off, trace_id_ratio_based, parent_based"]


@dataclass(frozen=True)
class BatchProcessor:
    exporter: PushExporter = field(default_factory=PushExporter)
    schedule_delay: int = 5000
    export_timeout: int = 30000
    max_queue_size: int = 2048
    max_export_batch_size: int = 512

    def validate(self) -> list[str]:
        if min(self.schedule_delay, self.export_timeout, self.max_queue_size, self.max_export_batch_size) <= 0:
            return ["schedule_delay, export_timeout, max_queue_size and max_export_batch_size must be positive"]
        if self.max_export_batch_size > self.max_queue_size:
            return ["max_export_batch_size must not exceed max_queue_size"]
        return []


@dataclass(frozen=True)
class SimpleProcessor:
    exporter: PushExporter = field(default_factory=PushExporter)


@dataclass(frozen=True)
class Processor:
    batch: BatchProcessor | None = None
    simple: SimpleProcessor | None = None

    def validate(self) -> list[str]:
        return [] if (self.batch is None) != (self.simple is None) else ["want one of batch, simple"]


@dataclass(frozen=True)
class TracesTelemetry:
    # `none` turns the gateway's own spans off whatever the processors say (the Collector's level).
    level: Literal["none", "basic", "normal", "detailed"] = "basic"
    processors: tuple[Processor, ...] = ()
    sampler: Sampler | None = None
    propagators: tuple[str, ...] = unsupported(
        "an incoming W3C traceparent is always read, as a link; the gateway propagates nothing outward", default=())


@dataclass(frozen=True)
class LogSampling:
    """zap's sampler: per level and message in each `tick`, the first `initial` lines, then every
    `thereafter`-th."""

    enabled: bool = True
    tick: Duration = 10.0
    initial: int = 10
    thereafter: int = 100

    def validate(self) -> list[str]:
        return [] if self.tick > 0 and self.initial >= 0 and self.thereafter >= 0 else [
            "tick must be positive, initial and thereafter not negative"]


@dataclass(frozen=True)
class LogsTelemetry:
    level: Literal["debug", "info", "warn", "error", "DEBUG", "INFO", "WARN", "ERROR"] = "info"
    encoding: Literal["console", "json"] = "console"
    # zap's development mode: a stack trace with every line from `warn` up.
    development: bool = False
    # None: every line is written (the Collector samples by default; the gateway only when asked).
    sampling: LogSampling | None = None
    processors: tuple[Processor, ...] = ()
    disable_caller: bool = unsupported("the JSON lines always carry `caller`", default=False)
    disable_stacktrace: bool = unsupported("an error's stack trace is always written", default=False)
    output_paths: tuple[str, ...] = unsupported("the log goes to stderr", default=())
    error_output_paths: tuple[str, ...] = unsupported("the log goes to stderr", default=())
    initial_fields: dict[str, Any] = unsupported("use `resource` for what the exported logs carry")


@dataclass(frozen=True)
class TelemetryConfig:
    # Attributes of everything the gateway emits about itself; a null value removes a default attribute.
    resource: dict[str, str | None] = field(default_factory=dict)
    metrics: MetricsTelemetry = field(default_factory=MetricsTelemetry)
    traces: TracesTelemetry = field(default_factory=TracesTelemetry)
    logs: LogsTelemetry = field(default_factory=LogsTelemetry)
