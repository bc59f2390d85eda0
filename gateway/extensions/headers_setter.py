"""The `headers_setter` extension: a client authenticator that sets an exporter's request headers from
fixed values, the incoming request's metadata (`from_context`) or the authenticated identity
(`from_attribute`), as the Collector's does; used as an exporter's `auth: {authenticator: headers_setter}`.

Beyond the Collector, nothing else needs configuring for `from_context` to survive batching: the
exporter's queue keeps the metadata keys this extension reads with each request and never batches
requests with different values together (the Collector needs them listed in the batch processor's
`metadata_keys`). The receiver still needs `include_metadata: true`, as in the Collector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.component import ExtensionFactory, Settings
from gateway.extensions.passive import Passive
from pipelines.batch import RequestContext
from pipelines.config_types import unsupported

Action = Literal["insert", "update", "upsert", "delete"]
AUTH_PREFIX = "auth."


@dataclass(frozen=True)
class HeaderConfig:
    key: str = ""
    action: Action = "upsert"
    value: str | None = None
    # A request metadata key (a request header, with the receiver's `include_metadata: true`), or
    # `auth.<attribute>` (ours: the identity, as the attributes processor's `from_context` reads it).
    from_context: str | None = None
    # An attribute of the authenticated identity: `tenant`, `username`, `subject`, `membership`.
    from_attribute: str | None = None
    default_value: str | None = None
    value_file: Any = unsupported("a header value read from a file; set `value` (${file:...} works)")

    def problems(self) -> list[str]:
        if not self.key:
            return ["missing header name"]
        sources = [s for s in (self.value, self.from_context, self.from_attribute) if s is not None]
        if self.action == "delete":
            return ["a delete action takes no value"] if sources or self.default_value is not None else []
        if not sources:
            return ["missing header source, must be 'from_context', 'from_attribute' or 'value'"]
        if len(sources) > 1:
            return ["invalid header source, must be one of 'from_context', 'from_attribute' or 'value'"]
        if self.value is not None and self.default_value is not None:
            return ["default_value applies to from_context and from_attribute only"]
        return []

    def lookup(self, context: RequestContext) -> str | None:
        if self.value is not None:
            return self.value
        if self.from_context is not None:
            if self.from_context.startswith(AUTH_PREFIX):
                found = context.get_auth(self.from_context.removeprefix(AUTH_PREFIX))
            else:
                found = context.get_metadata(self.from_context)
            if found:
                return ";".join(found)
        elif self.from_attribute is not None:
            found = context.get_auth(self.from_attribute)
            if found:
                # The Collector writes a list-valued attribute (membership) as JSON.
                return found[0] if len(found) == 1 else json.dumps(list(found))
        return self.default_value


@dataclass(frozen=True)
class Config:
    headers: tuple[HeaderConfig, ...] = ()
    additional_auth: Any = unsupported("an exporter takes one authenticator here; set fixed credentials with "
                                       "a header `value`")

    def validate(self) -> list[str]:
        if not self.headers:
            return ["missing headers configuration"]
        return [f"headers[{i}]: {p}" for i, h in enumerate(self.headers) for p in h.problems()]


def context_keys(config: Config) -> tuple[str, ...]:
    """The request headers `from_context` reads (not the identity's `auth.*`): kept by the exporter's queue."""
    return tuple(dict.fromkeys(h.from_context.lower() for h in config.headers
                               if h.from_context is not None and not h.from_context.startswith(AUTH_PREFIX)))


class HeadersSetter(Passive):
    def __init__(self, settings: Settings[Config]) -> None:
        self.id = settings.id
        self.config = settings.config
        self._keys = context_keys(self.config)

    def context_keys(self) -> tuple[str, ...]:
        return self._keys

    async def apply(self, headers: dict[str, str], context: RequestContext) -> None:
        for h in self.config.headers:
            name = h.key.lower()
            if h.action == "delete":
                headers.pop(name, None)
                continue
            present = name in headers
            if (h.action == "insert" and present) or (h.action == "update" and not present):
                continue
            value = h.lookup(context)
            if value:
                headers[name] = value

    async def unauthorized(self, sent: Mapping[str, str]) -> bool:
        return False  # its headers do not change by asking again


def create(settings: Settings[Config]) -> HeadersSetter:
    return HeadersSetter(settings)


FACTORY = ExtensionFactory(type="headers_setter", config=Config, create=create,
                           roles=frozenset({"client_authenticator"}), context_keys=context_keys)
