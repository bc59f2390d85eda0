"""`include` / `exclude` matching with the Collector's rules (`internal/filter/filterconfig`,
`filterspan`, `filtermatcher`).

Within one property the listed values are alternatives (a service matches if it matches any of
`services`); the properties given are all required (services AND span_names AND ...). Exceptions
kept from the Collector: every entry of `attributes` and of `resources` must match, and every entry
of `libraries` must match the item's scope. `regexp` patterns are unanchored (Go's MatchString).
An item is processed if it matches `include` (when set) and does not match `exclude` (when set).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pipelines.processors import anyvalue
from pipelines.processors.actions import compile_go_regex

SPAN_KINDS = ("SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
              "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER")
_STANDARD_KINDS = sorted(SPAN_KINDS[1:])
NIL_SERVICE = "<nil-service-name>"


@dataclass(frozen=True)
class AttributeMatch:
    key: str = ""
    value: Any = None


@dataclass(frozen=True)
class LibraryMatch:
    name: str = ""
    version: str | None = None


@dataclass(frozen=True)
class RegexpOptions:
    """The Collector's filterset regexp options: remember each string's match result, in at most
    `cachemaxnumentries` entries (least recently used out first; 0: no bound)."""

    cacheenabled: bool = False
    cachemaxnumentries: int = 0

    def validate(self) -> list[str]:
        return ["cachemaxnumentries must not be negative"] if self.cachemaxnumentries < 0 else []


class RegexpSet:
    """Matches a string against any of `patterns` (search, as Go's MatchString), remembering results
    when the options ask for a cache."""

    def __init__(self, patterns: list[re.Pattern[str]], options: RegexpOptions | None) -> None:
        self.patterns = patterns
        self.cache: OrderedDict[str, bool] | None = (
            OrderedDict() if options is not None and options.cacheenabled else None)
        self._bound = options.cachemaxnumentries if options is not None else 0

    def __call__(self, s: str) -> bool:
        cache = self.cache
        if cache is None:
            return any(p.search(s) for p in self.patterns)
        hit = cache.get(s)
        if hit is not None:
            cache.move_to_end(s)
            return hit
        result = any(p.search(s) for p in self.patterns)
        cache[s] = result
        if self._bound and len(cache) > self._bound:
            cache.popitem(last=False)
        return result


@dataclass(frozen=True)
class MatchProperties:
    match_type: str = ""
    regexp: RegexpOptions | None = None
    services: tuple[str, ...] = ()
    span_names: tuple[str, ...] = ()
    span_kinds: tuple[str, ...] = ()
    attributes: tuple[AttributeMatch, ...] = ()
    resources: tuple[AttributeMatch, ...] = ()
    libraries: tuple[LibraryMatch, ...] = ()
    log_bodies: tuple[str, ...] = ()
    log_severity_texts: tuple[str, ...] = ()

    def validate(self) -> list[str]:
        try:
            SpanMatcher(self)
        except ValueError as exc:
            return [str(exc)]
        return []


StrFilter = Callable[[str], bool]


def _filter_set(mp: MatchProperties, items: tuple[str, ...], what: str) -> StrFilter:
    if mp.match_type == "strict":
        wanted = frozenset(items)
        return wanted.__contains__
    if mp.match_type == "regexp":
        patterns: list[re.Pattern[str]] = []
        for p in items:
            try:
                patterns.append(compile_go_regex(p))
            except re.error as exc:
                raise ValueError(f"error creating {what} filters: error parsing regexp {p!r}: {exc}") from None
        return RegexpSet(patterns, mp.regexp)
    raise ValueError(f"error creating {what} filters: unrecognized match_type: '{mp.match_type}', "
                     "valid types are: [regexp strict]")


class _AttributeMatcher:
    """All entries must match: the key present and, if a value is given, the value equal (strict,
    same type) or its string form matching (regexp, which takes string patterns only)."""

    def __init__(self, mp: MatchProperties, entries: tuple[AttributeMatch, ...], what: str) -> None:
        self.entries: list[tuple[str, AnyValue | None, StrFilter | None]] = []
        for e in entries:
            if not e.key:
                raise ValueError(f"error creating {what} filters: can't have empty key in the list of attributes")
            if e.value is None:
                self.entries.append((e.key, None, None))
                continue
            try:
                value = anyvalue.from_raw(e.value)
            except ValueError as exc:
                raise ValueError(f"error creating {what} filters: {exc}") from None
            if mp.match_type == "regexp":
                if value.WhichOneof("value") != "string_value":
                    raise ValueError(f'error creating {what} filters: match_type=regexp for "{e.key}" only supports '
                                     f"Str, but found {anyvalue.type_name(value)}")
                self.entries.append((e.key, None, _filter_set(mp, (value.string_value,), what)))
            elif mp.match_type == "strict":
                self.entries.append((e.key, value, None))
            else:
                _filter_set(mp, (), what)

    def match(self, attrs: Any) -> bool:
        if not self.entries:
            return True
        if not len(attrs):
            return False
        for key, value, text_filter in self.entries:
            found = anyvalue.get(attrs, key)
            if found is None:
                return False
            if text_filter is not None:
                kind = found.WhichOneof("value")
                if kind not in ("string_value", "bool_value", "int_value", "double_value"):
                    return False
                text = (anyvalue.format_double(found.double_value, es6=False) if kind == "double_value"
                        else anyvalue.as_string(found))
                if not text_filter(text):
                    return False
            elif value is not None and found != value:
                return False
        return True


class SpanMatcher:
    """Matches an item given its resource, scope, item attributes, and (spans) name and kind."""

    def __init__(self, mp: MatchProperties) -> None:
        if mp.log_bodies:
            raise ValueError("log_bodies should not be specified for trace spans")
        if mp.log_severity_texts:
            raise ValueError("log_severity_texts should not be specified for trace spans")
        if not (mp.services or mp.span_names or mp.attributes or mp.libraries or mp.resources or mp.span_kinds):
            raise ValueError('at least one of "services", "span_names", "span_kinds", "attributes", "libraries" '
                             'or "resources" field must be specified')
        if mp.span_kinds and mp.match_type == "strict":
            for kind in mp.span_kinds:
                if kind not in _STANDARD_KINDS:
                    raise ValueError("span_kinds string must match one of the standard span kinds when "
                                     f"match_type=strict: [{' '.join(_STANDARD_KINDS)}]")
        self.props = mp
        self.services = _filter_set(mp, mp.services, "service name") if mp.services else None
        self.names = _filter_set(mp, mp.span_names, "span name") if mp.span_names else None
        self.kinds = _filter_set(mp, mp.span_kinds, "span kind") if mp.span_kinds else None
        self.libraries = [
            (_filter_set(mp, (lib.name,), "library name"),
             _filter_set(mp, (lib.version,), "library version") if lib.version is not None else None)
            for lib in mp.libraries
        ]
        self.attributes = _AttributeMatcher(mp, mp.attributes, "attribute")
        self.resources = _AttributeMatcher(mp, mp.resources, "resource")

    def match_resource(self, resource: Any) -> bool:
        """The part that depends on the resource only (services, resources): checked once per resource."""
        if self.services is not None:
            service = anyvalue.get(resource.attributes, "service.name")
            if not self.services(anyvalue.as_string(service) if service is not None else NIL_SERVICE):
                return False
        return self.resources.match(resource.attributes)

    def match_scope(self, scope: Any) -> bool:
        for name_filter, version_filter in self.libraries:
            if not name_filter(scope.name):
                return False
            if version_filter is not None and not version_filter(scope.version):
                return False
        return True

    def match_item(self, attrs: Any, name: str | None = None, kind: int | None = None) -> bool:
        if self.names is not None and not self.names(name or ""):
            return False
        if self.kinds is not None:
            text = SPAN_KINDS[kind] if kind is not None and 0 <= kind < len(SPAN_KINDS) else ""
            if not self.kinds(text):
                return False
        return self.attributes.match(attrs)

    def item_independent(self) -> bool:
        """True when the outcome depends on resource and scope only (no per-item checks)."""
        return self.names is None and self.kinds is None and not self.attributes.entries


def check_for_signal(mp: MatchProperties | None, signal: str) -> None:
    """The Collector's per-signal rules, which only the pipeline a processor runs in can check."""
    if mp is None or signal == "traces":
        return
    if mp.services or mp.span_names or mp.span_kinds:
        raise ValueError(f"services, span_names, and span_kinds are not valid for {signal}")
    if signal == "metrics" and (mp.attributes or mp.libraries):
        raise ValueError("for metrics, include/exclude match only on resources")
