"""The pipeline graph as data: every receiver, processor, connector and exporter of a config, the
joints between them, and which pipeline each belongs to, built once from a loaded config.

Nodes, as the Collector's service graph has them:
- a `receiver` node per receiver id, shared by every pipeline that lists it;
- per pipeline: an `entry` (counts what enters it), one `processor` node per processor, a `join`
  after a `batch` processor that other processors follow (`gateway.join`: they run once per group of
  requests), and an `exit` (counts what leaves the processors and fans out to the pipeline's exporters);
- an `exporter` node per exporter id, shared by the pipelines that list it;
- a `connector` node per connector id and exporter-side signal: an exporter of the pipelines that list
  it under `exporters` and the receiver of those that list it under `receivers`.

Edges are `Node.next`: the data flows from a node to each node in its `next`. Pipelines joined by
connectors are built consumers first, so a connector is created with the entries of the pipelines it
feeds; the config loader refuses a cycle of connectors. The graph is also where batching is decided:
a pipeline's `batch` processor gives its policy to every exporter downstream of it (through connectors
too), the first pipeline in config order winning where several feed one exporter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from gateway import registry
from gateway.component import (
    Component,
    ComponentKind,
    Consumer,
    ExporterNode,
    Extension,
    InstanceID,
    PipelineView,
    Settings,
    Stage,
)
from gateway.config.model import GatewayConfig, pipeline_order
from gateway.exporters.helper import ExporterCommon
from gateway.fanout import Activity, Counted, Fanout, Switch
from gateway.join import RequestJoiner
from gateway.telemetry import Telemetry
from pipelines.batch import Signal
from pipelines.processors.batch import BatchPolicy

log = logging.getLogger("gateway.graph")

NodeKind = Literal["receiver", "entry", "processor", "join", "exit", "connector", "exporter"]


@dataclass(eq=False)
class Node:
    kind: NodeKind
    id: str  # the component id; for an entry or an exit, the pipeline id
    signals: tuple[Signal, ...]
    # The pipeline a per-pipeline node (entry, processor, exit) belongs to; None for shared nodes.
    pipeline: str | None = None
    next: list[Node] = field(default_factory=list)

    @property
    def key(self) -> str:
        if self.pipeline is not None:
            return f"{self.kind}:{self.pipeline}:{self.id}" if self.kind in ("processor", "join") else \
                f"{self.kind}:{self.id}"
        if self.kind == "connector":
            return f"connector:{self.id}:{self.signals[0]}"
        return f"{self.kind}:{self.id}"


@dataclass(eq=False)
class ReceiverNode(Node):
    component: Component | None = None
    # Per signal: the fan-out into this graph's pipelines, and the switch the receiver hands requests
    # to, pointed at it (a receiver a config reload keeps has its switches pointed at the new graph's).
    targets: dict[Signal, Consumer] = field(default_factory=dict)
    switches: dict[Signal, Switch] = field(default_factory=dict)


@dataclass(eq=False)
class StageNode(Node):
    """A processor, a connector, a pipeline's entry or exit: a consumer in the data path."""

    consumer: Consumer | None = None
    # Processors and connectors start and stop; entries and exits are joints with no lifecycle.
    stage: Stage | None = None
    # A `batch` processor's policy, computed once when the node is built (for its join and exporters).
    policy: BatchPolicy | None = None


@dataclass(eq=False)
class ExporterNodeData(Node):
    component: ExporterNode | None = None


