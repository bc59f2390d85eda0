"""The admin endpoint (`service::admin`, our addition): a JSON API on the running graph, read at each
request (a reload shows at once), for `gateway top` and `gateway tap`.

- `GET /api/v1/graph`: the pipelines, their components, the edges, and `Graph.describe()`;
- `GET /api/v1/stats`: per component, totals since start (`gateway.admin.stats`);
- `GET /api/v1/tap?component=ID&direction=in|out&limit=N&format=json|line&rate=R`: a stream of sampled
  items crossing the component's input or output, one per line (NDJSON, or text), `rate` a second at
  most (`gateway.admin.tap`), until `limit` lines were written or the client leaves;
- `GET /api/v1/traces?component=ID&direction=in|out`: the recent traces seen there, grouped by trace id,
  from a watch the server keeps open while it is asked for (`gateway.admin.watch`);
- `GET /api/v1/diff?component=processor:ID`: a before/after view of a processor, the sampled spans it kept
  (with their attribute changes), dropped or still holds, from a `DiffWatch` kept while it is asked for
  (`gateway.admin.diff`);
- `GET /`: the admin page (`gateway/admin/ui/index.html`), the graph with live rates and those traces.

With `service::admin::auth`, every route is behind that server authenticator (`gateway.admin.http.guard`).
With `service::workers`, each worker serves it on a private loopback port that it reports to the supervisor,
which serves the configured endpoint for all of them (`gateway.admin.workers`); every answer and every tap
item names the worker (`worker`, `pid`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Protocol, TypeVar

from aiohttp import web

from gateway.admin import diff, items
from gateway.admin.http import application, tap_query
from gateway.admin.stats import stats
from gateway.admin.tap import Direction, Tap, Taps
from gateway.admin.watch import Watch
from gateway.auth import Authenticator
from gateway.component import StatusSource
from gateway.config.model import AdminConfig, GatewayConfig
from gateway.graph import Graph, ReceiverNode, StageNode
from gateway.telemetry import Telemetry
from gateway.transport.http_site import start_site

log = logging.getLogger("gateway.admin")

# How often an idle tap looks whether its client left.
_IDLE_CHECK = 1.0


class Source(Protocol):
    """What the admin endpoint reads: the service."""

    graph: Graph | None
    # The running config (a reload replaces it): `service::admin::auth` is read from it at each request.
    config: GatewayConfig
    telemetry: Telemetry
    worker: int | None

    def component_status(self) -> StatusSource: ...

    def extension(self, component_id: str) -> Any: ...


class AdminServer:
    def __init__(self, config: AdminConfig, source: Source, reuse_port: bool = False) -> None:
        # Where it listens, and how (endpoint, tls): a reload changing those takes effect at the next start.
        self.config = config
        self._source = source
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.taps = Taps()
        self._open: set[Tap] = set()
        # Each with the graph it hooks: a reload's new graph gets a view of its own, the old one is closed.
        self._watches: dict[tuple[str, str], tuple[Graph, Watch]] = {}
        self._diffs: dict[str, tuple[Graph, diff.DiffWatch]] = {}

    async def start(self) -> None:
        app = application(self._authenticator, self._graph, self._stats, self._traces, self._tap, self._diff)
        try:
            tls = self.config.tls.ssl_context() if self.config.tls is not None else None
            self._runner, self.port = await start_site(app, self.config.endpoint, ssl_context=tls,
                                                       reuse_port=self._reuse_port)
        except OSError as exc:
            # A debugging aid never keeps the gateway from running.
            log.warning("admin endpoint %s not started: %s", self.config.endpoint, exc)

    async def shutdown(self) -> None:
        for tap in list(self._open):
            tap.close()
        for _, watch in self._watches.values():
            watch.close()
        self._watches.clear()
        for _, view in self._diffs.values():
            view.close()
        self._diffs.clear()
        self.taps.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authenticator(self) -> Authenticator | None:
        """The running config's `auth` and its extension in the running graph, looked up at each request (a
        reload may add, change or remove either)."""
        auth = self._source.config.service.admin.auth
        if auth is None:
            return None
        ext = self._source.extension(auth.authenticator)
        if not isinstance(ext, Authenticator):
            raise KeyError(auth.authenticator)
        return ext

    def _who(self) -> dict[str, Any]:
        return {"worker": self._source.worker, "pid": os.getpid(), "time": time.time()}

    def _kinds(self, g: Graph) -> dict[str, str]:
        kinds = {f"receiver:{rid}": "receiver" for rid in g.receivers}
        for pid, nodes in g.pipelines.items():
            kinds[f"pipeline:{pid}"] = "pipeline"
            kinds.update({f"processor:{n.id}": "processor" for n in nodes if n.kind == "processor"})
        kinds.update({f"connector:{cid}": "connector" for cid, _ in g.connectors})
        kinds.update({f"exporter:{xid}": "exporter" for xid in g.exporters})
        return kinds

    async def _graph(self, request: web.Request) -> web.Response:
        g = self._source.graph
        body: dict[str, Any] = {**self._who(), "pipelines": [], "components": [], "edges": [], "describe": ""}
        if g is not None:
            body["pipelines"] = [{"id": p.id, "receivers": p.receivers, "processors": p.processors,
                                  "exporters": p.exporters, "connectors": sorted(p.connectors)}
                                 for p in g.pipeline_views()]
            body["components"] = [{"key": k, "kind": kind, "id": k.partition(":")[2]}
                                  for k, kind in self._kinds(g).items()]
            body["edges"] = [[a.key, b.key] for a, b in g.edges()]
            body["describe"] = g.describe()
        return web.json_response(body)

    async def _stats(self, request: web.Request) -> web.Response:
        g = self._source.graph
        kinds = self._kinds(g) if g is not None else {}
        components = stats(self._source.telemetry.registry.collect(), kinds,
                           self._source.component_status().statuses(), self._source.telemetry.retries)
        return web.json_response({**self._who(), "components": components})

    def _edge(self, g: Graph, component: str, direction: Direction) -> tuple[str, list[Any]]:
        """The consumers whose `consume` carries the component's inputs or outputs; ValueError if none."""
        kind, _, cid = component.rpartition(":")
        found: list[tuple[str, list[Any]]] = []
        if kind in ("", "receiver") and cid in g.receivers:
            node: ReceiverNode = g.receivers[cid]
            found.append((f"receiver:{cid}", list(node.switches.values())))  # a receiver passes all it takes
        if kind in ("", "pipeline") and cid in g.pipelines:
            nodes = g.pipelines[cid]
            found.append((f"pipeline:{cid}", [(nodes[0] if direction == "in" else nodes[-1]).consumer]))
        if kind in ("", "processor"):
            procs = _processors(g, cid)
            if procs:
                found.append((f"processor:{cid}", [_next(n) if direction == "out" else n.consumer for n in procs]))
        if kind in ("", "connector"):
            conns = [n for (c, _), n in g.connectors.items() if c == cid]
            if conns:
                if direction == "out":
                    raise ValueError(f"connector {cid!r}: tap the inputs of the pipelines it feeds (pipeline:ID)")
                found.append((f"connector:{cid}", [n.consumer for n in conns]))
        if kind in ("", "exporter") and cid in g.exporters:
            if direction == "out":
                raise ValueError(f"exporter {cid!r}: only its inputs can be tapped (what it sends is what it takes)")
            found.append((f"exporter:{cid}", [g.exporters[cid].component]))
        if not found:
            raise ValueError(f"no component {component!r} in the running graph")
        if len(found) > 1:
            raise ValueError(f"{component!r} names {', '.join(k for k, _ in found)}: say which, as KIND:ID")
        return found[0]

    async def _traces(self, request: web.Request) -> web.Response:
        q = request.query
        direction = q.get("direction", "in")
        g = self._source.graph
        if direction not in ("in", "out") or g is None or "component" not in q:
            raise web.HTTPBadRequest(text="component=ID (or KIND:ID) is required, direction: in|out")
        try:
            key, consumers = self._edge(g, q["component"], "in" if direction == "in" else "out")
        except ValueError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        watch = _on_graph(self._watches.get((key, direction)), g)
        if watch is None or watch.tap.closed:
            watch = Watch(key, "in" if direction == "in" else "out", consumers, self.taps)
            self._watches[(key, direction)] = (g, watch)
        watch.asked = time.monotonic()
        return web.json_response({**self._who(), "component": key, "direction": direction,
                                  "traces": watch.summary()})

    async def _diff(self, request: web.Request) -> web.Response:
        g = self._source.graph
        component = request.query.get("component", "")
        kind, _, cid = component.rpartition(":")
        if g is None or not cid or kind not in ("", "processor"):
            raise web.HTTPBadRequest(text="component=processor:ID (or ID) is required: a before/after view is "
                                          "of a processor")
        procs = _processors(g, cid)
        if not procs:
            raise web.HTTPNotFound(text=f"no processor {cid!r} in the running graph")
        key = f"processor:{cid}"
        view = _on_graph(self._diffs.get(key), g)
        if view is None or view.closed:
            telemetry = self._source.telemetry
            instances = [diff.Instance(n.pipeline or "", n.consumer, _next(n)) for n in procs]
            grace = diff.grace(cid.partition("/")[0], self._source.config.processors.get(cid))
            view = diff.DiffWatch(key, instances, self.taps, grace, lambda: _drops(telemetry, cid))
            self._diffs[key] = (g, view)
        view.asked = time.monotonic()
        return web.json_response({**self._who(), "component": key, "grace": view.grace,
                                  "traces": view.summary()})

    async def _tap(self, request: web.Request) -> web.StreamResponse:
        tq = tap_query(request)
        fmt, limit = tq.fmt, tq.limit
        g = self._source.graph
        if g is None:
            raise web.HTTPServiceUnavailable(text="the gateway is not running a graph")
        try:
            key, consumers = self._edge(g, tq.component, tq.direction)
        except ValueError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        tap = Tap(key, tq.direction, tq.rate)
        who = {"worker": self._source.worker, "pid": os.getpid()}
        resp = web.StreamResponse(headers={
            "Content-Type": "application/x-ndjson" if fmt == "json" else "text/plain; charset=utf-8",
            "X-Gateway-Worker": str(self._source.worker or 0), "X-Gateway-Pid": str(os.getpid())})
        await resp.prepare(request)
        self.taps.open(tap, consumers)
        self._open.add(tap)
        written = 0
        try:
            while not tap.closed and (limit == 0 or written < limit):
                got = await tap.next(_IDLE_CHECK)
                if got is None:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                batch, n = got
                lines = []
                for item in items.items(batch, n if limit == 0 else min(n, limit - written)):
                    item = {"component": key, "direction": tap.direction, **who, **item}
                    lines.append(items.as_json(item) if fmt == "json" else items.as_text(item))
                written += len(lines)
                if lines:
                    await resp.write(("\n".join(lines) + "\n").encode())
        except ConnectionResetError:
            pass
        finally:
            self._open.discard(tap)
            self.taps.close(tap, consumers)
        return resp


def _processors(g: Graph, cid: str) -> list[StageNode]:
    """The processor's instances, one per pipeline listing it."""
    return [n for nodes in g.pipelines.values() for n in nodes if n.kind == "processor" and n.id == cid]


def _drops(telemetry: Telemetry, component: str) -> dict[str, float]:
    """The component's `otelcol_gateway_dropped_spans_total` by reason."""
    out: dict[str, float] = {}
    for metric in telemetry.registry.collect():
        if metric.name == "otelcol_gateway_dropped_spans":
            for s in metric.samples:
                if s.name.endswith("_total") and s.labels.get("component") == component:
                    out[s.labels["reason"]] = s.value
    return out


_View = TypeVar("_View", Watch, diff.DiffWatch)


def _on_graph(held: tuple[Graph, _View] | None, g: Graph) -> _View | None:
    """The view held, if it hooks `g`; one hooked on a graph a reload retired is closed, and None."""
    if held is None:
        return None
    if held[0] is g:
        return held[1]
    held[1].close()
    return None


def _next(node: StageNode) -> Any:
    nxt = node.next[0]
    assert isinstance(nxt, StageNode)
    return nxt.consumer
