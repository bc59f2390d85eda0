"""Which request headers may be written to disk: by an exporter's persistent queue, by `tail_sampling`'s
`storage`. An allow-list: `PERSISTABLE_HEADERS` (they name a tenant) and the ones the operator lists as
free of credentials; a header that may carry a credential by its name is never written, listed or not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PERSISTABLE_HEADERS = frozenset({"x-scope-orgid", "x-tenant", "x-tenant-id", "tenant"})
# Headers that carry credentials, by name or by a part of it: never written to disk, even when listed.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-honeycomb-team",
                                "api-key", "apikey", "x-api-key", "dd-api-key", "x-sf-token"})
_CREDENTIAL_PARTS = ("auth", "token", "key", "secret", "password", "passwd", "cookie", "session", "credential",
                     "signature")


def may_carry_credentials(header: str) -> bool:
    name = header.lower()
    return name in CREDENTIAL_HEADERS or any(part in name for part in _CREDENTIAL_PARTS)


def listed_credentials(listed: Iterable[str], key: str) -> list[str]:
    """The config errors of an allow-list (`key`) that names a header which may carry credentials."""
    return [f"{key}: {name.lower()!r} may carry credentials; it is never written to disk"
            for name in listed if may_carry_credentials(name)]


def disk_refusals(kept: Mapping[str, str], listed: Iterable[str], writer: str, list_key: str,
                  instead: str) -> list[str]:
    """Why `writer` (a persistent queue, a tail sampler's storage) must not write the request headers in
    `kept` (header -> the config path that asks for it), given the allow-list `listed` (at `list_key`);
    `instead`: what to do rather than write it."""
    allowed = PERSISTABLE_HEADERS | {k.lower() for k in listed}
    refusals = []
    for header, source in kept.items():
        name = header.lower()
        where = f"{writer} would write request header {name!r} (kept for {source}) to disk"
        if may_carry_credentials(name):
            refusals.append(f"{where}, and it may carry credentials: {instead}")
        elif name not in allowed:
            refusals.append(f"{where}: list it in {list_key} if it never carries credentials, or {instead}")
    return refusals
