"""Component status: the latest `StatusEvent` of every component instance of the running graph, kept by
the Collector's state machine, for the extensions that watch it (healthcheckv2).

The service reports each instance's start and stop (`report`); a component reports its own runtime
state through the reporter in its settings (`reporter`), which speaks for every instance of its kind and
id (an exporter is one instance, whichever pipelines list it). A config reload `replace`s the instances.
Everything runs on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from gateway.component import ComponentKind, InstanceID, Status, StatusEvent, StatusReporter

log = logging.getLogger("gateway.status")

# The Collector's transitions (componentstatus): anything else is ignored. A status is never reported
# twice in a row, so a recoverable error keeps the time it began; a permanent or fatal error stays until
# the component stops.
_NONE = "StatusNone"
TRANSITIONS: dict[str, frozenset[Status]] = {
    _NONE: frozenset({"StatusStarting"}),
    "StatusStarting": frozenset({"StatusOK", "StatusRecoverableError", "StatusPermanentError", "StatusFatalError",
                                 "StatusStopping"}),
    "StatusOK": frozenset({"StatusRecoverableError", "StatusPermanentError", "StatusFatalError", "StatusStopping"}),
    "StatusRecoverableError": frozenset({"StatusOK", "StatusPermanentError", "StatusFatalError", "StatusStopping"}),
    "StatusPermanentError": frozenset({"StatusStopping"}),
    "StatusFatalError": frozenset(),
    "StatusStopping": frozenset({"StatusRecoverableError", "StatusPermanentError", "StatusFatalError",
                                 "StatusStopped"}),
    "StatusStopped": frozenset(),
}


class _Reporter:
    def __init__(self, hub: StatusHub, kind: ComponentKind, cid: str) -> None:
        self._hub, self._kind, self._id = hub, kind, cid

    def report(self, event: StatusEvent) -> None:
        for instance in self._hub.instances_of(self._kind, self._id):
            self._hub.report(instance, event)


class StatusHub:
    def __init__(self) -> None:
        self._latest: dict[InstanceID, StatusEvent] = {}
        self._instances: dict[tuple[str, str], list[InstanceID]] = {}
        self._watchers: list[Callable[[], None]] = []

    # -- the service's side
    def replace(self, instances: Iterable[InstanceID]) -> None:
        """The instances of the graph that runs from now on: those of the previous one keep their status
        (an instance listed in other pipelines now, under its kind and id), the rest have none yet."""
        by_key = {(i.kind, i.id): ev for i, ev in self._latest.items()}
        self._instances = {}
        latest: dict[InstanceID, StatusEvent] = {}
        for instance in instances:
            self._instances.setdefault((instance.kind, instance.id), []).append(instance)
            event = self._latest.get(instance) or by_key.get((instance.kind, instance.id))
            if event is not None:
                latest[instance] = event
        self._latest = latest
        self._changed()

    def report(self, instance: InstanceID, event: StatusEvent) -> None:
        current = self._latest.get(instance)
        if event.status not in TRANSITIONS[current.status if current is not None else _NONE]:
            return
        self._latest[instance] = event
        if event.status in ("StatusPermanentError", "StatusFatalError"):
            log.error("%s: %s: %s", instance.key, event.status, event.error)
        self._changed()

    def reporter(self, kind: ComponentKind, cid: str) -> StatusReporter:
        return _Reporter(self, kind, cid)

    def instances_of(self, kind: ComponentKind, cid: str) -> list[InstanceID]:
        return self._instances.get((kind, cid), [])

    # -- StatusSource
    def statuses(self) -> Mapping[InstanceID, StatusEvent]:
        return dict(self._latest)

    def watch(self, changed: Callable[[], None]) -> Callable[[], None]:
        self._watchers.append(changed)

        def stop() -> None:
            if changed in self._watchers:
                self._watchers.remove(changed)

        return stop

    def _changed(self) -> None:
        for watcher in list(self._watchers):
            try:
                watcher()
            except Exception:  # a watcher's bug must not stop the component that reported
                log.exception("a component status watcher failed")
