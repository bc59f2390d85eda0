"""The server-side authenticator contract that receivers call before any data is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


class AuthError(Exception):
    """The request is not authenticated. The message is safe to return: it never echoes a credential."""


@runtime_checkable
class Authenticator(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        """Check request headers (lower-case names); return the tenant the credential names, if any."""
        ...
