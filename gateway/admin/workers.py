"""The admin endpoint of `service::workers`, served by the supervisor for all of them, as it serves /metrics.

Each worker's own admin server listens on a private loopback port that it reports with its health and
metrics ports; this server asks the workers that are running (one restarting is skipped) and answers as one
gateway:

- `/api/v1/graph`: from any worker (they run the same config), with the list of workers;
- `/api/v1/stats`: every worker's stats summed per component (`gateway.admin.stats.merge`), saying which
  workers there are and how many answered; a worker that misses a read counts with its last answer (listed
  as `stale`), and one that exited with its totals (`stats.counters`, as `/metrics`), so no total goes back;
- `/api/v1/tap`: a tap on every worker, each at the full `rate` (traffic may all reach one worker), their
  lines merged, `rate` and `limit` enforced here (a worker that does not open its tap in `_ASK_TIMEOUT` is left out, and
  `X-Gateway-Workers` lists those in it); the workers' taps close when the client leaves or the limit is reached;
  `MAX_TAPS` at once, each on a connection pool apart from the other routes';
- `/api/v1/traces`: every worker's recent traces, merged by trace id (`gateway.admin.watch.merge`);
- `/api/v1/diff`: every worker's before/after view of a processor (each sees both sides of its own
  instances), merged by trace id (`gateway.admin.diff.merge`); both bounded (`watch.ANSWER_SPANS`), and
  parsed, merged and written off this loop;
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

from gateway.admin import diff, stats, watch
from gateway.admin.http import Lookup, TapQuery, application, tap_query
from gateway.config.model import AdminConfig
from gateway.transport.http_site import start_site

log = logging.getLogger("gateway.admin")

# How long a worker may take to answer a question, or to open a tap (whose stream then has no bound).
_ASK_TIMEOUT = 5.0
_IDLE_CHECK = 1.0
# The longest tap line passed on; a longer one (an item with a huge attribute) is replaced by a line saying
# so. aiohttp's own readline would raise LineTooLong there (not a ClientError), ending that worker's share.
MAX_LINE = 512 * 1024
# Taps open at once through the supervisor; one more is refused (429). Each holds a connection to every
# worker for its whole life, on a pool of its own: the other routes never wait behind taps.
MAX_TAPS = 32
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
        self._tap_session: aiohttp.ClientSession | None = None
        self._taps = 0
        # Each worker's last stats (by index: its pid and components), and the totals of those that exited.
        self._last: dict[int, tuple[int, dict[str, Any]]] = {}
        self._retired: dict[str, Any] = {}
        self.port: int | None = None

    async def start(self) -> None:
        app = application(self._authenticator, self._graph, self._stats, self._traces, self._tap, self._diff)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_ASK_TIMEOUT))
        # No pool limit: MAX_TAPS bounds it (times the workers).
        self._tap_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=_ASK_TIMEOUT))
        try:
            tls = self.config.tls.ssl_context() if self.config.tls is not None else None
            self._runner, self.port = await start_site(app, self.config.endpoint, ssl_context=tls)
        except OSError as exc:
            log.warning("admin endpoint %s not started: %s", self.config.endpoint, exc)

    async def shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for session in (self._session, self._tap_session):
            if session is not None:
                await session.close()
        self._session = self._tap_session = None

    def _who(self, targets: list[Target]) -> dict[str, Any]:
        return {"worker": None, "pid": os.getpid(), "time": time.time(),
                "workers": [{"worker": t.worker, "pid": t.pid} for t in targets]}

    async def _ask(self, target: Target, request: web.Request) -> _Answer | None:
        """The worker's answer to the same request; None if it cannot be reached (restarting)."""
        assert self._session is not None
        try:
            async with self._session.get(f"http://127.0.0.1:{target.port}{request.rel_url}",
                                         headers=_forwarded(request)) as resp:
                return _Answer(target, resp.status, await resp.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("admin: worker %d did not answer: %s", target.worker, exc)
            return None

    async def _merged(self, request: web.Request, merge: Callable[[list[dict[str, Any]]], dict[str, Any]]
                      ) -> web.Response:
        """The bodies of the workers that answered 200, merged by `merge`: parsed, merged and written in a
        thread (traces from 8 workers are megabytes; this loop serves /health and /metrics too). The first
        refusal is raised when none did (each worker runs the same graph, so they refuse alike)."""
        targets = self._targets()
        answers = [a for a in await asyncio.gather(*(self._ask(t, request) for t in targets)) if a is not None]
        ok = [a.text for a in answers if a.status == 200]
        if not ok:
            _refuse(answers)
        who = self._who(targets)

        def run() -> bytes:
            bodies = [json.loads(text) for text in ok]
            return json.dumps({**who, "answered": len(bodies), **merge(bodies)}).encode()

        return web.Response(body=await asyncio.to_thread(run), content_type="application/json")

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
        answers = await asyncio.gather(*(self._ask(t, request) for t in self._targets()))
        # The workers running now, after the answers: one may have exited (or a read begun before its
        # restart ended after another's), and an answer from a process gone is no longer its worker's.
        targets = self._targets()
        fresh = {a.target: json.loads(a.text)["components"] for a in answers
                 if a is not None and a.status == 200 and a.target in targets}
        if not fresh:
            _refuse([a for a in answers if a is not None])
        self._keep(targets, fresh)
        # A worker that did not answer (slow, stopped) counts with its last answer: without it every total
        # would drop by its share, then jump back at the next read.
        refused = {a.target for a in answers if a is not None and a.status != 200}
        stale = [t for t in targets if t not in fresh and t not in refused and t.worker in self._last]
        bodies = [*fresh.values(), *(self._last[t.worker][1] for t in stale)]
        return web.json_response({**self._who(targets), "answered": len(fresh),
                                  "stale": [{"worker": t.worker, "pid": t.pid} for t in stale],
                                  "components": stats.merge(bodies, self._retired)})

    def _keep(self, targets: list[Target], fresh: dict[Target, dict[str, Any]]) -> None:
        """Remember each running worker's answer; a process gone (not running, or another pid at its index)
        leaves its totals to `_retired`."""
        running = {t.worker: t.pid for t in targets}
        for index, (pid, components) in list(self._last.items()):
            if running.get(index) != pid:
                self._retired = stats.merge([self._retired, stats.counters(components)])
                del self._last[index]
        for target, components in fresh.items():
            self._last[target.worker] = (target.pid, components)

    async def _traces(self, request: web.Request) -> web.Response:
        return await self._merged(request, lambda bodies: {
            "component": bodies[0]["component"], "direction": bodies[0]["direction"],
            "traces": watch.merge([b["traces"] for b in bodies])})

    async def _diff(self, request: web.Request) -> web.Response:
        return await self._merged(request, lambda bodies: {
            "component": bodies[0]["component"], "grace": bodies[0]["grace"],
            "traces": diff.merge([b["traces"] for b in bodies])})

    async def _open(self, target: Target, request: web.Request,
                    query: dict[str, str]) -> aiohttp.ClientResponse | _Answer | None:
        assert self._tap_session is not None
        try:
            # Bounded: a stopped worker (or one whose loop is stuck) accepts the connection in the kernel
            # and never answers; the tap goes on without it.
            resp = await asyncio.wait_for(
                self._tap_session.get(f"http://127.0.0.1:{target.port}/api/v1/tap", params=query,
                                  headers=_forwarded(request)), _ASK_TIMEOUT)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("admin: worker %d left out of a tap: it did not open one (%s)", target.worker,
                        exc or type(exc).__name__)
            return None
        if resp.status != 200:
            with contextlib.closing(resp):
                return _Answer(target, resp.status, await resp.text())
        return resp

    async def _tap(self, request: web.Request) -> web.StreamResponse:
        tq = tap_query(request)
        if self._taps >= MAX_TAPS:
            raise web.HTTPTooManyRequests(text=f"admin endpoint: {MAX_TAPS} taps are open, the most at once; "
                                               f"close one and try again")
        self._taps += 1
        try:
            return await self._merged_tap(request, tq)
        finally:
            self._taps -= 1

    async def _merged_tap(self, request: web.Request, tq: TapQuery) -> web.StreamResponse:
        targets = self._targets()
        # Each worker's bucket at the full rate (one upstream connection puts all traffic on one worker), so
        # none is slowed by more than one tap at `rate`; the total is bounded here, over the merged lines.
        # No limit there: the bucket here may pass fewer lines than they send; their taps end when this one
        # closes their streams.
        query = {"component": tq.component, "direction": tq.direction, "format": tq.fmt, "rate": str(tq.rate)}
        opened = await asyncio.gather(*(self._open(t, request, query) for t in targets))
        streams = [(t, r) for t, r in zip(targets, opened, strict=True) if isinstance(r, aiohttp.ClientResponse)]
        if not streams:
            _refuse([a for a in opened if isinstance(a, _Answer)])
        lines: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
        readers = [asyncio.get_running_loop().create_task(_read(r, _Lines(tq.fmt, t), lines)) for t, r in streams]
        resp = web.StreamResponse(headers={"Content-Type": streams[0][1].headers.get("Content-Type", "text/plain"),
                                           "X-Gateway-Workers": ",".join(str(t.worker) for t, _ in streams)})
        bucket = Bucket(tq.rate, time.monotonic())
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
                if not bucket.take(time.monotonic()):
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
            for _, r in streams:
                r.close()
        return resp


class Bucket:
    """`rate` tokens a second, bursts of `rate` (at least one), as a worker's tap
    (`gateway.admin.tap.Tap.offer`)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._tokens = max(rate, 1.0)
        self._at = now

    def take(self, now: float) -> bool:
        """A token if there is one."""
        self._tokens = min(max(self.rate, 1.0), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class _Lines:
    """A worker's tap stream cut into lines of at most `MAX_LINE` bytes; a longer item becomes a line
    saying it was skipped (in the tap's format), so the stream goes on."""

    def __init__(self, fmt: str, target: Target) -> None:
        self._fmt = fmt
        self._target = target
        self._part = bytearray()
        self._over = 0  # bytes of a line too long, skipped so far

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end + 1]
            start += len(piece)
            if not self._over and len(self._part) + len(piece) <= MAX_LINE:
                self._part += piece
            else:
                self._over += len(self._part) + len(piece)
                self._part.clear()
            if end >= 0:
                out.append(self._skipped() if self._over else self._line())
        return out

    def end(self) -> list[bytes]:
        """What is left when the stream ends: a last line without its newline."""
        if self._over:
            return [self._skipped()]
        return [self._line() + b"\n"] if self._part else []

    def _line(self) -> bytes:
        line = bytes(self._part)
        self._part.clear()
        return line

    def _skipped(self) -> bytes:
        size, self._over = self._over, 0
        t = self._target
        note = f"an item of {size} bytes skipped: over the supervisor's {MAX_LINE} bytes a tap line"
        if self._fmt != "json":
            return f"worker {t.worker} (pid {t.pid}): {note}\n".encode()
        return (json.dumps({"worker": t.worker, "pid": t.pid, "skipped": note, "bytes": size},
                           separators=(",", ":")) + "\n").encode()


async def _read(stream: aiohttp.ClientResponse, cut: _Lines, lines: asyncio.Queue[bytes | None]) -> None:
    """A worker's tap lines into `lines`, then None however its stream ended (unless the tap is closing:
    the reader is cancelled then, and nobody reads `lines` any more)."""
    try:
        while chunk := await stream.content.readany():
            for line in cut.feed(chunk):
                await lines.put(line)
        for line in cut.end():
            await lines.put(line)
    except (aiohttp.ClientError, TimeoutError):
        pass  # the worker went away: its share of the stream ends
    except Exception:
        log.exception("admin: a worker's tap stream could not be read; its share of the tap ends")
    finally:
        task = asyncio.current_task()
        if task is None or not task.cancelling():
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
