"""What a worker's admin server and the supervisor's (`gateway.admin.workers`) share: the authenticator in
front of every route, the page, and the reading of a tap's query."""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.admin.tap import DEFAULT_RATE, MAX_RATE, Direction
from gateway.auth import Authenticator, AuthError
from gateway.extensions.basicauth import BasicAuthServer
from pipelines.errors import RetryableError

log = logging.getLogger("gateway.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Lookup = Callable[[], Authenticator | None]

_REALM = 'realm="otel gateway admin"'


def guard(lookup: Lookup) -> Middleware:
    """A middleware asking `lookup()`'s authenticator (None: no `auth`) about every request: 401 with the
    authenticator's message (never a credential), 503 when it cannot check now or is not running."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            auth = lookup()
        except KeyError:  # between two graphs of a reload, or an extension that is no authenticator
            raise web.HTTPServiceUnavailable(text="admin endpoint: its authenticator is not running") from None
        if auth is not None:
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                await auth.identify(headers)
            except AuthError as exc:
                raise _unauthorized(request, auth, f"admin endpoint: not authenticated: {exc}") from None
            except RetryableError as exc:
                raise web.HTTPServiceUnavailable(text=f"admin endpoint: authentication unavailable, retry later: "
                                                      f"{exc}", headers={"Retry-After": "1"}) from None
            except Exception as exc:  # a bug or odd input in an authenticator: refused, never a crash
                log.error("admin endpoint: the authenticator failed (%s); request refused", type(exc).__name__)
                raise _unauthorized(request, auth, "admin endpoint: authentication failed") from None
        return await handler(request)

    return check


def _unauthorized(request: web.Request, auth: Authenticator, text: str) -> web.HTTPUnauthorized:
    """A 401 a browser can act on. basicauth: the Basic challenge, so it asks for a user and password and sends
    them with every request after. A token (bearertokenauth, oidc) a browser cannot be made to ask for: the
    page itself (static, no data in it) comes with the 401, asks for one and sends it with its requests."""
    if isinstance(auth, BasicAuthServer):
        return web.HTTPUnauthorized(text=text, headers={"WWW-Authenticate": f"Basic {_REALM}"})
    headers = {"WWW-Authenticate": f"Bearer {_REALM}"}
    if request.method == "GET" and request.path == "/":
        return web.HTTPUnauthorized(text=_page(), content_type="text/html",
                                    headers={**headers, "Cache-Control": "no-store"})
    return web.HTTPUnauthorized(text=text, headers=headers)


def application(lookup: Lookup, graph: Handler, stats: Handler, traces: Handler, tap: Handler,
                diff: Handler) -> web.Application:
    """The admin routes, every one behind `lookup()`'s authenticator."""
    app = web.Application(middlewares=[guard(lookup)])
    app.router.add_get("/", page)
    app.router.add_get("/api/v1/graph", graph)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/traces", traces)
    app.router.add_get("/api/v1/tap", tap)
    app.router.add_get("/api/v1/diff", diff)
    return app


def _page() -> str:
    return importlib.resources.files("gateway.admin").joinpath("ui/index.html").read_text("utf-8")


async def page(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html", headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class TapQuery:
    component: str
    direction: Direction
    fmt: str
    limit: int
    rate: float


def tap_query(request: web.Request) -> TapQuery:
    """`/api/v1/tap`'s parameters; HTTPBadRequest naming what is wrong."""
    q = request.query
    direction = q.get("direction", "in")
    fmt = q.get("format", "json")
    try:
        limit = int(q.get("limit", "0"))
        rate = min(MAX_RATE, float(q.get("rate", DEFAULT_RATE)))
    except ValueError:
        raise web.HTTPBadRequest(text="limit and rate must be numbers") from None
    if direction not in ("in", "out") or fmt not in ("json", "line") or limit < 0 or rate <= 0:
        raise web.HTTPBadRequest(text="direction: in|out, format: json|line, limit >= 0, rate > 0")
    if "component" not in q:
        raise web.HTTPBadRequest(text="component=ID (or KIND:ID) is required")
    return TapQuery(q["component"], "in" if direction == "in" else "out", fmt, limit, rate)
