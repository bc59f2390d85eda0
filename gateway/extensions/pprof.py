"""The `pprof` extension, for a Python process: `/debug/pprof/profile?seconds=N` answers with a sampling CPU
profile of this process over N seconds (`gateway.extensions.pprof_sampler`), gzip'ed in pprof's protobuf
format (`pipelines.pprof`), which `go tool pprof` and flame-graph viewers read; `save_to_file` writes one
of the whole run at shutdown. Go's other profiles (heap, goroutine, block, mutex, trace, ...) have no
Python meaning here and answer 404 "Unknown profile", as Go answers a name it does not know.

With `service::workers`, each worker serves on the shared port and profiles itself: the kernel picks the
worker per connection, and the profile's comment and the `X-Gateway-Worker` header say which.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from html import escape

from aiohttp import web

from gateway.component import ExtensionFactory, Settings
from gateway.extensions.pprof_sampler import Sampler
from gateway.transport.http_site import start_site
from pipelines.config_types import unsupported
from pipelines.pprof import encode

log = logging.getLogger("gateway.extensions.pprof")

_NO_GO_RUNTIME = "a Go runtime setting (runtime.Set{}): Python has no {} profile to sample"
# Go's default when `seconds` is missing, not a number or not positive.
DEFAULT_SECONDS = 30


@dataclass(frozen=True)
class Config:
    endpoint: str = "localhost:1777"
    block_profile_fraction: int = unsupported(_NO_GO_RUNTIME.format("BlockProfileRate", "blocking"), default=0)
    mutex_profile_fraction: int = unsupported(_NO_GO_RUNTIME.format("MutexProfileFraction", "mutex"), default=0)
    save_to_file: str = ""

    def validate(self) -> list[str]:
        return [] if ":" in self.endpoint else [f"endpoint {self.endpoint!r}: want host:port"]


def seconds(text: str) -> int:
    """`seconds` as Go's handler reads it: a positive integer, else 30."""
    try:
        n = int(text, 10)
    except ValueError:
        return DEFAULT_SECONDS
    return n if n > 0 else DEFAULT_SECONDS


class Pprof:
    def __init__(self, settings: Settings[Config]) -> None:
        self.config: Config = settings.config
        self._reuse_port = settings.reuse_port
        self._worker = settings.worker
        self._runner: web.AppRunner | None = None
        self._whole_run: Sampler | None = None
        self._profiling = False
        self.port: int | None = None

    def ready(self) -> None:
        pass

    def not_ready(self) -> None:
        pass

    def _comments(self) -> list[str]:
        who = f"pid {os.getpid()}" + ("" if self._worker is None else
                                      f", worker {self._worker}: one of the gateway's worker processes")
        return [f"otel-trace-gateway: sampled CPU profile of one Python process ({who})"]

    def _profile(self, sampler: Sampler) -> bytes:
        return encode(sampler.samples, time_ns=sampler.start_ns, duration_ns=sampler.duration_ns,
                      period_ns=sampler.period_ns, comments=self._comments(), binary=sys.executable)

    async def _index(self, request: web.Request) -> web.Response:
        rows = "".join(f"<tr><td><a href='{n}'>{n}</a></td><td>{escape(what)}</td></tr>" for n, what in (
            ("profile", f"CPU profile of this process; ?seconds=N (default {DEFAULT_SECONDS})"),
            ("cmdline", "the command line, NUL-separated")))
        html = (f"<html><head><title>/debug/pprof/</title></head><body>/debug/pprof/<br>"
                f"<p>{escape(self._comments()[0])}</p><table>{rows}</table></body></html>")
        return web.Response(text=html, content_type="text/html")

    async def _cmdline(self, request: web.Request) -> web.Response:
        return web.Response(text="\x00".join(sys.argv), content_type="text/plain")

    async def _unknown(self, request: web.Request) -> web.Response:
        return web.Response(text="Unknown profile\n", status=404, content_type="text/plain")

    async def _cpu(self, request: web.Request) -> web.Response:
        if self._profiling:
            # Go answers a second profile at once the same way; one sampler is enough load.
            return web.Response(text="Could not enable CPU profiling: cpu profiling already in use\n", status=500,
                                content_type="text/plain")
        self._profiling = True
        sampler = Sampler()
        try:
            sampler.start()
            try:
                await asyncio.sleep(seconds(request.query.get("seconds", "")))
            finally:
                await asyncio.to_thread(sampler.stop)
            body = await asyncio.to_thread(self._profile, sampler)
        finally:
            self._profiling = False
        headers = {"Content-Disposition": 'attachment; filename="profile"', "X-Content-Type-Options": "nosniff"}
        if self._worker is not None:
            headers["X-Gateway-Worker"] = f"{self._worker} (pid {os.getpid()})"
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/debug/pprof/", self._index)
        app.router.add_get("/debug/pprof/profile", self._cpu)
        app.router.add_get("/debug/pprof/cmdline", self._cmdline)
        app.router.add_get("/debug/pprof/{name}", self._unknown)
        self._runner, self.port = await start_site(app, self.config.endpoint, reuse_port=self._reuse_port)
        if self.config.save_to_file:
            self._whole_run = Sampler()
            self._whole_run.start()

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        sampler, self._whole_run = self._whole_run, None
        if sampler is not None:
            await asyncio.to_thread(sampler.stop)
            await asyncio.to_thread(self._save, sampler)

    def _save(self, sampler: Sampler) -> None:
        path = self.config.save_to_file
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(self._profile(sampler))
        os.replace(tmp, path)
        log.info("pprof: CPU profile of the run written to %s", path)


def create(settings: Settings[Config]) -> Pprof:
    return Pprof(settings)


FACTORY = ExtensionFactory(type="pprof", config=Config, create=create)
