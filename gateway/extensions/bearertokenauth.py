"""The `bearertokenauth` extension, server side: a receiver protocol names it in
`auth: {authenticator: bearertokenauth/x}` and every request must carry `<scheme> <token>` in `header`.

Tokens come from `token`, `tokens` (strings, or `{token, tenant}`: beyond the Collector, a token may
name the tenant its data belongs to) or `filename` (one token per line, optionally `token tenant`;
blank lines and `#` comments skipped). The file is re-read when the file it resolves to changes:
its inode, size or mtime, checked every `reload_interval`; a Kubernetes ConfigMap/Secret update (the
`..data` symlink swapped to a new directory) changes the resolved inode. A file that cannot be read
keeps the tokens last read.

Every presented token is compared against every configured token in constant time; refusals never
echo what was presented.

Client side (an exporter's `auth: {authenticator: bearertokenauth/x}`): every export call carries
`<scheme> <token>` in `header`: `token`, the first of `tokens`, or the first token of `filename` (re-read
when it changes, and at once when the backend answers 401).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.auth import AuthError, Identity
from gateway.component import ExtensionFactory, Settings
from gateway.extensions.watched_file import FileKey, file_key, read_text, watch
from pipelines.batch import RequestContext
from pipelines.config_types import Duration
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.extension.bearertokenauth")

Token = tuple[bytes, str | None]


@dataclass(frozen=True)
class Config:
    token: str = ""
    tokens: tuple[Any, ...] = ()
    filename: str = ""
    header: str = "Authorization"
    scheme: str = "Bearer"
    # Beyond the Collector: how often `filename` is checked for changes.
    reload_interval: Duration = 1.0

    def validate(self) -> list[str]:
        errors = []
        if not self.token and not self.tokens and not self.filename:
            errors.append("no bearer token provided")
        if self.token and self.tokens:
            errors.append("either tokens or token should be provided, not both")
        for i, entry in enumerate(self.tokens):
            errors.extend(f"tokens[{i}]: {p}" for p in _entry_problems(entry))
        if not self.header:
            errors.append("header must not be empty")
        if self.reload_interval <= 0:
            errors.append("reload_interval must be positive")
        return errors

    def static_tokens(self) -> list[Token]:
        out: list[Token] = [(self.token.encode(), None)] if self.token else []
        for entry in self.tokens:
            if isinstance(entry, dict):
                tenant = entry.get("tenant")
                out.append((str(entry["token"]).encode(), str(tenant) if tenant is not None else None))
            else:
                out.append((str(entry).encode(), None))
        return out


def _entry_problems(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [] if entry else ["empty token"]
    if not isinstance(entry, dict):
        return [f"want a token string or a mapping with token and tenant, got {type(entry).__name__}"]
    problems = [f"unknown key {k!r}" for k in entry if k not in ("token", "tenant")]
    if not isinstance(entry.get("token"), str) or not entry.get("token"):
        problems.append("missing token")
    tenant = entry.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        problems.append("tenant must be a non-empty string")
    return problems


def parse_token_file(text: str) -> list[Token]:
    out: list[Token] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        out.append((fields[0].encode(), fields[1] if len(fields) > 1 else None))
    return out


class BearerTokenAuth:
    def __init__(self, settings: Settings[Config]) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._header = self.config.header.lower()
        self._prefix = f"{self.config.scheme} " if self.config.scheme else ""
        self._tokens: list[Token] = self.config.static_tokens()
        self._file_key: FileKey | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- the Authenticator contract
    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        value = headers.get(self._header)
        if not value:
            raise AuthError(f"missing or empty {self.config.header} header")
        if not value.startswith(self._prefix):
            raise AuthError(f"{self.config.header} header does not use the {self.config.scheme} scheme")
        presented = value[len(self._prefix):].encode()
        tokens = self._tokens  # one read: a reload swaps the whole list
        found = False
        tenant: str | None = None
        for token, token_tenant in tokens:
            # Every token is compared, so timing reveals neither which one matched nor how far.
            if hmac.compare_digest(token, presented) and not found:
                found = True
                tenant = token_tenant
        if not found:
            raise AuthError("invalid bearer token")
        return tenant

    async def identify(self, headers: Mapping[str, str]) -> Identity:
        return Identity(self.authenticate(headers))

    # -- the ClientAuthenticator contract
    def context_keys(self) -> tuple[str, ...]:
        return ()

    async def apply(self, headers: dict[str, str], context: RequestContext) -> None:
        tokens = self._tokens
        if not tokens:
            raise RetryableError(f"{self.id}: no token to send (cannot read {self.config.filename})")
        headers[self._header] = self._prefix + tokens[0][0].decode()

    async def unauthorized(self, sent: Mapping[str, str]) -> bool:
        return bool(self.config.filename) and self.reload()

    # -- file reloading
    def reload(self) -> bool:
        """Re-read `filename` if the file it resolves to changed; return whether tokens were replaced."""
        key = file_key(self.config.filename)
        if key is None:
            if self._file_key is not None:
                log.error("%s: cannot read token file %s; keeping the tokens read before", self.id,
                          self.config.filename)
                self._file_key = None
            return False
        if key == self._file_key:
            return False
        text = read_text(self.config.filename, self.id, "token file")
        if text is None:
            return False
        tokens = parse_token_file(text)
        self._file_key = key
        self._tokens = tokens
        log.info("%s: read %d token(s) from %s", self.id, len(tokens), self.config.filename)
        return True

    async def start(self) -> None:
        if not self.config.filename:
            return
        if self.config.token or self.config.tokens:
            log.warning("%s: a filename is set; the configured token(s) are ignored", self.id)
        self._tokens = []
        if not self.reload():
            log.error("%s: cannot read token file %s; every request is refused until it can be read",
                      self.id, self.config.filename)
        self._stop.clear()
        watcher = watch(self.config.reload_interval, self._stop, self.reload)
        self._watcher = asyncio.get_running_loop().create_task(watcher)

    def ready(self) -> None:
        pass  # nothing of this extension changes when the pipelines start or stop taking data

    def not_ready(self) -> None:
        pass

    async def shutdown(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            await self._watcher
            self._watcher = None


def create(settings: Settings[Config]) -> BearerTokenAuth:
    return BearerTokenAuth(settings)


FACTORY = ExtensionFactory(type="bearertokenauth", config=Config, create=create,
                           roles=frozenset({"authenticator", "client_authenticator"}))