@dataclass
class Graph:
    extensions: dict[str, Extension] = field(default_factory=dict)
    receivers: dict[str, ReceiverNode] = field(default_factory=dict)
    exporters: dict[str, ExporterNodeData] = field(default_factory=dict)
    connectors: dict[tuple[str, Signal], StageNode] = field(default_factory=dict)
    # Per pipeline, in config order: its entry, processors (in order) and exit.
    pipelines: dict[str, list[StageNode]] = field(default_factory=dict)
    # Exporter id -> the key of the `batch` processor node whose policy it batches by.
    batching: dict[str, str] = field(default_factory=dict)
    # The requests in this graph, from its receivers' switches to their answer.
    activity: Activity = field(default_factory=Activity)

    def nodes(self) -> Iterator[Node]:
        yield from self.receivers.values()
        for nodes in self.pipelines.values():
            yield from nodes
        yield from self.connectors.values()
        yield from self.exporters.values()

    def edges(self) -> Iterator[tuple[Node, Node]]:
        for node in self.nodes():
            for nxt in node.next:
                yield node, nxt

    @staticmethod
    def downstream(start: Node) -> Iterator[Node]:
        """Every node reachable from `start` (itself included), each once."""
        todo = [start]
        seen: set[int] = set()
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            todo.extend(reversed(node.next))

    def stages(self) -> list[tuple[str, Stage]]:
        """Processors and connectors by node key, consumers first: the order they start in."""
        out: list[tuple[str, Stage]] = []
        seen: set[int] = set()

        def visit(node: Node) -> None:  # depth first, each node after everything downstream of it
            if id(node) in seen:
                return
            seen.add(id(node))
            for n in node.next:
                visit(n)
            if isinstance(node, StageNode) and node.stage is not None:
                out.append((node.key, node.stage))

        for nodes in self.pipelines.values():
            visit(nodes[0])
        return out

    def pipeline_views(self) -> tuple[PipelineView, ...]:
        """Each pipeline by the ids of its receivers (and connectors), processors and exporters."""
        views = []
        for pid, nodes in self.pipelines.items():
            receivers = tuple(n.id for n in self.nodes() if nodes[0] in n.next)
            exporters = tuple(n.id for n in nodes[-1].next)
            connectors = frozenset(n.id for n in (*self.nodes(), *nodes[-1].next) if n.kind == "connector")
            views.append(PipelineView(pid, receivers, tuple(n.id for n in nodes if n.kind == "processor"),
                                      exporters, connectors & frozenset((*receivers, *exporters))))
        return tuple(views)

    def instances(self) -> dict[str, InstanceID]:
        """Each component's status identity by node key (the Collector's componentstatus.InstanceID): the
        pipelines a receiver feeds, a processor is in, an exporter is listed in, a connector joins."""
        pipelines: dict[str, set[str]] = {}
        for pid, nodes in self.pipelines.items():
            for node in nodes:
                if node.kind == "processor":
                    pipelines.setdefault(node.key, set()).add(pid)
                elif node.kind == "exit":
                    for target in node.next:
                        pipelines.setdefault(target.key, set()).add(pid)
        for feeder in [*self.receivers.values(), *self.connectors.values()]:
            pipelines.setdefault(feeder.key, set()).update(entry.id for entry in feeder.next)
        out = {f"extension:{eid}": InstanceID("extension", eid) for eid in self.extensions}
        for n in self.nodes():
            if n.kind in ("receiver", "processor", "connector", "exporter"):
                out[n.key] = InstanceID(cast(ComponentKind, n.kind), n.id, frozenset(pipelines.get(n.key, ())))
        return out

    def describe(self) -> str:
        """The graph as text: each pipeline's path, then each shared node's edges."""
        lines = []
        for pid, nodes in self.pipelines.items():
            receivers = [n for n in self.nodes() if nodes[0] in n.next]
            head = ", ".join(_label(n) for n in receivers)
            body = " -> ".join(_label(n) for n in nodes)
            tail = ", ".join(_label(n) for n in nodes[-1].next)
            lines.append(f"pipeline {pid}: [{head}] -> {body} -> [{tail}]")
        lines.extend(f"exporter {xid} batches by {key}" for xid, key in self.batching.items())
        lines.append("edges:")
        lines.extend(f"  {a.key} -> {b.key}" for a, b in self.edges())
        return "\n".join(lines)


def _label(node: Node) -> str:
    if node.kind in ("entry", "exit", "join"):
        return node.kind
    return f"{node.kind} {node.id}" + (f" ({node.signals[0]})" if node.kind == "connector" else "")


# (component id, its config, its kind) -> its settings
SettingsFor = Callable[[str, Any, ComponentKind], Settings[Any]]


class Reuse(Protocol):
    """What a config reload keeps running from the graph it replaces, asked per component with its new
    config (and a receiver with the signals it will feed): the running one, or None to build it anew."""

    def extension(self, eid: str, config: Any) -> Extension | None: ...

    def exporter(self, xid: str, config: Any) -> ExporterNode | None: ...

    def receiver(self, rid: str, config: Any, signals: frozenset[Signal]) -> ReceiverNode | None: ...


class _BuildAll:
    def extension(self, eid: str, config: Any) -> Extension | None:
        return None

    def exporter(self, xid: str, config: Any) -> ExporterNode | None:
        return None

    def receiver(self, rid: str, config: Any, signals: frozenset[Signal]) -> ReceiverNode | None:
        return None


def signal_of(pipeline_id: str) -> Signal:
    return cast(Signal, pipeline_id.partition("/")[0])


