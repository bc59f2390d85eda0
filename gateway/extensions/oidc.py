"""The `oidc` extension: a server authenticator for JWTs an OpenID Connect provider issues, as the
Collector's: a receiver protocol's `auth: {authenticator: oidc}`.

At start the issuer's discovery document (`<issuer_url>/.well-known/openid-configuration`) and its JWKS
are fetched (over TLS trusting `issuer_ca_path` when set) and kept. A token whose `kid` is not among the
keys makes the JWKS be fetched again, so a rotated key is taken without a restart; keys the issuer
dropped are dropped. Key ids not among the keys make at most one fetch per `UNKNOWN_KID_INTERVAL`
between them all (a token arriving while a fetch is under way waits for it), and a key id the issuer
did not have is not looked up again for `MISSED_KID_TTL`: tokens with made-up key ids cannot make us
hammer the issuer. A key id is known missing only once a fetch that started after it was first seen
answered without it; until then its tokens are answered retryable (503 / UNAVAILABLE), so made-up key
ids that use up the fetches cannot make a key rotated in since be refused for good. A provider that
cannot be reached at start does not stop the gateway: requests are answered retryable until its keys
are had.

Each token is checked for its signature (an asymmetric algorithm the key allows: RS, PS, ES, EdDSA;
`none` and HMAC are refused), `iss`, `aud` (unless `ignore_audience`), `exp` (required), `nbf` and `iat`
with `CLOCK_SKEW` of leeway. The identity's attributes are `subject` (`username_claim`, `sub` by default)
and `membership` (`groups_claim`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from gateway.auth import AuthError, Identity
from gateway.component import ExtensionFactory, Settings
from gateway.extensions.passive import Passive
from pipelines.config_types import unsupported
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.extension.oidc")

# Leeway on exp, nbf and iat for clocks a little apart.
CLOCK_SKEW = 30.0
# Fetches of the JWKS are at least MIN_REFRESH apart. Key ids not among the keys make at most one fetch
# per UNKNOWN_KID_INTERVAL between them all; one the issuer did not have is refused without a fetch for
# MISSED_KID_TTL, the last MISSED_KIDS of them remembered (the least recently seen forgotten first).
MIN_REFRESH = 0.1
UNKNOWN_KID_INTERVAL = 5.0
MISSED_KID_TTL = 30.0
MISSED_KIDS = 1024
# Bounds on what a client or a provider can make us hold.
MAX_TOKEN = 16 * 1024
MAX_DOCUMENT = 1024 * 1024
FETCH_TIMEOUT = 10.0
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


@dataclass(frozen=True)
class Config:
    issuer_url: str = ""
    audience: str = ""
    ignore_audience: bool = False
    issuer_ca_path: str = ""
    username_claim: str = ""
    groups_claim: str = ""
    attribute: str = "authorization"
    providers: Any = unsupported("one issuer per oidc extension: configure one extension per issuer")
    public_keys_file: Any = unsupported("keys come from the issuer's JWKS")

    def validate(self) -> list[str]:
        errors = []
        if not self.audience and not self.ignore_audience:
            errors.append("no Audience provided for the OIDC configuration")
        if not self.issuer_url:
            errors.append("no IssuerURL provided for the OIDC configuration")
        if not self.attribute:
            errors.append("attribute must not be empty")
        return errors


class OidcAuth(Passive):
    def __init__(self, settings: Settings[Config], clock: Callable[[], float] = time.monotonic) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._clock = clock
        self._header = self.config.attribute.lower()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._jwks_uri = ""
        self._fetched_at = -1e9
        self._unknown_fetched_at = -1e9  # the last fetch an unknown key id made
        self._missed: OrderedDict[str | None, float] = OrderedDict()
        # Key ids not among the keys and not known missing yet: when each was first seen. One is known
        # missing only once a fetch that started after that answered without it.
        self._unseen: OrderedDict[str | None, float] = OrderedDict()
        self._keys_from = -1e9  # when the fetch whose keys are held started
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.fetches = 0

    # -- keys
    def _ssl(self) -> ssl.SSLContext | None:
        if not self.config.issuer_url.startswith("https://"):
            return None
        return ssl.create_default_context(cafile=self.config.issuer_ca_path or None)

    async def _get_json(self, url: str) -> Any:
        assert self._session is not None
        async with self._session.get(url, ssl=self._ssl() or True) as resp:
            if resp.status != 200:
                raise ValueError(f"{url} answered {resp.status}")
            body = await resp.content.read(MAX_DOCUMENT + 1)
            if len(body) > MAX_DOCUMENT:
                raise ValueError(f"{url}: document larger than {MAX_DOCUMENT} bytes")
            return json.loads(body)

    async def refresh(self) -> None:
        """Fetch the discovery document (once) and the JWKS; on failure keep the keys held."""
        asked = self._fetched_at
        async with self._lock:
            if self._fetched_at != asked:
                return  # fetched while this caller waited for the lock
            wait = MIN_REFRESH - (self._clock() - self._fetched_at)
            if wait > 0:
                await asyncio.sleep(wait)  # paced, never skipped: a rotated key is never refused for it
            started = self._fetched_at = self._clock()
            self.fetches += 1
            issuer = self.config.issuer_url
            try:
                if not self._jwks_uri:
                    doc = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
                    if doc.get("issuer") != issuer:
                        raise ValueError(f"the discovery document names issuer {doc.get('issuer')!r}, not {issuer!r}")
                    self._jwks_uri = str(doc["jwks_uri"])
                jwks = await self._get_json(self._jwks_uri)
                keys: dict[str | None, jwt.PyJWK] = {}
                for entry in jwks.get("keys", []):
                    if entry.get("use", "sig") != "sig":
                        continue
                    try:
                        keys[entry.get("kid")] = jwt.PyJWK(entry)
                    except jwt.PyJWTError:
                        continue  # a key type or algorithm we cannot use: skip it, keep the others
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, AttributeError, ssl.SSLError) as exc:
                log.error("%s: cannot fetch the keys of %s: %s", self.id, issuer, exc)
                return
            # Key ids the issuer dropped are known missing: this fetch answered without them.
            for kid in self._keys.keys() - keys.keys():
                self._miss(kid, started)
            self._keys, self._keys_from = keys, started
            log.info("%s: %d signing key(s) from %s", self.id, len(keys), issuer)

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        now = self._clock()
        missed = self._missed.get(kid)
        if missed is not None and now - missed < MISSED_KID_TTL:
            self._missed.move_to_end(kid)
            raise AuthError("failed to verify token: no key of the issuer matches the token's key id")
        # A rotated key, or keys not had yet: one fetch for every unknown key id per interval.
        seen = self._unseen.setdefault(kid, now)
        self._unseen.move_to_end(kid)
        while len(self._unseen) > MISSED_KIDS:
            self._unseen.popitem(last=False)
        if self._lock.locked():
            async with self._lock:
                pass  # a fetch is under way: its keys answer this token too, if it started after it came
        elif now - self._unknown_fetched_at >= UNKNOWN_KID_INTERVAL:
            self._unknown_fetched_at = now
            await self.refresh()
        key = self._keys.get(kid)
        if key is not None:
            self._unseen.pop(kid, None)
            return key
        if self._keys_from < seen:
            # No fetch since the key id was first seen answered: it may be a key rotated in since
            # (made-up key ids may have used the fetches). Retryable, so the client tries again later.
            wait = max(MIN_REFRESH, UNKNOWN_KID_INTERVAL - (self._clock() - self._unknown_fetched_at))
            raise RetryableError(f"{self.id}: the issuer's keys have not been fetched since this token's key id "
                                 "was first seen", wait)
        self._miss(kid, now)
        raise AuthError("failed to verify token: no key of the issuer matches the token's key id")

    def _miss(self, kid: str | None, now: float) -> None:
        self._unseen.pop(kid, None)
        self._missed[kid] = now
        self._missed.move_to_end(kid)
        while len(self._missed) > MISSED_KIDS:
            self._missed.popitem(last=False)

    # -- the Authenticator contract
    async def identify(self, headers: Mapping[str, str]) -> Identity:
        value = headers.get(self._header)
        if not value:
            raise AuthError(f"missing {self.config.attribute} header")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
            raise AuthError("invalid authorization header format")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("failed to verify token: malformed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError("failed to verify token: unsupported signing algorithm")
        key = await self._key(header.get("kid"))
        cfg = self.config
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=None if cfg.ignore_audience else cfg.audience,
                issuer=cfg.issuer_url, leeway=CLOCK_SKEW,
                options={"require": ["exp", "iss"], "verify_aud": not cfg.ignore_audience})
        except jwt.PyJWTError as exc:
            raise AuthError(f"failed to verify token: {exc}") from None
        subject = claims.get(cfg.username_claim or "sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("failed to get subject from claims")
        attributes: dict[str, tuple[str, ...]] = {"subject": (subject,)}
        if cfg.groups_claim:
            groups = claims.get(cfg.groups_claim)
            if isinstance(groups, str):
                attributes["membership"] = (groups,)
            elif isinstance(groups, list):
                attributes["membership"] = tuple(str(g) for g in groups)
        return Identity(None, attributes)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))
        await self.refresh()
        if not self._keys:
            log.error("%s: no signing keys yet; tokens are refused until %s can be reached", self.id,
                      self.config.issuer_url)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def create(settings: Settings[Config]) -> OidcAuth:
    return OidcAuth(settings)


FACTORY = ExtensionFactory(type="oidc", config=Config, create=create, roles=frozenset({"authenticator"}))
