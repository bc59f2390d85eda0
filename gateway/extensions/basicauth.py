"""The `basicauth` extension: HTTP Basic authentication, as the Collector's.

Server side (a receiver protocol's `auth: {authenticator: basicauth/x}`), with `htpasswd`: every request
carries `Authorization: Basic base64(user:password)`, checked against `htpasswd.file` and/or
`htpasswd.inline` (inline entries win for a user in both). Hashes as htpasswd writes them, verified by
libpass: bcrypt (`$2y$`, `$2a$`, `$2b$`), `{SHA}`, `{SSHA}`, `$apr1$` and `$1$` MD5, `$5$` and `$6$`
SHA-crypt; anything else is a plaintext password (the Collector's inline `user:password`). The file is
re-read when it changes. A bcrypt check costs milliseconds, so it runs off the event loop on
`HASH_THREADS` threads of the extension's own (never the loop's default executor, which others share),
with at most `HASH_WAITING` checks waiting for them: past that a request is refused as retryable
(UNAVAILABLE / 503), not queued. A credential that passed is remembered (as a keyed digest, never in
clear) until the file changes. An unknown user's password is checked too, against a hash of a random
password by the same scheme and cost as the users', so the time of a refusal does not tell which user
names exist; those checks have a thread and a smaller budget of their own (`UNKNOWN_WAITING`), past which
an unknown user is refused at once (401), so made-up user names cannot starve the users' checks. The
identity has the attribute `username`.

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
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from passlib import hash as passlib_hash

from gateway.auth import AuthError, Identity
from gateway.component import ExtensionFactory, Settings
from gateway.extensions.passive import Passive
from gateway.extensions.watched_file import FileKey, file_key, read_text, watch
from pipelines.batch import RequestContext
from pipelines.config_types import unsupported
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.extension.basicauth")

# How often `htpasswd.file` is checked for changes.
FILE_CHECK_INTERVAL = 1.0
# An Authorization header longer than this is refused before it is decoded.
MAX_HEADER = 8192
# Credentials that passed, remembered so a bcrypt hash is not recomputed for every request.
VERIFIED_CACHE = 4096
# Threads of each server instance for the slow hashes, and how many checks may wait for one.
HASH_THREADS = 2
HASH_WAITING = 64
# The delay a client refused for too many waiting checks is asked to wait.
BUSY_RETRY_AFTER = 1.0
# Unknown users' checks (against the dummy hash) have a budget of their own, on a thread of their own:
# past it an unknown user is refused at once, so made-up user names never starve the users' checks.
# The time of that refusal tells only that the server is busy, not which names exist.
UNKNOWN_THREADS = 1
UNKNOWN_WAITING = 8

# Hash prefixes htpasswd (and Apache, nginx, go-htpasswd) write, and the libpass scheme of each.
_SCHEMES: tuple[tuple[str, Any], ...] = (
    ("$2y$", passlib_hash.bcrypt), ("$2a$", passlib_hash.bcrypt), ("$2b$", passlib_hash.bcrypt),
    ("{SHA}", passlib_hash.ldap_sha1), ("{SSHA}", passlib_hash.ldap_salted_sha1),
    ("$apr1$", passlib_hash.apr_md5_crypt), ("$1$", passlib_hash.md5_crypt),
    ("$5$", passlib_hash.sha256_crypt), ("$6$", passlib_hash.sha512_crypt),
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
    for prefix, handler in _SCHEMES:
        if hashed.startswith(prefix):
            try:
                ok: bool = handler.verify(password, hashed)
                return ok
            except ValueError:  # a malformed hash in the file: nobody matches it
                return False
    return hmac.compare_digest(password.encode(), hashed.encode())


def slow(hashed: str) -> bool:
    """Whether checking against `hashed` costs enough to go off the event loop."""
    return not hashed.startswith("{SHA}") and any(hashed.startswith(p) for p, _ in _SCHEMES)


def dummy_hash(template: str) -> str:
    """A hash of a random password by the scheme and cost of `template`: an unknown user's password is
    checked against it, taking as long as a known user's."""
    for prefix, handler in _SCHEMES:
        if template.startswith(prefix):
            try:
                rounds = getattr(handler.from_string(template), "rounds", None)
                made: str = (handler.using(rounds=rounds) if rounds else handler).hash(secrets.token_urlsafe(16))
                return made
            except ValueError:
                break
    return secrets.token_urlsafe(max(len(template), 16))  # plaintext: compared in constant time


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