def build(config: GatewayConfig, telemetry: Telemetry, settings_for: SettingsFor, graph: Graph | None = None,
          reuse: Reuse | None = None) -> Graph:
    """Create every component of `config` and join them, into `graph` if given (a host may look up the
    extensions, created first, while the rest is built), taking from `reuse` what a reload keeps
    running. Nothing is started."""
    graph = graph if graph is not None else Graph()
    reuse = reuse or _BuildAll()
    for eid in config.service.extensions:
        graph.extensions[eid] = reuse.extension(eid, config.extensions[eid]) or registry.extension(
            eid.partition("/")[0]).create(settings_for(eid, config.extensions[eid], "extension"))
    entries: dict[str, StageNode] = {}
    for pid in pipeline_order(config.service.pipelines, frozenset(config.connectors)):
        entries[pid] = _build_pipeline(graph, config, pid, entries, telemetry, settings_for, reuse)
    graph.pipelines = {pid: graph.pipelines[pid] for pid in config.service.pipelines}
    _build_receivers(graph, config, entries, settings_for, reuse)
    _apply_batching(graph, config)
    _tell_metadata_keys(graph, config)
    return graph


def _build_pipeline(graph: Graph, config: GatewayConfig, pid: str, entries: Mapping[str, StageNode],
                    telemetry: Telemetry, settings_for: SettingsFor, reuse: Reuse) -> StageNode:
    pipe = config.service.pipelines[pid]
    signal = signal_of(pid)
    targets: list[Node] = []
    consumers: list[Consumer] = []
    for xid in pipe.exporters:
        if xid in config.connectors:
            cnode = _connector(graph, config, xid, signal, entries, settings_for)
            assert cnode.consumer is not None
            targets.append(cnode)
            consumers.append(cnode.consumer)
            continue
        xnode = graph.exporters.get(xid)
        if xnode is None:
            made = reuse.exporter(xid, config.exporters[xid]) or registry.exporter(xid.partition("/")[0]).create(
                settings_for(xid, config.exporters[xid], "exporter"))
            xnode = graph.exporters[xid] = ExporterNodeData("exporter", xid, (signal,), component=made)
        elif signal not in xnode.signals:
            xnode.signals = (*xnode.signals, signal)
        assert xnode.component is not None
        targets.append(xnode)
        consumers.append(xnode.component)
    exit_consumer = Counted(telemetry.pipeline_outgoing(pid), Fanout(consumers))
    nodes = [StageNode("exit", pid, (signal,), pid, targets, consumer=exit_consumer)]
    nxt: Consumer = exit_consumer
    for prid in reversed(pipe.processors):
        factory = registry.processor(prid.partition("/")[0])
        settings = settings_for(prid, config.processors[prid], "processor")
        policy = factory.batching(settings) if factory.batching is not None else None
        if policy is not None and nodes[0].kind != "exit":
            # Processors follow a `batch` processor: they run once per group of requests (gateway.join).
            max_items, max_bytes = _queue_bounds(config, pipe.exporters, policy.send_batch_max_size or
                                                 policy.send_batch_size, policy.send_batch_max_bytes)
            joiner = RequestJoiner(f"{prid} in {pid}", nxt, max_items, max_bytes)
            nodes.insert(0, StageNode("join", prid, (signal,), pid, [nodes[0]], consumer=joiner))
            nxt = joiner
        # processorhelper's in/out counts (`otelcol_processor_incoming_items`, `_outgoing_items`) are the
        # stage's own (`Telemetry.processor_items`): no layer around it, so no cost beyond two `+=` a batch.
        stage = factory.create(settings, nxt, signal)
        nxt = stage
        nodes.insert(0, StageNode("processor", prid, (signal,), pid, [nodes[0]], consumer=stage, stage=stage,
                                  policy=policy))
    entry = StageNode("entry", pid, (signal,), pid, [nodes[0]],
                      consumer=Counted(telemetry.pipeline_incoming(pid), nxt))
    graph.pipelines[pid] = [entry, *nodes]
    return entry


def _queue_bounds(config: GatewayConfig, exporters: Sequence[str], max_items: int, max_bytes: int) -> tuple[int, int]:
    """A join's group limits: the batch processor's, and never more than a whole sending queue of an
    exporter of the pipeline holds in its sizer (`items` or `bytes`), which would refuse the group
    for good where each request alone fits."""
    for xid in exporters:
        cfg = config.exporters.get(xid)
        queue = cfg.sending_queue if isinstance(cfg, ExporterCommon) else None
        if queue is None or not queue.enabled:
            continue
        if queue.sizer == "items":
            max_items = min(max_items or queue.queue_size, queue.queue_size)
        elif queue.sizer == "bytes":
            max_bytes = min(max_bytes or queue.queue_size, queue.queue_size)
    return max_items, max_bytes


