"""The admin endpoint of `service::workers`, served by the supervisor for all of them, as it serves /metrics.

Each worker's own admin server listens on a private loopback port that it reports with its health and
metrics ports; this server asks the workers that are running (one restarting is skipped) and answers as one
gateway:

- `/api/v1/graph`: from any worker (they run the same config), with the list of workers;
- `/api/v1/stats`: every worker's stats summed per component (`gateway.admin.stats.merge`), saying which
  workers there are and how many answered;
- `/api/v1/tap`: a tap on every worker, each at its share of `rate` (so the total bound holds), their lines
  merged, `limit` enforced here; the workers' taps close when the client leaves or the limit is reached;
- `/api/v1/traces`: every worker's recent traces, merged by trace id (`gateway.admin.watch.merge`);
- `/`: the page, which reads this API.

The client's headers go on to the workers, whose admin servers check `auth` too: the private ports are no
way around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import aiohttp
from aiohttp import web

from gateway.admin import stats, watch
from gateway.admin.http import Lookup, application, tap_query
from gateway.config.model import AdminConfig
from gateway.transport.http_site import start_site

log = logging.getLogger("gateway.admin")

# How long a worker may take to answer a question (a tap's stream has no bound).
_ASK_TIMEOUT = 5.0
_IDLE_CHECK = 1.0
# Not passed on to a worker: they describe the client's connection to this server.
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "content-length", "transfer-encoding", "te",
                         "upgrade", "accept-encoding"})


@dataclass(frozen=True)
class Target:
    """A running worker's admin server."""

    worker: int
    pid: int
    port: int


@dataclass(frozen=True)
class _Answer:
    target: Target
    status: int
    text: str


class WorkersAdmin:
    def __init__(self, config: AdminConfig, targets: Callable[[], list[Target]], authenticator: Lookup) -> None:
        self.config = config
        self._targets = targets
        self._authenticator = authenticator
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port: int | None = None

    async def start(self) -> None:
        app = application(self._authenticator, self._graph, self._stats, self._traces, self._tap)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=_ASK_TIMEOUT))
        try:
            tls = self.config.tls.ssl_context() if self.config.tls is not None else None
            self._runner, self.port = await start_site(app, self.config.endpoint, ssl_context=tls)
        except OSError as exc:
            log.warning("admin endpoint %s not started: %s", self.config.endpoint, exc)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _who(self, targets: list[Target]) -> dict[str, Any]:
        return {"worker": None, "pid": os.getpid(), "time": time.time(),
                "workers": [{"worker": t.worker, "pid": t.pid} for t in targets]}

    async def _ask(self, target: Target, request: web.Request) -> _Answer | None:
        """The worker's answer to the same request; None if it cannot be reached (restarting)."""
        assert self._session is not None
        try:
            async with self._session.get(f"http://127.0.0.1:{target.port}{request.rel_url}",
                                         headers=_forwarded(request),
                                         timeout=aiohttp.ClientTimeout(total=_ASK_TIMEOUT)) as resp:
                return _Answer(target, resp.status, await resp.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("admin: worker %d did not answer: %s", target.worker, exc)
            return None

    async def _ask_all(self, request: web.Request) -> tuple[list[Target], list[dict[str, Any]]]:
        """The running workers, and the bodies of those that answered 200; the first refusal is raised
        when none did (each worker runs the same graph, so they refuse alike)."""
        targets = self._targets()
        answers = [a for a in await asyncio.gather(*(self._ask(t, request) for t in targets)) if a is not None]
        ok = [json.loads(a.text) for a in answers if a.status == 200]
        if not ok:
            _refuse(answers)
        return targets, ok

    async def _graph(self, request: web.Request) -> web.Response:
        targets = self._targets()
        answers: list[_Answer | None] = []
        for target in targets:  # the first that answers: they run the same config
            answer = await self._ask(target, request)
            if answer is not None and answer.status == 200:
                return web.json_response({**json.loads(answer.text), **self._who(targets)})
            answers.append(answer)
        _refuse([a for a in answers if a is not None])

    async def _stats(self, request: web.Request) -> web.Response:
        targets, bodies = await self._ask_all(request)
        return web.json_response({**self._who(targets), "answered": len(bodies),
                                  "components": stats.merge(b["components"] for b in bodies)})

    async def _traces(self, request: web.Request) -> web.Response:
        targets, bodies = await self._ask_all(request)
        return web.json_response({**self._who(targets), "component": bodies[0]["component"],
                                  "direction": bodies[0]["direction"], "answered": len(bodies),
                                  "traces": watch.merge([b["traces"] for b in bodies])})

    async def _open(self, target: Target, request: web.Request,
                    query: dict[str, str]) -> aiohttp.ClientResponse | _Answer | None:
        assert self._session is not None
        try:
            resp = await self._session.get(f"http://127.0.0.1:{target.port}/api/v1/tap", params=query,
                                           headers=_forwarded(request))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("admin: worker %d did not open a tap: %s", target.worker, exc)
            return None
        if resp.status != 200:
            with contextlib.closing(resp):
                return _Answer(target, resp.status, await resp.text())
        return resp

    async def _tap(self, request: web.Request) -> web.StreamResponse:
        tq = tap_query(request)
        targets = self._targets()
        # Each worker's bucket gets its share: together they never pass `rate`.
        query = {"component": tq.component, "direction": tq.direction, "format": tq.fmt, "limit": str(tq.limit),
                 "rate": str(tq.rate / max(1, len(targets)))}
        opened = await asyncio.gather(*(self._open(t, request, query) for t in targets))
        streams = [r for r in opened if isinstance(r, aiohttp.ClientResponse)]
        if not streams:
            _refuse([a for a in opened if isinstance(a, _Answer)])
        lines: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
        readers = [asyncio.get_running_loop().create_task(_read(s, lines)) for s in streams]
        resp = web.StreamResponse(headers={"Content-Type": streams[0].headers.get("Content-Type", "text/plain"),
                                           "X-Gateway-Workers": ",".join(str(t.worker) for t in targets)})
        try:
            await resp.prepare(request)
            written, ended = 0, 0
            while (tq.limit == 0 or written < tq.limit) and ended < len(streams):
                try:
                    line = await asyncio.wait_for(lines.get(), _IDLE_CHECK)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if line is None:
                    ended += 1
                    continue
                await resp.write(line)
                written += 1
        except ConnectionResetError:
            pass
        finally:
            # Closing a worker's stream ends its tap there: it sees its client leave.
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for s in streams:
                s.close()
        return resp


async def _read(stream: aiohttp.ClientResponse, lines: asyncio.Queue[bytes | None]) -> None:
    try:
        async for line in stream.content:
            await lines.put(line)
    except (aiohttp.ClientError, TimeoutError):
        pass  # the worker went away: its share of the stream ends
    await lines.put(None)


def _forwarded(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}


_ERRORS: dict[int, type[web.HTTPException]] = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized,
                                                404: web.HTTPNotFound, 503: web.HTTPServiceUnavailable}


def _refuse(answers: list[_Answer]) -> NoReturn:
    """Raise the workers' refusal (the first), or 503 when no worker answered at all."""
    if answers:
        raise _ERRORS.get(answers[0].status, web.HTTPBadGateway)(text=answers[0].text)
    raise web.HTTPServiceUnavailable(text="admin endpoint: no worker answered (starting or restarting)")
