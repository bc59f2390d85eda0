"""The `otlphttp` (alias `otlp_http`) exporter: OTLP over HTTP, protobuf (or JSON) bodies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import aiohttp
from google.protobuf.message import DecodeError

from gateway.component import ExporterFactory, Settings
from gateway.exporters import classify
from gateway.exporters.helper import Exporter, check_kept_metadata
from gateway.exporters.otlp_common import CallHeaders, OtlpCommon, exporter_refs, log_partial_success
from gateway.transport.compression import ENCODINGS, compress
from pipelines import otlp, otlp_json
from pipelines.batch import Batch
from pipelines.config_types import Duration
from pipelines.errors import RetryableError

_OFF_LOOP_BYTES = 256 * 1024
_SIGNAL_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


# gzip at level 1, as this exporter always sent it: most of the ratio for a fraction of the CPU.
_GZIP_LEVEL = 1
_COMPRESSIONS = (*ENCODINGS, "none", "")


@dataclass(frozen=True)
class Config(OtlpCommon):
    timeout: Duration = 30.0
    traces_endpoint: str = ""
    metrics_endpoint: str = ""
    logs_endpoint: str = ""
    encoding: Literal["proto", "json"] = "proto"

    def validate(self) -> list[str]:
        errors = []
        if not self.endpoint and not (self.traces_endpoint or self.metrics_endpoint or self.logs_endpoint):
            errors.append("missing endpoint")
        for name in ("endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                errors.append(f"{name} {url!r}: want an http:// or https:// URL")
        if self.compression not in _COMPRESSIONS:
            errors.append(f"compression {self.compression!r} is not supported (want gzip, deflate, zstd or none)")
        return errors

    def url_for(self, signal: str) -> str:
        explicit: str = getattr(self, f"{signal}_endpoint")
        return explicit or self.endpoint.rstrip("/") + _SIGNAL_PATHS[signal]


class HttpPusher:
    def __init__(self, settings: Settings[Config]) -> None:
        self.id = settings.id
        self.config: Config = settings.config
        self._session: aiohttp.ClientSession | None = None
        self.headers = CallHeaders(settings.id, settings.config, settings.host)
        compression = self.config.compression
        self._compression = compression if compression in ENCODINGS else None
        self._level = _GZIP_LEVEL if compression == "gzip" else None
        body_headers = {"Content-Type": "application/json" if self.config.encoding == "json"
                        else "application/x-protobuf"}
        if self._compression is not None:
            body_headers["Content-Encoding"] = compression
        self._body_headers = body_headers
        self._headers = {**self.config.headers, **body_headers}
        self._urls = {s: self.config.url_for(s) for s in _SIGNAL_PATHS}

    async def start(self) -> None:
        # As confighttp: the URL's scheme decides whether TLS is used; `tls` says how, for https.
        connector = aiohttp.TCPConnector(ssl=self.config.tls.ssl_context(), limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout or None)
        )

    def body(self, batch: Batch) -> bytes:
        if self.config.encoding == "json":
            pieces = [otlp_json.encode(batch.message())]
        elif self._compression is not None:
            pieces = batch.chunks()
        else:
            return batch.data()
        return compress(pieces, self._compression, self._level) if self._compression is not None else pieces[0]

    async def call_headers(self, batch: Batch) -> dict[str, str]:
        if self.headers.auth is None:
            tenant = self.headers.tenant(batch.context)
            return {**self._headers, **tenant} if tenant else self._headers
        headers = await self.headers.for_call(batch.context)
        # The body's own headers: no authenticator may change them.
        headers.update((k.lower(), v) for k, v in self._body_headers.items())
        return headers

    async def push(self, batch: Batch) -> int:
        """Send a batch; return how many items the backend rejected in a partial-success answer."""
        if self._session is None:
            raise RetryableError(f"exporter {self.id} is not started")
        session = self._session
        try:
            # Compressing a large batch takes milliseconds: do it off the event loop (zlib and zstd release the GIL).
            big = self._compression is not None and batch.nbytes() > _OFF_LOOP_BYTES
            body = await asyncio.to_thread(self.body, batch) if big else self.body(batch)
            refreshed = False
            while True:
                headers = await self.call_headers(batch)
                async with session.post(self._urls[batch.signal], data=body, headers=headers,
                                        server_hostname=self.config.tls.server_name_override or None) as resp:
                    payload = await resp.read()
                # A token the backend no longer takes: one more call with fresh credentials.
                if resp.status == 401 and not refreshed and await self.headers.refresh(headers):
                    refreshed = True
                    continue
                if resp.status // 100 != 2:
                    raise classify.from_http(
                        resp.status, payload.decode("utf-8", "replace"), resp.headers.get("Retry-After")
                    )
                break
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableError(f"HTTP request failed: {exc!r}") from None
        if payload and resp.content_type == "application/x-protobuf":
            try:
                response = otlp.SHAPES[batch.signal].response.FromString(payload)
            except DecodeError:
                return 0  # a backend's odd success body is not our failure
            return log_partial_success(self.id, batch.signal, response)
        return 0

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def create(settings: Settings[Config]) -> Exporter:
    pusher = HttpPusher(settings)
    return Exporter(settings, pusher, settings.config, pusher.headers.context_keys())


FACTORY = ExporterFactory(type="otlphttp", config=Config, create=create, extension_refs=exporter_refs,
                           check_kept_metadata=check_kept_metadata)