def _connector(graph: Graph, config: GatewayConfig, cid: str, signal: Signal, entries: Mapping[str, StageNode],
               settings_for: SettingsFor) -> StageNode:
    """The connector `cid` on its exporter side `signal`, feeding the entries of the pipelines (built
    already) that list it as a receiver with a signal it joins `signal` to."""
    node = graph.connectors.get((cid, signal))
    if node is not None:
        return node
    factory = registry.connector(cid.partition("/")[0])
    fed = {pid: entries[pid] for pid, p in config.service.pipelines.items()
           if cid in p.receivers and (signal, signal_of(pid)) in factory.pairs}
    consumers: dict[str, Consumer] = {}
    for pid, entry in fed.items():
        assert entry.consumer is not None
        consumers[pid] = entry.consumer
    stage = factory.create(settings_for(cid, config.connectors[cid], "connector"), consumers, signal)
    node = StageNode("connector", cid, (signal,), None, list(fed.values()), consumer=stage, stage=stage)
    graph.connectors[(cid, signal)] = node
    return node


def _build_receivers(graph: Graph, config: GatewayConfig, entries: Mapping[str, StageNode],
                     settings_for: SettingsFor, reuse: Reuse) -> None:
    by_receiver: dict[str, dict[Signal, list[StageNode]]] = {}
    for pid, pipe in config.service.pipelines.items():
        for rid in pipe.receivers:
            if rid not in config.connectors:
                by_receiver.setdefault(rid, {}).setdefault(signal_of(pid), []).append(entries[pid])
    for rid, by_signal in by_receiver.items():
        consumers: dict[Signal, Consumer] = {}
        targets: list[Node] = []
        for signal, nodes in by_signal.items():
            pipeline_consumers: list[Consumer] = []
            for n in nodes:
                assert n.consumer is not None
                pipeline_consumers.append(n.consumer)
            consumers[signal] = Fanout(pipeline_consumers)
            targets.extend(nodes)
        kept = reuse.receiver(rid, config.receivers[rid], frozenset(by_signal))
        if kept is not None:
            component, switches = kept.component, kept.switches
        else:
            switches = {signal: Switch(c, graph.activity) for signal, c in consumers.items()}
            settings = settings_for(rid, config.receivers[rid], "receiver")
            component = registry.receiver(rid.partition("/")[0]).create(settings, switches)
        graph.receivers[rid] = ReceiverNode("receiver", rid, tuple(by_signal), None, targets, component=component,
                                            targets=consumers, switches=switches)


def _tell_metadata_keys(graph: Graph, config: GatewayConfig) -> None:
    """Give each processor that asks (`ProcessorFactory.keep_metadata`) the metadata keys the exporters
    downstream of it batch by, and the further ones their sending reads."""
    policies = {n.key: n.policy for nodes in graph.pipelines.values() for n in nodes if n.policy is not None}
    for pid in config.service.pipelines:
        for node in graph.pipelines[pid]:
            if node.kind != "processor" or node.stage is None:
                continue
            tell = registry.processor(node.id.partition("/")[0]).keep_metadata
            if tell is None:
                continue
            keys: dict[str, None] = {}
            read: dict[str, None] = {}
            for x in graph.downstream(node):
                if not isinstance(x, ExporterNodeData):
                    continue
                given = graph.batching.get(x.id)
                if given is not None:
                    keys.update(dict.fromkeys(policies[given].metadata_keys))
                if x.component is not None:
                    read.update(dict.fromkeys(x.component.context_keys))
            tell(node.stage, tuple(keys), tuple(k for k in read if k not in keys))


def _apply_batching(graph: Graph, config: GatewayConfig) -> None:
    """Each `batch` processor's policy goes to the exporters downstream of it. Where several feed one
    exporter, the first pipeline in config order wins, and the others are logged."""
    for pid in config.service.pipelines:
        for node in graph.pipelines[pid]:
            policy = node.policy
            if policy is None:
                continue
            exporters = [n for n in graph.downstream(node) if isinstance(n, ExporterNodeData)]
            if not exporters:
                log.warning("%s in %s: no exporter downstream; requests pass unbatched", node.id, pid)
            for xnode in exporters:
                assert xnode.component is not None
                given = graph.batching.get(xnode.id)
                if given is not None:
                    log.info("exporter %s is fed by %s and %s; batching as %s says", xnode.id, given,
                             node.key, given)
                    continue
                graph.batching[xnode.id] = node.key
                xnode.component.set_batching(policy)
