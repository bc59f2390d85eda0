"""The `oauth2client` extension: a client authenticator with OAuth2 client credentials (RFC 6749 4.4),
as the Collector's: an exporter's `auth: {authenticator: oauth2client}`.

One token is fetched from `token_url` (client id and secret in HTTP Basic, `scopes` and
`endpoint_params` in the form) when first needed and shared by every call of every exporter naming the
extension; one fetch at a time. It is fetched again `expiry_buffer` before it expires, and at once when
a backend answers 401 / UNAUTHENTICATED (the call is then sent once more). A token endpoint that fails
makes the export retryable; its answer is never logged (it may hold a token).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from gateway.component import ExtensionFactory, Settings
from gateway.extensions.passive import Passive
from gateway.extensions.watched_file import read_text
from gateway.transport.tls import TLSClientConfig
from pipelines.batch import RequestContext
from pipelines.config_types import Duration, unsupported
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.extension.oauth2client")


@dataclass(frozen=True)
class Config:
    client_id: str = ""
    client_secret: str = ""
    client_secret_file: str = ""
    token_url: str = ""
    scopes: tuple[str, ...] = ()
    endpoint_params: dict[str, Any] = field(default_factory=dict)
    timeout: Duration = 0.0
    expiry_buffer: Duration = 300.0
    tls: TLSClientConfig = field(default_factory=TLSClientConfig)
    client_id_file: Any = unsupported("set `client_id` (${file:...} reads a file once at start)")
    grant_type: str = unsupported("client credentials are the one grant", default="client_credentials")

    def validate(self) -> list[str]:
        errors = []
        if not self.client_id:
            errors.append("no ClientID provided in the OAuth2 exporter configuration")
        if not self.client_secret and not self.client_secret_file:
            errors.append("no ClientSecret provided in OAuth Client Credentials configuration")
        if not self.token_url:
            errors.append("no TokenURL provided in OAuth Client Credentials configuration")
        return errors


def lifetime(expires_in: Any) -> float:
    """Seconds a token lives by its `expires_in`, read as golang/oauth2 reads it: a number or a string
    holding one (some providers quote it); absent, null or 0: it does not expire. ValueError otherwise."""
    if expires_in is None:
        return float("inf")
    if isinstance(expires_in, str):
        expires_in = float(expires_in.strip())
    elif isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise ValueError(f"expires_in of type {type(expires_in).__name__}")
    if not math.isfinite(expires_in):
        raise ValueError("expires_in is not finite")
    return float(expires_in) if expires_in != 0 else float("inf")


class OAuth2Client(Passive):
    def __init__(self, settings: Settings[Config]) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    def context_keys(self) -> tuple[str, ...]:
        return ()

    def _secret(self) -> str:
        if self.config.client_secret_file:
            text = read_text(self.config.client_secret_file, self.id, "client secret file")
            if text is None:
                raise RetryableError(f"{self.id}: cannot read client_secret_file")
            return text.strip()
        return self.config.client_secret

    async def _fetch(self) -> None:
        cfg = self.config
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=cfg.tls.ssl_context() if cfg.token_url.startswith("https") else False)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=cfg.timeout or None))
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if cfg.scopes:
            form["scope"] = " ".join(cfg.scopes)
        for key, value in cfg.endpoint_params.items():
            form[key] = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            # RFC 6749 2.3.1: the id and secret are form-encoded before they are joined.
            pair = f"{quote_plus(cfg.client_id)}:{quote_plus(self._secret())}"
            basic = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
            async with self._session.post(cfg.token_url, data=form, headers=basic) as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RetryableError(f"{self.id}: cannot get a token from {cfg.token_url}: {type(exc).__name__}") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise RetryableError(f"{self.id}: {cfg.token_url} answered {status} without an access_token")
        try:
            seconds = lifetime(answer.get("expires_in") if isinstance(answer, dict) else None)
        except ValueError:
            raise RetryableError(f"{self.id}: {cfg.token_url} answered an expires_in that is not a number") from None
        self._token = token
        self._expires = time.monotonic() + seconds

    async def token(self) -> str:
        if self._token is None or time.monotonic() >= self._expires - self.config.expiry_buffer:
            async with self._lock:
                if self._token is None or time.monotonic() >= self._expires - self.config.expiry_buffer:
                    await self._fetch()
        assert self._token is not None
        return self._token

    async def apply(self, headers: dict[str, str], context: RequestContext) -> None:
        headers["authorization"] = f"Bearer {await self.token()}"

    async def unauthorized(self, sent: Mapping[str, str]) -> bool:
        # Only the token refused: another call may have fetched a new one since this one was sent.
        if self._token is not None and sent.get("authorization") == f"Bearer {self._token}":
            self._token = None
        return True

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def create(settings: Settings[Config]) -> OAuth2Client:
    return OAuth2Client(settings)


FACTORY = ExtensionFactory(type="oauth2client", config=Config, create=create,
                           roles=frozenset({"client_authenticator"}))
