"""Cross-origin resource sharing for the OTLP/HTTP receiver (`protocols::http::cors`), with the
semantics of the Collector's confighttp (github.com/rs/cors with `AllowCredentials: true`), so browser
SDKs (OpenTelemetry JS) can export from a page served on another origin.

- Only when `allowed_origins` is not empty (the Collector ignores a block without origins, warning
  when it lists headers).
- An origin may hold one `*` standing for any characters (`https://*.example.com`); `*` alone allows
  every origin. Origins compare case-insensitively.
- Preflight (`OPTIONS` with `Access-Control-Request-Method`): answered 204 here, before authentication.
  With an allowed origin, method (GET, POST, HEAD) and headers, it carries `Access-Control-Allow-Origin`
  (the request's origin), `-Allow-Methods`, `-Allow-Headers` (as requested), `-Allow-Credentials: true`
  and, when `max_age` > 0, `-Max-Age`; otherwise no CORS headers at all, and the browser refuses.
- Headers always allowed: Accept, Accept-Language, Content-Type, Content-Language, Origin;
  X-Requested-With too when `allowed_headers` is empty; `*` in `allowed_headers` allows any.
- Other requests from an allowed origin get `Access-Control-Allow-Origin` and
  `Access-Control-Allow-Credentials`; every answer varies by `Origin`.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.receivers.otlp_config import CorsConfig

_METHODS = frozenset({"GET", "POST", "HEAD"})
_ALWAYS_ALLOWED = frozenset({"accept", "accept-language", "content-type", "content-language", "origin"})
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


class CorsPolicy:
    def __init__(self, config: CorsConfig) -> None:
        self.max_age = config.max_age
        origins = [o.lower() for o in config.allowed_origins]
        self._any_origin = "*" in origins
        self._exact = frozenset(o for o in origins if "*" not in o)
        self._wild = [tuple(o.split("*", 1)) for o in origins if "*" in o and o != "*"]
        headers = {h.lower() for h in config.allowed_headers}
        self._any_header = "*" in headers
        self._headers = _ALWAYS_ALLOWED | headers | (frozenset() if headers else {"x-requested-with"})

    def origin_allowed(self, origin: str) -> bool:
        o = origin.lower()
        if self._any_origin or o in self._exact:
            return True
        return any(len(o) >= len(p) + len(s) and o.startswith(p) and o.endswith(s) for p, s in self._wild)

    def _headers_allowed(self, requested: str) -> bool:
        names = [h.strip().lower() for h in requested.split(",") if h.strip()]
        return self._any_header or all(h in self._headers for h in names)

    def preflight(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers of the 204 answer to a preflight request."""
        out = {"Vary": PREFLIGHT_VARY}
        origin = headers.get("Origin", "")
        method = headers.get("Access-Control-Request-Method", "").upper()
        requested = headers.get("Access-Control-Request-Headers", "")
        if not origin or not self.origin_allowed(origin) or method not in _METHODS \
                or not self._headers_allowed(requested):
            return out
        out.update({"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": method,
                    "Access-Control-Allow-Credentials": "true"})
        if requested:
            out["Access-Control-Allow-Headers"] = requested
        if self.max_age > 0:
            out["Access-Control-Max-Age"] = str(self.max_age)
        return out

    def actual(self, method: str, headers: Mapping[str, str]) -> dict[str, str]:
        """The CORS headers of the answer to any other request."""
        origin = headers.get("Origin", "")
        if not origin or not self.origin_allowed(origin) or method.upper() not in _METHODS:
            return {"Vary": "Origin"}
        return {"Vary": "Origin", "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}
