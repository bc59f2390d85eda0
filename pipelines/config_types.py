"""Type markers that config dataclasses use and the config decoder understands."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

# Seconds, written in config as a Go duration ("200ms", "5s", "1m30s") like the Collector's.
Duration = Annotated[float, "duration"]


# A Collector key the gateway does not implement is declared with `unsupported(reason)`: the config
# decoder (gateway.config.decode) refuses a config that sets it, with its path and the reason.
_UNSUPPORTED = "unsupported"


def unsupported(reason: str, default: Any = None) -> Any:
    """A dataclass field for a Collector key this gateway refuses: setting it is a config error, except
    to `default`, the Collector's own default, which asks for nothing (`recreate: false`)."""
    return dataclasses.field(default=default, metadata={_UNSUPPORTED: reason})


def unsupported_reason(f: dataclasses.Field[Any]) -> str | None:
    reason: str | None = f.metadata.get(_UNSUPPORTED)
    return reason


# A key that is a Python keyword (the tail sampler's `and` and `not` blocks) is declared as a field of
# another name with `renamed(key)`; the decoder reads and reports it under `key`.
_KEY = "config_key"


def renamed(key: str, **field_args: Any) -> Any:
    return dataclasses.field(metadata={_KEY: key}, **field_args)


def config_key(f: dataclasses.Field[Any]) -> str:
    key: str = f.metadata.get(_KEY, f.name)
    return key
