"""The contracts between the service and its components, and what each kind of factory is.

A component is a type name, a config class and a constructor (`*Factory`). What the constructor
returns is known by its kind, never discovered: a receiver is a `Component`; a processor or a connector
a `Stage` (a `Consumer` with a lifecycle); an exporter an `ExporterNode`, which also drains and takes a
batching policy; an extension an `Extension`, which is told when the pipelines are ready.

Component status (the Collector's componentstatus): every component instance has a status, reported as
`StatusEvent`s: the service reports each one's start and stop, a component its own runtime state through
the `StatusReporter` in its `Settings` (the exporter helper: recoverable and permanent send failures).
`gateway.status` keeps the latest event of each instance; an extension that shows them (healthcheckv2)
reads and watches them through `Host.component_status()`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from pipelines.batch import Batch, Signal
from pipelines.processors.batch import BatchPolicy

if TYPE_CHECKING:
    from gateway.telemetry import Telemetry

C = TypeVar("C")

ALL_SIGNALS: frozenset[Signal] = frozenset({"traces", "metrics", "logs"})


class Consumer(Protocol):
    """Takes a batch or raises a typed refusal (pipelines.errors).

    `admit` answers synchronously whether the consumer can take `batch` now, by raising the refusal
    `consume` would raise (a RetryableError for a full queue or memory over its limit), and changes
    nothing. A fan-out asks every branch before handing the batch to any, so a request one branch must
    refuse is refused as a whole and the client's retry duplicates nothing."""

    def admit(self, batch: Batch) -> None: ...

    async def consume(self, batch: Batch) -> None: ...


class Component(Protocol):
    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class Stage(Consumer, Component, Protocol):
    """A processor or a connector in the graph: a consumer that starts and stops."""


class Drainable(Protocol):
    async def drain(self, within: float) -> None:
        """Send what is held, for at most `within` seconds; called before `shutdown`."""
        ...


class ExporterNode(Stage, Drainable, Protocol):
    # The request headers its sending reads (a client authenticator's `from_context`).
    context_keys: tuple[str, ...]

    def set_batching(self, policy: BatchPolicy) -> None:
        """How this exporter forms batches: given by the graph when the pipeline that feeds it has a
        `batch` processor (the first such pipeline wins when several do)."""
        ...


class Extension(Component, Protocol):
    """An extension; `ready` and `not_ready` tell it when the pipelines start taking data and when
    they stop (the Collector's PipelineWatcher): the health check turns 200 and 503 on them."""

    def ready(self) -> None: ...

    def not_ready(self) -> None: ...


@dataclass(frozen=True)
class PipelineView:
    """A running pipeline by the ids of its components, in order; `connectors` says which of its
    receivers and exporters are connectors."""

    id: str
    receivers: tuple[str, ...]
    processors: tuple[str, ...]
    exporters: tuple[str, ...]
    connectors: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ServiceView:
    """What the service runs now (the graph a reload swapped in, once it has): for the zpages extension."""

    pipelines: tuple[PipelineView, ...] = ()
    extensions: tuple[str, ...] = ()
    graph: str = ""  # `Graph.describe()`
# ---------------------------------------------------------------- component status

# The Collector's statuses, spelled as its health extension writes them.
Status = Literal["StatusStarting", "StatusOK", "StatusRecoverableError", "StatusPermanentError",
                 "StatusFatalError", "StatusStopping", "StatusStopped"]
ERROR_STATUSES: frozenset[Status] = frozenset({"StatusRecoverableError", "StatusPermanentError", "StatusFatalError"})

ComponentKind = Literal["receiver", "processor", "exporter", "extension", "connector"]


@dataclass(frozen=True)
class InstanceID:
    """One component instance: a processor is one per pipeline, a receiver, exporter or connector one
    for all the pipelines that list it, an extension in none."""

    kind: ComponentKind
    id: str
    pipelines: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class StatusEvent:
    status: Status
    error: str | None = None
    timestamp: float = field(default_factory=time.time)  # seconds since the epoch


class StatusReporter(Protocol):
    """What a component reports its own status through (`Settings.status`)."""

    def report(self, event: StatusEvent) -> None: ...


class _NoStatus:
    def report(self, event: StatusEvent) -> None:
        pass


NO_STATUS: StatusReporter = _NoStatus()


class StatusSource(Protocol):
    """The latest status of every instance of the running graph, and a way to hear of changes."""

    def statuses(self) -> Mapping[InstanceID, StatusEvent]: ...

    def watch(self, changed: Callable[[], None]) -> Callable[[], None]:
        """Call `changed` (on the event loop) after every change; returns the function that stops it."""
        ...


class Host(Protocol):
    """What a component may ask of the running service."""

    def extension(self, component_id: str) -> Extension: ...

    def view(self) -> ServiceView: ...
    def component_status(self) -> StatusSource: ...

    def config_view(self) -> Mapping[str, object]:
        """The running config, every default filled in and every secret redacted."""
        ...