class _Hasher:
    """Threads of their own for the slow hashes, with a bound on the checks running or waiting for them.
    A check counts until its thread finishes it, even when the request that asked went away."""

    def __init__(self, threads: int, waiting: int, name: str) -> None:
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self.capacity = threads + waiting
        self.checks = 0  # submitted and not finished: running or waiting
        self._lock = threading.Lock()

    def full(self) -> bool:
        return self.checks >= self.capacity

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self.checks += 1
        future = self.executor.submit(fn, *args)
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _: object) -> None:  # on the hasher's thread
        with self._lock:
            self.checks -= 1


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
        self._hasher = _Hasher(HASH_THREADS, HASH_WAITING, f"{self.id}-hash")
        self._unknown = _Hasher(UNKNOWN_THREADS, UNKNOWN_WAITING, f"{self.id}-hash-unknown")
        self._dummy: str | None = None
        # Refusals for too many waiting checks (retryable), and of unknown users past their budget (401).
        self.busy_refusals = 0
        self.unknown_refusals = 0

    async def _verify(self, password: str, hashed: str) -> bool:
        """A known user's check: on the hasher's threads; RetryableError when `HASH_WAITING` checks
        already wait."""
        if not slow(hashed):
            return verify(password, hashed)
        if self._hasher.full():
            self.busy_refusals += 1
            if self.busy_refusals == 1 or self.busy_refusals % 1000 == 0:
                log.warning("%s: %d password checks waiting; requests refused as retryable (%d so far)",
                            self.id, self._hasher.checks, self.busy_refusals)
            raise RetryableError(f"{self.id}: too many password checks waiting", BUSY_RETRY_AFTER)
        ok: bool = await self._hasher.run(verify, password, hashed)
        return ok

    async def _refuse_unknown(self, password: str) -> None:
        """Check the password of a user who is not there as long as a known user's takes, then refuse;
        past the unknown users' own budget, refuse at once."""
        if self._unknown.full():
            self.unknown_refusals += 1
            raise AuthError("invalid credentials")
        if self._dummy is None:
            users = list(self._users.values())
            template = next((h for h in users if slow(h)), users[0] if users else "")
            self._dummy = await self._unknown.run(dummy_hash, template) if slow(template) else dummy_hash(template)
        if not slow(self._dummy):
            verify(password, self._dummy)
        elif not self._unknown.full():
            await self._unknown.run(verify, password, self._dummy)
        else:
            self.unknown_refusals += 1
        raise AuthError("invalid credentials")

    async def identify(self, headers: Mapping[str, str]) -> Identity:
        user, password = decode_basic(headers.get("authorization"))
        hashed = self._users.get(user)
        if hashed is None:
            await self._refuse_unknown(password)
        assert hashed is not None
        digest = hmac.digest(self._digest_key, b"\0".join((user.encode(), password.encode(), hashed.encode())),
                             hashlib.sha256)
        if digest in self._verified:
            self._verified.move_to_end(digest)
        else:
            if not await self._verify(password, hashed):
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
        self._dummy = None
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
        self._hasher.executor.shutdown(wait=False)
        self._unknown.executor.shutdown(wait=False)


class BasicAuthClient(Passive):
    def __init__(self, settings: Settings[Config]) -> None:
        client = settings.config.client_auth
        assert client is not None
        self._value = "Basic " + base64.b64encode(f"{client.username}:{client.password}".encode()).decode()

    def context_keys(self) -> tuple[str, ...]:
        return ()

    async def apply(self, headers: dict[str, str], context: RequestContext) -> None:
        headers["authorization"] = self._value

    async def unauthorized(self, sent: Mapping[str, str]) -> bool:
        return False  # fixed credentials: asking again changes nothing


def create(settings: Settings[Config]) -> BasicAuthServer | BasicAuthClient:
    # One side per instance, as in the Collector: a receiver naming a client_auth one (or an exporter an
    # htpasswd one) is refused when the service is built.
    return BasicAuthServer(settings) if settings.config.htpasswd is not None else BasicAuthClient(settings)


FACTORY = ExtensionFactory(type="basicauth", config=Config, create=create,
                           roles=frozenset({"authenticator", "client_authenticator"}))
