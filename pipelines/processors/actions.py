"""Attribute actions shared by the `attributes` and `resource` processors, with the Collector's
semantics (`internal/coreinternal/attraction`): applied in order to one attribute map.

Each compiled action can also tell, without changing anything, whether it would change a map
(`touches`). A processor asks that first, so a batch nothing applies to passes through with its bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import re2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pipelines.batch import Batch, RequestContext
from pipelines.processors import anyvalue

_CONVERT_TARGETS = ("string", "int", "double")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # an invalid pattern is the config's error, reported by validate


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """A Go regular expression compiled by RE2 itself (google-re2), as the Collector compiles it: the
    same syntax and semantics (`$` only at the very end, ASCII `\\d` and `\\w`, `(?<name>` groups, no
    lookaround or backreferences) and matching in time linear in the text, so no span's data can make
    a pattern from the config take exponential time, as Python's backtracking `re` could. The result
    has the `re.Pattern` methods the callers use (search, match, fullmatch, sub, finditer, groupindex);
    an invalid pattern raises `re.error`, as `re.compile` does."""
    try:
        compiled = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        raise re.error(detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)) from None
    return cast("re.Pattern[str]", compiled)


@dataclass(frozen=True)
class ActionConfig:
    key: str = ""
    action: str = ""
    value: Any = None
    from_attribute: str = ""
    from_context: str = ""
    pattern: str = ""
    converted_type: str = ""

    def problems(self, i: int) -> list[str]:
        """The Collector's messages for an invalid action (it stops at the first; so do we, per action)."""
        try:
            compile_action(self, i)
        except ValueError as exc:
            return [str(exc)]
        return []


def _err(message: str) -> ValueError:
    return ValueError(message)


def compile_action(a: ActionConfig, i: int) -> Action:
    act = a.action.lower()
    if act in ("delete", "hash"):
        if not a.key and not a.pattern:
            raise _err('error creating AttrProc due to missing required field (at least one of "key" and '
                       f'"pattern" have to be used) at the {i}-th actions')
    elif not a.key:
        raise _err(f'error creating AttrProc due to missing required field "key" at the {i}-th actions')
    sources = (a.value is not None) + bool(a.from_attribute) + bool(a.from_context)
    regex: re.Pattern[str] | None = None
    value: AnyValue | None = None
    if act in ("insert", "update", "upsert"):
        if sources == 0:
            raise _err('error creating AttrProc. Either field "value", "from_attribute" or "from_context" '
                       f"setting must be specified for {i}-th action")
        if sources > 1:
            raise _err(f"error creating AttrProc due to multiple value sources being set at the {i}-th actions")
        if a.pattern:
            raise _err(f'error creating AttrProc. Action "{act}" does not use the "pattern" field. '
                       f"This must not be specified for {i}-th action")
        if a.converted_type:
            raise _err(f'error creating AttrProc. Action "{act}" does not use the "converted_type" field. '
                       f"This must not be specified for {i}-th action")
        if a.value is not None:
            try:
                value = anyvalue.from_raw(a.value)
            except ValueError as exc:
                raise _err(f"error creating AttrProc: {exc} at the {i}-th actions") from None
    elif act in ("hash", "delete"):
        if a.value is not None or a.from_attribute:
            raise _err(f'error creating AttrProc. Action "{act}" does not use "value" or "from_attribute" '
                       f"field. These must not be specified for {i}-th action")
        if a.pattern:
            regex = _compile(a.pattern, i)
        if a.converted_type:
            raise _err(f'error creating AttrProc. Action "{act}" does not use the "converted_type" field. '
                       f"This must not be specified for {i}-th action")
    elif act == "extract":
        if sources:
            raise _err(f'error creating AttrProc. Action "{act}" does not use a value source field. '
                       f"These must not be specified for {i}-th action")
        if not a.pattern:
            raise _err(f'error creating AttrProc due to missing required field "pattern" for action "{act}" '
                       f"at the {i}-th action")
        if a.converted_type:
            raise _err(f'error creating AttrProc. Action "{act}" does not use the "converted_type" field. '
                       f"This must not be specified for {i}-th action")
        regex = _compile(a.pattern, i)
        if regex.groups == 0:
            raise _err(f'error creating AttrProc. Field "pattern" contains no named matcher groups at the '
                       f"{i}-th actions")
        if len(regex.groupindex) != regex.groups:
            raise _err('error creating AttrProc. Field "pattern" contains at least one unnamed matcher group '
                       f"at the {i}-th actions")
    elif act == "convert":
        if sources or a.pattern:
            raise _err(f'error creating AttrProc. Action "{act}" does not use value sources or "pattern" field. '
                       f"These must not be specified for {i}-th action")
        if not a.converted_type:
            raise _err(f'error creating AttrProc due to missing required field "converted_type" for action '
                       f'"{act}" at the {i}-th action')
        if a.converted_type not in _CONVERT_TARGETS:
            raise _err(f'error creating AttrProc due to invalid value "{a.converted_type}" in field '
                       f'"converted_type" for action "{act}" at the {i}-th action')
    else:
        raise _err(f'error creating AttrProc due to unsupported action "{act}" at the {i}-th actions')
    return Action(act, a.key, value, a.from_attribute, a.from_context, regex, a.converted_type)