@dataclass(frozen=True)
class Settings(Generic[C]):
    id: str
    config: C
    telemetry: Telemetry
    host: Host
    # Several worker processes share the listening ports (SO_REUSEPORT).
    reuse_port: bool = False
    # Which of them this process is (`service::workers`), for what a component says about itself.
    worker: int | None = None
    # Where the component reports its own runtime status (the service reports its start and stop).
    status: StatusReporter = NO_STATUS

    @property
    def type(self) -> str:
        return self.id.partition("/")[0]


# Rules only the pipeline a component runs in can check: (config, signal) -> error messages.
SignalCheck = Callable[[C, str], list[str]]

# What an extension can be to the component that names it.
ExtensionRole = Literal["authenticator", "client_authenticator", "storage"]


@dataclass(frozen=True)
class ExtensionRef:
    """A component's config naming an extension: where (the key path below the component), which, and
    as what. The loader checks that it is configured, enabled in `service::extensions`, and has the role."""

    key: str
    extension: str
    role: ExtensionRole


ExtensionRefs = Callable[[C], list[ExtensionRef]]

# The request headers (metadata keys) a component makes an exporter's queue keep with each request:
# a `batch` processor's `metadata_keys`, a client authenticator's `from_context` headers.
MetadataKeys = Callable[[C], tuple[str, ...]]

# An exporter's (or a processor's) check of the request headers its queue (its storage) would keep, each
# with the config path that asks for it: (config, {header: path}) -> (key path below it, message) for each
# refusal.
KeptMetadataCheck = Callable[[C, Mapping[str, str]], list[tuple[str, str]]]


@dataclass(frozen=True)
class ReceiverFactory(Generic[C]):
    type: str
    config: builtins.type[C]
    # One consumer per signal the receiver feeds: the fan-out into every pipeline that lists it.
    create: Callable[[Settings[C], Mapping[Signal, Consumer]], Component]
    signals: frozenset[Signal] = ALL_SIGNALS
    extension_refs: ExtensionRefs[C] | None = None


@dataclass(frozen=True)
class ProcessorFactory(Generic[C]):
    type: str
    config: builtins.type[C]
    # (settings, the next consumer in the pipeline, the pipeline's signal)
    create: Callable[[Settings[C], Consumer, Signal], Stage]
    signals: frozenset[Signal] = ALL_SIGNALS
    check_for_signal: SignalCheck[C] | None = None
    # A processor whose config shapes the batches of the exporters downstream (the `batch` processor).
    batching: Callable[[Settings[C]], BatchPolicy] | None = None
    # The request headers that batching keeps with each request downstream (the `batch` processor's).
    metadata_keys: MetadataKeys[C] | None = None
    extension_refs: ExtensionRefs[C] | None = None
    # A processor that holds requests (tail_sampling) is told the request metadata the exporters
    # downstream batch by (their batch processors' `metadata_keys`: all it may write down) and the further
    # headers their client authenticators read (`from_context`): all it keeps.
    keep_metadata: Callable[[Stage, tuple[str, ...], tuple[str, ...]], None] | None = None
    # Refuses, at config load, the batching headers (`keep_metadata`'s first) it would write to disk.
    check_kept_metadata: KeptMetadataCheck[C] | None = None


@dataclass(frozen=True)
class ExporterFactory(Generic[C]):
    type: str
    config: builtins.type[C]
    create: Callable[[Settings[C]], ExporterNode]
    signals: frozenset[Signal] = ALL_SIGNALS
    extension_refs: ExtensionRefs[C] | None = None
    # Refuses, at config load, request headers its queue would keep that it must not (on disk).
    check_kept_metadata: KeptMetadataCheck[C] | None = None


@dataclass(frozen=True)
class ExtensionFactory(Generic[C]):
    type: str
    config: builtins.type[C]
    create: Callable[[Settings[C]], Extension]
    # What other components may name it as: the loader refuses a reference to it in another role.
    roles: frozenset[ExtensionRole] = frozenset()
    # A client authenticator whose headers depend on request headers: those (its `context_keys()`).
    context_keys: MetadataKeys[C] | None = None


@dataclass(frozen=True)
class ConnectorFactory(Generic[C]):
    """A connector is an exporter of one pipeline and a receiver of others; `pairs` are the (exporter
    side, receiver side) signals it joins."""

    type: str
    config: builtins.type[C]
    # (settings, the entries of the pipelines it feeds by pipeline id, its exporter-side signal)
    create: Callable[[Settings[C], Mapping[str, Consumer], Signal], Stage]
    pairs: frozenset[tuple[Signal, Signal]]
    check_for_signal: SignalCheck[C] | None = None
    # Checks of the config against the pipelines it feeds: (config, their ids) -> error messages.
    check_pipelines: Callable[[C, frozenset[str]], list[str]] | None = None

