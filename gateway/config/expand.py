"""The Collector's `${...}` expansion in config values: `${env:VAR}`, `${VAR}`,
`${env:VAR:-default}`, `${file:PATH}`, and `$$` for a literal `$`. Keys are never expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.decode import Errors, join

_REF = re.compile(r"\$\$|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def expand(data: Any, env: Mapping[str, str], errors: Errors, path: str = "") -> Any:
    if isinstance(data, dict):
        return {k: expand(v, env, errors, join(path, str(k))) for k, v in data.items()}
    if isinstance(data, list):
        return [expand(v, env, errors, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:
        return _expand_str(data, env, errors, path)
    return data


def _expand_str(text: str, env: Mapping[str, str], errors: Errors, path: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return _resolve(m.group(1), env, errors, path)

    return _REF.sub(sub, text)


def _resolve(ref: str, env: Mapping[str, str], errors: Errors, path: str) -> str:
    scheme, sep, rest = ref.partition(":")
    if not sep:
        scheme, rest = "env", ref
    if scheme == "env":
        name, dsep, default = rest.partition(":-")
        if not _ENV_NAME.match(name):
            errors.add(path, f"invalid environment variable name {name!r} in ${{{ref}}}")
            return ""
        value = env.get(name)
        if value is None or (dsep and value == ""):
            return default if dsep else ""
        return value
    if scheme == "file":
        try:
            return Path(rest).read_text().rstrip("\n")
        except OSError as exc:
            errors.add(path, f"cannot read ${{file:{rest}}}: {exc.strerror}")
            return ""
    errors.add(path, f"unsupported config provider {scheme!r} in ${{{ref}}}")
    return ""