def _compile(pattern: str, i: int) -> re.Pattern[str]:
    try:
        return compile_go_regex(pattern)
    except re.error:
        raise _err(f'error creating AttrProc. Field "pattern" has invalid pattern: "{pattern}" to be set at '
                   f"the {i}-th actions") from None


def context_value(ctx: RequestContext, name: str) -> AnyValue | None:
    """`from_context`: `metadata.<key>` (request headers, kept with `include_metadata: true`),
    `auth.tenant` (the authenticator's tenant), `auth.<attribute>` (`username`, `subject`,
    `membership`), or a bare metadata key. Several values join with `;`."""
    if name.startswith("auth."):
        found = ctx.get_auth(name.removeprefix("auth."))
        return anyvalue.from_raw(";".join(found)) if found else None
    if name == "client.address":
        return None
    values = ctx.get_metadata(name.removeprefix("metadata."))
    if not values:
        return None
    return anyvalue.from_raw(";".join(values))


class Action:
    __slots__ = ("absent", "action", "converted_type", "from_attribute", "from_context", "key", "regex", "run",
                 "touches", "value")

    def __init__(self, action: str, key: str, value: AnyValue | None, from_attribute: str, from_context: str,
                 regex: re.Pattern[str] | None, converted_type: str) -> None:
        self.action = action
        self.key = key
        self.value = value
        self.from_attribute = from_attribute
        self.from_context = from_context
        self.regex = regex
        self.converted_type = converted_type
        # Set per batch by ActionList.prepare: the key is in no item of the batch being processed.
        self.absent = False
        self.run: Callable[[Any, RequestContext], bool] = getattr(self, f"_{action}")
        self.touches: Callable[[Any, RequestContext], bool] = getattr(self, f"_touches_{action}")

    def _source(self, attrs: Any, ctx: RequestContext) -> AnyValue | None:
        if self.value is not None:
            return self.value
        if self.from_context:
            return context_value(ctx, self.from_context)
        found = anyvalue.get(attrs, self.from_attribute)
        if found is None:
            return None
        copy = AnyValue()
        copy.CopyFrom(found)
        return copy

    # -- insert / update / upsert
    def _insert(self, attrs: Any, ctx: RequestContext) -> bool:
        if not self.absent and anyvalue.find(attrs, self.key) >= 0:
            return False
        src = self._source(attrs, ctx)
        if src is None:
            return False
        anyvalue.put(attrs, self.key, src)
        return True

    def _touches_insert(self, attrs: Any, ctx: RequestContext) -> bool:
        return (self.absent or anyvalue.find(attrs, self.key) < 0) and self._has_source(attrs, ctx)

    def _update(self, attrs: Any, ctx: RequestContext) -> bool:
        i = anyvalue.find(attrs, self.key)
        if i < 0:
            return False
        src = self._source(attrs, ctx)
        if src is None:
            return False
        attrs[i].value.CopyFrom(src)
        return True

    def _touches_update(self, attrs: Any, ctx: RequestContext) -> bool:
        i = anyvalue.find(attrs, self.key)
        if i < 0:
            return False
        src = self._source(attrs, ctx)
        return src is not None and src != attrs[i].value

    def _upsert(self, attrs: Any, ctx: RequestContext) -> bool:
        src = self._source(attrs, ctx)
        if src is None:
            return False
        i = -1 if self.absent else anyvalue.find(attrs, self.key)
        if i < 0:
            anyvalue.put(attrs, self.key, src)
        else:
            attrs[i].value.CopyFrom(src)
        return True

    def _touches_upsert(self, attrs: Any, ctx: RequestContext) -> bool:
        src = self._source(attrs, ctx)
        if src is None:
            return False
        i = anyvalue.find(attrs, self.key)
        return i < 0 or src != attrs[i].value

    def _has_source(self, attrs: Any, ctx: RequestContext) -> bool:
        if self.value is not None:
            return True
        if self.from_context:
            return context_value(ctx, self.from_context) is not None
        return anyvalue.find(attrs, self.from_attribute) >= 0

    # -- delete / hash (by key and/or pattern)
    def _matching(self, attrs: Any) -> list[int]:
        out = []
        key, regex = self.key, self.regex
        for i, kv in enumerate(attrs):
            if (key and kv.key == key) or (regex is not None and regex.search(kv.key)):
                out.append(i)
        return out

    def _delete(self, attrs: Any, ctx: RequestContext) -> bool:
        hits = self._matching(attrs)
        for i in reversed(hits):
            del attrs[i]
        return bool(hits)

    def _touches_delete(self, attrs: Any, ctx: RequestContext) -> bool:
        key, regex = self.key, self.regex
        return any((key and kv.key == key) or (regex is not None and regex.search(kv.key)) for kv in attrs)

    def _hash(self, attrs: Any, ctx: RequestContext) -> bool:
        hits = self._matching(attrs)
        for i in hits:
            anyvalue.hash_value(attrs[i].value)
        return bool(hits)

    _touches_hash = _touches_delete

    # -- extract / convert
    def _extract_match(self, attrs: Any) -> re.Match[str] | None:
        v = anyvalue.get(attrs, self.key)
        if v is None or v.WhichOneof("value") != "string_value":
            return None
        assert self.regex is not None
        return self.regex.search(v.string_value)

    def _extract(self, attrs: Any, ctx: RequestContext) -> bool:
        m = self._extract_match(attrs)
        if m is None:
            return False
        for name, text in m.groupdict(default="").items():
            i = anyvalue.find(attrs, name)
            if i < 0:
                kv = attrs.add()
                kv.key = name
                kv.value.string_value = text
            else:
                attrs[i].value.string_value = text
        return True

    def _touches_extract(self, attrs: Any, ctx: RequestContext) -> bool:
        return self._extract_match(attrs) is not None

    def _convert(self, attrs: Any, ctx: RequestContext) -> bool:
        v = anyvalue.get(attrs, self.key)
        return v is not None and anyvalue.convert(v, self.converted_type)

    def _touches_convert(self, attrs: Any, ctx: RequestContext) -> bool:
        v = anyvalue.get(attrs, self.key)
        if v is None:
            return False
        probe = AnyValue()
        probe.CopyFrom(v)
        return anyvalue.convert(probe, self.converted_type)


