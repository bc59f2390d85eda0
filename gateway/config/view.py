"""The running config as plain data for people to read (healthcheckv2's `/config`): every component's
decoded config with its defaults filled in, keys as written in YAML, durations as Go durations, and every
secret replaced by `[REDACTED]` (the Collector's `configopaque` spelling).

What is a secret is decided by key name, one table for every component: credentials (`token`, `password`,
`client_secret`, an htpasswd's `inline`, a private key's `key_pem`, ...), the values of any `headers`
block (an exporter's `Authorization` or API key), and the user and password in a URL's userinfo. A key
named here is redacted wherever it appears, so a component added later is covered by its key names.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from functools import cache
from typing import Any

from gateway.config.model import GatewayConfig
from pipelines.config_types import config_key

REDACTED = "[REDACTED]"

# Keys whose whole value is a secret.
SECRET_KEYS = frozenset({"token", "tokens", "password", "client_secret", "inline", "key_pem", "headers_list",
                         "endpoint_params", "api_key", "apikey", "secret", "credentials"})
# Parts of a key name that make it one (`x_api_token`), unless it names a file that holds the secret.
_SECRET_PARTS = ("token", "password", "passwd", "secret", "api_key", "apikey", "credential")
# Under a `headers` key every value is a secret, but these name or place a header.
_HEADER_NAMING = frozenset({"key", "name", "action", "from_context", "from_attribute"})
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def is_secret_key(key: str) -> bool:
    name = key.lower()
    if name in SECRET_KEYS:
        return True
    return not name.endswith(("_file", "_path")) and any(part in name for part in _SECRET_PARTS)


def config_view(config: GatewayConfig) -> dict[str, Any]:
    sections = ("receivers", "processors", "exporters", "connectors", "extensions")
    out: dict[str, Any] = {s: {cid: _value(c) for cid, c in getattr(config, s).items()} for s in sections}
    out["service"] = _value(config.service)
    return out


@cache
def _durations(cls: type) -> frozenset[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return frozenset(name for name, tp in hints.items()
                     if typing.get_origin(tp) is typing.Annotated and "duration" in typing.get_args(tp)[1:])


def _value(value: Any, headers: bool = False) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        durations = _durations(type(value))
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            key, item = config_key(f), getattr(value, f.name)
            if key.lower().startswith("headers"):
                out[key] = _redacted(item) if key.lower() in SECRET_KEYS else _value(item, headers=True)
            elif dataclasses.is_dataclass(item):  # a block (`htpasswd`): its keys decide
                out[key] = _value(item, headers)
            elif (headers and key not in _HEADER_NAMING) or is_secret_key(key):
                out[key] = _redacted(item)
            elif f.name in durations and isinstance(item, (int, float)):
                out[key] = _duration(item)
            else:
                out[key] = _value(item, headers and key not in _HEADER_NAMING)
        return out
    if isinstance(value, dict):
        if headers:
            return {str(k): _redacted(v) for k, v in value.items()}
        return {str(k): _redacted(v) if is_secret_key(str(k)) else _value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_value(v, headers) for v in value]
    if isinstance(value, str):
        return _redacted(value) if headers else _USERINFO.sub(REDACTED + "@", value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def _redacted(value: Any) -> Any:
    """Secrets go; whether one was set stays visible (an empty value or none is shown as it is)."""
    return value if value in (None, "", (), [], {}) else REDACTED


def _duration(seconds: float) -> str:
    if seconds and seconds == int(seconds):
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
