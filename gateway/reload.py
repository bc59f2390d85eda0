"""A config reload that loses nothing: the new config's graph is built beside the running one, takes
over what did not change, and is swapped in between two requests.

1. Build the new graph. An extension, exporter or receiver whose config is unchanged (and whose
   extensions are kept) is the running object, taken as it is; every processor and connector, and the
   rest, are built anew.
2. Start what is new, downstream first. A receiver whose config changed, or that is gone, stops first
   (its port may be the new one's); then the new receivers start. An exporter with a persistent queue
   that replaces one of the same id waits (its requests wait with it) until the old one closed the
   storage. If anything fails to start, what started stops, and the old graph runs on.
3. Swap: every kept receiver's switches point at the new graph. A request already in the old graph
   finishes there.
4. Wait for the old graph's requests to be answered (within service::shutdown_timeout).
5. Retire the old graph: its processors and connectors stop (what they hold flows into its exporters);
   each exporter not kept hands its queue to the new one of the same id (memory: the entries move;
   persistent: it closes, and the new one reopens the storage), or, gone from the config, drains by
   the shutdown rules; then the extensions not kept stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any

from gateway import graph, registry
from gateway.component import Component, ExporterNode, Extension, ExtensionRef
from gateway.config.load import ConfigError, load_files
from gateway.config.model import GatewayConfig
from gateway.exporters.helper import Exporter
from gateway.extensions.watched_file import FileKey, file_key
from gateway.service import Service
from pipelines.batch import Signal
from pipelines.processors.batch import BatchPolicy

log = logging.getLogger("gateway.reload")

_ROLLBACK_DEADLINE = 5.0


def admin_restart_needed(old: GatewayConfig, new: GatewayConfig) -> bool:
    """Log, and say, whether `service::admin` changed where or how it listens (enabled, endpoint, tls), which
    takes effect at the next start; its `auth` is read at each request, so a reload changes it at once."""
    a, b = old.service.admin, new.service.admin
    if (a.enabled, a.endpoint, a.tls) == (b.enabled, b.endpoint, b.tls):
        return False
    log.warning("service::admin: a new enabled, endpoint or tls takes effect at the next start; it keeps "
                "listening as before (%s), with the new auth", a.endpoint if a.enabled else "not at all")
    return True


def admin_reload_error(old: GatewayConfig, new: GatewayConfig) -> str | None:
    """Why a reload from `old` to `new` is refused for the admin endpoint: it keeps listening as it started
    (a new endpoint, enabled or tls waits for the next start) with the new `auth`, so a reload that drops
    `auth` would leave a listener validate let out only with it open to anyone."""
    a, b = old.service.admin, new.service.admin
    if a.enabled and a.auth is not None and b.auth is None:
        return ("service::admin::auth: a reload cannot remove the admin endpoint's auth: the endpoint keeps "
                f"listening as it started ({a.endpoint}) until the next start; restart the gateway to remove it")
    return None


class _Keep:
    """`graph.Reuse` over the running graph: what an unchanged config lets run on."""

    def __init__(self, old: graph.Graph, old_config: GatewayConfig) -> None:
        self._old = old
        self._config = old_config
        self.extensions: dict[str, Extension] = {}
        self.exporters: dict[str, ExporterNode] = {}
        self.receivers: dict[str, graph.ReceiverNode] = {}
        # A kept exporter's batching before the new graph set its own (put back if the reload fails).
        self.policies: dict[str, BatchPolicy] = {}

    def _refs_kept(self, refs: Callable[[Any], list[ExtensionRef]] | None, config: Any) -> bool:
        return refs is None or all(ref.extension in self.extensions for ref in refs(config))

    def extension(self, eid: str, config: Any) -> Extension | None:
        ext = self._old.extensions.get(eid)
        if ext is None or self._config.extensions.get(eid) != config:
            return None
        self.extensions[eid] = ext
        return ext

    def exporter(self, xid: str, config: Any) -> ExporterNode | None:
        node = self._old.exporters.get(xid)
        if node is None or node.component is None or self._config.exporters.get(xid) != config:
            return None
        if not self._refs_kept(registry.exporter(xid.partition("/")[0]).extension_refs, config):
            return None
        self.exporters[xid] = node.component
        if isinstance(node.component, Exporter):
            self.policies[xid] = node.component.policy
        return node.component

    def receiver(self, rid: str, config: Any, signals: frozenset[Signal]) -> graph.ReceiverNode | None:
        node = self._old.receivers.get(rid)
        if node is None or self._config.receivers.get(rid) != config or frozenset(node.signals) != signals:
            return None
        if not self._refs_kept(registry.receiver(rid.partition("/")[0]).extension_refs, config):
            return None
        self.receivers[rid] = node
        return node


def _persistent(node: graph.ExporterNodeData | None) -> bool:
    c = node.component if node is not None else None
    return isinstance(c, Exporter) and c.queue_config.enabled and bool(c.queue_config.storage)


class _Reload:
    def __init__(self, service: Service, config: GatewayConfig) -> None:
        assert service.graph is not None
        self.service = service
        self.config = config
        self.old = service.graph
        self.old_config = service.config
        self.keep = _Keep(self.old, self.old_config)
        self.new = graph.Graph()
        self.started: list[tuple[str, Component]] = []
        self.stopped_receivers: list[tuple[str, Component]] = []
        self.deferred: set[str] = set()

    def build(self) -> None:
        self.service.graph = self.new  # extensions are looked up in it while it is built
        try:
            graph.build(self.config, self.service.telemetry, self.service.settings, self.new, self.keep)
        except BaseException:
            self._restore_batching()
            self.service.graph = self.old
            raise
        for xid, x in self.keep.exporters.items():
            if xid in self.old.batching and xid not in self.new.batching:
                x.set_batching(BatchPolicy())
        # Their storage is the old exporter's until it closes it (step 5).
        self.deferred = {xid for xid, x in self.new.exporters.items() if xid not in self.keep.exporters
                         and _persistent(x) and _persistent(self.old.exporters.get(xid))}

    def _restore_batching(self) -> None:
        for xid, policy in self.keep.policies.items():
            component = self.keep.exporters[xid]
            if isinstance(component, Exporter):
                component.policy = policy

    async def start(self) -> None:
        new, keep = self.new, self.keep
        if self.config.metrics_address() != self.old_config.metrics_address():
            log.warning("service::telemetry::metrics: a new address takes effect at the next start")
        admin_restart_needed(self.old_config, self.config)
        order: list[tuple[str, Component]] = [
            *((f"extension:{eid}", e) for eid, e in new.extensions.items() if eid not in keep.extensions),
            *((x.key, x.component) for xid, x in new.exporters.items()
              if x.component is not None and xid not in keep.exporters and xid not in self.deferred),
            *reversed(new.stages()),
        ]
        try:
            for name, component in order:
                await component.start()
                self.started.append((name, component))
            for rid, r in self.old.receivers.items():
                if rid not in keep.receivers and r.component is not None:
                    await r.component.shutdown()
                    self.stopped_receivers.append((r.key, r.component))
            for rid, r in new.receivers.items():
                if rid not in keep.receivers and r.component is not None:
                    await r.component.start()
                    self.started.append((r.key, r.component))
        except BaseException:
            await self._roll_back()
            raise

    async def _roll_back(self) -> None:
        for name, component in reversed(self.started):
            try:
                if isinstance(component, Exporter):
                    await component.drain(_ROLLBACK_DEADLINE)
                await asyncio.wait_for(component.shutdown(), _ROLLBACK_DEADLINE)
            except Exception as exc:
                log.error("config reload: stopping %s of the new config failed: %s", name, exc)
        self._restore_batching()
        self.service.graph = self.old
        for name, component in self.stopped_receivers:
            try:
                await component.start()
            except Exception as exc:
                log.error("config reload: %s of the running config could not listen again: %s", name, exc)

    def swap(self) -> None:
        for r in self.new.receivers.values():
            for signal, switch in r.switches.items():
                switch.point(r.targets[signal], self.new.activity)
        self.service.swap(self.config, self.new)
        for eid, ext in self.new.extensions.items():
            if eid not in self.keep.extensions:
                ext.ready()

    async def retire(self) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.old_config.service.shutdown_timeout
        try:
            await asyncio.wait_for(self.old.activity.idle(), self.old_config.service.shutdown_timeout)
        except TimeoutError:
            log.warning("config reload: %d request(s) still running on the old config; retiring it anyway",
                        self.old.activity.count)
        stages = self.old.stages()
        results = await asyncio.gather(*(s.shutdown() for _, s in stages), return_exceptions=True)
        for (name, _), result in zip(stages, results, strict=True):
            if isinstance(result, BaseException):
                log.error("config reload: %s of the old config stopped with an error: %s", name, result)
        hand_overs = [self._hand_over(xid, x, end) for xid, x in self.old.exporters.items()
                      if xid not in self.keep.exporters and x.component is not None]
        await asyncio.gather(*hand_overs)
        for eid, ext in reversed(self.old.extensions.items()):
            if eid not in self.keep.extensions:
                ext.not_ready()
                try:
                    await ext.shutdown()
                except Exception as exc:
                    log.error("config reload: extension %s of the old config stopped with an error: %s", eid, exc)

    async def _hand_over(self, xid: str, node: graph.ExporterNodeData, end: float) -> None:
        old = node.component
        assert old is not None
        successor = self.new.exporters.get(xid)
        new = successor.component if successor is not None else None
        within = max(0.0, end - asyncio.get_running_loop().time() - 0.5)
        try:
            if not isinstance(old, Exporter) or not isinstance(new, Exporter) or \
                    (new.queue is None and xid not in self.deferred):
                # Gone from the config, or nothing to take the queue: the shutdown rules.
                await old.drain(within)
                await old.shutdown()
                return
            left = await old.park(within)
            if xid in self.deferred:
                await old.shutdown()  # the storage closes with the entries in it ...
                await new.start()  # ... and the new exporter reopens it
                if left:
                    log.info("exporter %s: %d queued request(s) reopened from its persistent queue", xid, len(left))
                return
            taken = new.adopt(left)
            assert new.queue is not None
            await new.queue.store.sync()
            old.release([e for e, _ in left])
            await old.shutdown()
            if taken:
                log.info("exporter %s: %d queued request(s) handed to its new config", xid, taken)
        except Exception:
            log.exception("config reload: exporter %s of the old config could not hand over its queue", xid)
            if xid in self.deferred and isinstance(new, Exporter):
                await new.park(0.0)  # never opened: its requests are refused (retryably), not held forever


async def apply(service: Service, config: GatewayConfig) -> None:
    """Replace the running graph of `service` by one of `config`, losing no request. Raises what
    stopped the new graph from starting, with the old one still running."""
    step = _Reload(service, config)
    step.build()
    await step.start()
    step.swap()
    await step.retire()
    g = step.new
    log.info("config reloaded: %d pipeline(s); kept running: %d receiver(s), %d exporter(s), %d extension(s)",
             len(g.pipelines), len(step.keep.receivers), len(step.keep.exporters), len(step.keep.extensions))



class Reloader:
    """When and from what a running gateway reloads: `request()` (SIGHUP) or, with
    `service::reload::watch`, a change of a config file; the files are read and validated again
    (`transform` makes a worker's config of it), and an invalid config is refused, logged with
    validate's messages, while the running one stays. One reload at a time, and `run` returns only
    between two, so the shutdown never meets one half done."""

    def __init__(self, service: Service, paths: Sequence[str],
                 transform: Callable[[GatewayConfig], GatewayConfig] = lambda c: c) -> None:
        self.service = service
        self.paths = list(paths)
        self.transform = transform
        self._pending = asyncio.Event()
        self._counter = service.telemetry.config_reloads

    def request(self) -> None:
        self._pending.set()

    def _keys(self) -> list[FileKey | None]:
        return [file_key(p) for p in self.paths]

    async def run(self, stop: asyncio.Event) -> None:
        """Reload on every request until `stop` is set; watch the files while the config says so."""
        keys = self._keys()
        while not stop.is_set():
            settings = self.service.config.service.reload
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._pending.wait())]
            await asyncio.wait(waiters, timeout=settings.watch_interval if settings.watch else None,
                               return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            if stop.is_set():
                return
            if not self._pending.is_set():
                now = self._keys()
                if not settings.watch or now == keys:
                    continue
                log.info("config file changed: reloading")
            self._pending.clear()
            keys = self._keys()
            await self.reload()

    async def reload(self) -> str:
        """Read, validate and apply the config files; the outcome (applied, invalid, failed), counted."""
        outcome = await self._reload()
        self._counter.labels(outcome).inc()
        return outcome

    async def _reload(self) -> str:
        where = " + ".join(self.paths)
        try:
            loaded = load_files(self.paths)
        except ConfigError as exc:
            log.error("config reload refused, the running config stays: invalid configuration %s: %s",
                      where, "; ".join(exc.errors))
            return "invalid"
        except OSError as exc:
            log.error("config reload refused, the running config stays: cannot read %s: %s", where, exc)
            return "invalid"
        for warning in loaded.warnings:
            log.warning("%s", warning)
        refused = admin_reload_error(self.service.config, self.transform(loaded.config))
        if refused is not None:
            log.error("config reload refused, the running config stays: %s", refused)
            return "invalid"
        gc.unfreeze()  # the running graph was frozen at start: let the retired one be collected
        try:
            await apply(self.service, self.transform(loaded.config))
        except Exception as exc:
            log.error("config reload failed, the running config stays: %s", exc)
            return "failed"
        finally:
            gc.collect()
            gc.freeze()
        return "applied"