class ActionList:
    """Compiled actions, applied in order to one attribute map."""

    __slots__ = ("actions",)

    def __init__(self, configs: tuple[ActionConfig, ...]) -> None:
        self.actions = [compile_action(a, i) for i, a in enumerate(configs)]

    def may_touch(self, data: bytes) -> bool:
        """False when the serialized request shows no action can apply: every action needs its key
        present, and no key occurs anywhere in the bytes. A cheap test before walking the items."""
        for a in self.actions:
            if a.action in ("insert", "upsert") or (a.regex is not None and a.action != "extract"):
                return True
            if a.key.encode() in data:
                return True
        return False

    def prepare(self, data: bytes) -> None:
        """Note, for this batch, which keys occur nowhere in it, so insert/upsert skip looking them up.
        A key an earlier action may write is never taken as absent. Processing is synchronous, so
        the note stays valid for the batch it was made for."""
        written: set[str] = set()
        for a in self.actions:
            a.absent = a.key not in written and a.key.encode() not in data
            written.add(a.key)
            if a.action == "extract" and a.regex is not None:
                written.update(a.regex.groupindex)

    def touches(self, attrs: Any, ctx: RequestContext) -> bool:
        # Exact: until one action changes the map, each sees it as it arrived.
        return any(a.touches(attrs, ctx) for a in self.actions)

    def apply(self, attrs: Any, ctx: RequestContext) -> bool:
        changed = False
        for a in self.actions:
            changed = a.run(attrs, ctx) or changed
        return changed


def validate_actions(configs: tuple[ActionConfig, ...], field: str) -> list[str]:
    if not configs:
        return [f'missing required field "{field}"']
    return [p for i, a in enumerate(configs) for p in a.problems(i)]


Walk = Callable[[Any, RequestContext, bool], bool]


def apply_to_parse(actions: ActionList, batch: Batch, walk: Walk) -> Batch:
    """The upb reference path the attributes and resource processors share: `walk(msg, ctx, apply)`
    visits what the processor owns. Nothing is copied unless something would change; then the
    actions are applied to this batch's own copy of the parse."""
    ctx = batch.context
    data = batch.data()
    if not actions.may_touch(data):
        return batch
    actions.prepare(data)
    if not walk(batch.message(), ctx, False):
        return batch
    out = batch.share()
    walk(out.mutable_message(), ctx, True)
    return out
