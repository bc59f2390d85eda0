"""The `basicauth` extension: HTTP Basic authentication, as the Collector's.

Server side (a receiver protocol's `auth: {authenticator: basicauth/x}`), with `htpasswd`: every request
carries `Authorization: Basic base64(user:password)`, checked against `htpasswd.file` and/or
`htpasswd.inline` (inline entries win for a user in both). Hashes as htpasswd writes them, verified by
libpass: bcrypt (`$2y$`, `$2a$`, `$2b$`), `{SHA}`, `{SSHA}`, `$apr1$` and `$1$` MD5, `$5$` and `$6$`
SHA-crypt; anything else is a plaintext password (the Collector's inline `user:password`). The file is
re-read when it changes. A bcrypt check costs milliseconds, so it runs off the event loop, and a
credential that passed is remembered (as a keyed digest, never in clear) until the file changes.
The identity has the attribute `username`.

Client side (an exporter's `auth: {authenticator: basicauth/x}`), with `client_auth`: every export call
carries `Authorization: Basic base64(username:password)`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from passlib import hash as passlib_hash

from gateway.auth import AuthError, Identity
from gateway.component import ExtensionFactory, Settings
from gateway.extensions.passive import Passive
from gateway.extensions.watched_file import FileKey, file_key, read_text, watch
from pipelines.batch import RequestContext
from pipelines.config_types import unsupported

log = logging.getLogger("gateway.extension.basicauth")

# How often `htpasswd.file` is checked for changes.
FILE_CHECK_INTERVAL = 1.0
# An Authorization header longer than this is refused before it is decoded.
MAX_HEADER = 8192
# Credentials that passed, remembered so a bcrypt hash is not recomputed for every request.
VERIFIED_CACHE = 4096

# Hash prefixes htpasswd (and Apache, nginx, go-htpasswd) write, and the libpass scheme of each.
_SCHEMES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("$2y$", passlib_hash.bcrypt.verify), ("$2a$", passlib_hash.bcrypt.verify),
    ("$2b$", passlib_hash.bcrypt.verify), ("{SHA}", passlib_hash.ldap_sha1.verify),
    ("{SSHA}", passlib_hash.ldap_salted_sha1.verify), ("$apr1$", passlib_hash.apr_md5_crypt.verify),
    ("$1$", passlib_hash.md5_crypt.verify), ("$5$", passlib_hash.sha256_crypt.verify),
    ("$6$", passlib_hash.sha512_crypt.verify),
)


@dataclass(frozen=True)
class HtpasswdConfig:
    file: str = ""
    inline: str = ""


@dataclass(frozen=True)
class ClientAuthConfig:
    username: str = ""
    password: str = ""
    username_file: Any = unsupported("set `username` (${file:...} reads a file once at start)")
    password_file: Any = unsupported("set `password` (${file:...} reads a file once at start)")
    aws_secrets_manager: Any = unsupported("credentials from AWS Secrets Manager")


@dataclass(frozen=True)
class Config:
    htpasswd: HtpasswdConfig | None = None
    client_auth: ClientAuthConfig | None = None

    def validate(self) -> list[str]:
        if self.htpasswd is not None and self.client_auth is not None:
            return ["only one of `htpasswd` or `client_auth` can be specified"]
        if self.htpasswd is None and self.client_auth is None:
            return ["no credential source provided"]
        return []


def parse_htpasswd(text: str) -> dict[str, str]:
    """`user:hash` lines; blank lines and `#` comments skipped."""
    users: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        user, _, hashed = line.partition(":")
        users[user] = hashed
    return users


def verify(password: str, hashed: str) -> bool:
    for prefix, check in _SCHEMES:
        if hashed.startswith(prefix):
            try:
                return check(password, hashed)
            except ValueError:  # a malformed hash in the file: nobody matches it
                return False
    return hmac.compare_digest(password.encode(), hashed.encode())


def decode_basic(value: str | None) -> tuple[str, str]:
    """`Basic base64(user:password)` -> (user, password), or AuthError with the Collector's messages."""
    if not value:
        raise AuthError("no basic auth provided")
    if len(value) > MAX_HEADER:
        raise AuthError("invalid authorization format")
    scheme, _, payload = value.partition(" ")
    if scheme.lower() != "basic":
        raise AuthError("invalid authorization scheme prefix")
    try:
        user, colon, password = base64.b64decode(payload.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthError("invalid authorization format") from None
    if not colon:
        raise AuthError("invalid authorization format")
    return user, password


class BasicAuthServer:
    def __init__(self, settings: Settings[Config]) -> None:
        assert settings.config.htpasswd is not None
        self.id = settings.id
        self.htpasswd: HtpasswdConfig = settings.config.htpasswd
        self._inline = parse_htpasswd(self.htpasswd.inline)
        self._users = dict(self._inline)
        self._file_key: FileKey | None = None
        self._digest_key = os.urandom(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    async def identify(self, headers: Mapping[str, str]) -> Identity:
        user, password = decode_basic(headers.get("authorization"))
        hashed = self._users.get(user)
        if hashed is None:
            raise AuthError("invalid credentials")
        digest = hmac.digest(self._digest_key, b"\0".join((user.encode(), password.encode(), hashed.encode())),
                             hashlib.sha256)
        if digest in self._verified:
            self._verified.move_to_end(digest)
        else:
            slow = not hashed.startswith("{SHA}") and any(hashed.startswith(p) for p, _ in _SCHEMES)
            ok = await asyncio.to_thread(verify, password, hashed) if slow else verify(password, hashed)
            if not ok:
                raise AuthError("invalid credentials")
            self._verified[digest] = None
            if len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return Identity(None, {"username": (user,)})

    def reload(self) -> bool:
        """Re-read `htpasswd.file` if it changed; return whether the users were replaced."""
        key = file_key(self.htpasswd.file)
        if key is None or key == self._file_key:
            return False
        text = read_text(self.htpasswd.file, self.id, "htpasswd file")
        if text is None:
            return False
        from_file = parse_htpasswd(text)
        self._file_key = key
        self._users = {**from_file, **self._inline}
        self._verified.clear()
        log.info("%s: read %d user(s) from %s", self.id, len(from_file), self.htpasswd.file)
        return True

    async def start(self) -> None:
        if not self.htpasswd.file:
            return
        if not self.reload():
            log.error("%s: cannot read htpasswd file %s; only inline users are accepted until it can be read",
                      self.id, self.htpasswd.file)
        self._stop.clear()
        self._watcher = asyncio.get_running_loop().create_task(watch(FILE_CHECK_INTERVAL, self._stop, self.reload))

    def ready(self) -> None:
        pass

    def not_ready(self) -> None:
        pass

    async def shutdown(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            await self._watcher
            self._watcher = None


class BasicAuthClient(Passive):
    def __init__(self, settings: Settings[Config]) -> None:
        client = settings.config.client_auth
        assert client is not None
        self._value = "Basic " + base64.b64encode(f"{client.username}:{client.password}".encode()).decode()

    def context_keys(self) -> tuple[str, ...]:
        return ()

    async def apply(self, headers: dict[str, str], context: RequestContext) -> None:
        headers["authorization"] = self._value

    async def unauthorized(self) -> bool:
        return False  # fixed credentials: asking again changes nothing


def create(settings: Settings[Config]) -> BasicAuthServer | BasicAuthClient:
    # One side per instance, as in the Collector: a receiver naming a client_auth one (or an exporter an
    # htpasswd one) is refused when the service is built.
    return BasicAuthServer(settings) if settings.config.htpasswd is not None else BasicAuthClient(settings)


FACTORY = ExtensionFactory(type="basicauth", config=Config, create=create,
                           roles=frozenset({"authenticator", "client_authenticator"}))
