"""The authenticator contracts: the server side that receivers call before any data is read, and the
client side that exporters call for the headers of each export call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pipelines.batch import RequestContext


class AuthError(Exception):
    """The request is not authenticated. The message is safe to return: it never echoes a credential."""


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: the tenant its data belongs to, and attributes of the identity
    (`username`, `subject`, `membership`) for `from_context: auth.<name>`, the routing connector's
    `request["auth.<name>"]` and `headers_setter`'s `from_attribute`. Never a credential: unlike the
    Collector, no `raw` attribute carries the presented token or password onwards."""

    tenant: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


ANONYMOUS = Identity()


@runtime_checkable
class Authenticator(Protocol):
    async def identify(self, headers: Mapping[str, str]) -> Identity:
        """Check request headers (lower-case names); return who sent them, or raise AuthError."""
        ...


@runtime_checkable
class ClientAuthenticator(Protocol):
    """What an exporter's `auth: {authenticator: ...}` names."""

    def context_keys(self) -> tuple[str, ...]:
        """Request metadata keys the headers depend on: the exporter's queue keeps them with each
        request and never batches requests with different values together."""
        ...

    async def apply(self, headers: dict[str, str], context: RequestContext) -> None:
        """Change the headers (lower-case names) of one export call carrying a batch of `context`.
        Raises RetryableError when credentials cannot be had now (a token endpoint down)."""
        ...

    async def unauthorized(self, sent: Mapping[str, str]) -> bool:
        """The backend answered 401 / UNAUTHENTICATED to a call with headers `sent`: drop the cached
        credentials if they are the ones refused (another call may have replaced them already); True
        when fresh ones may differ, so the call is sent once more."""
        ...
