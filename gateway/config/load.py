"""Load a Collector-format YAML config: parse, expand `${...}`, decode every component, check the
pipelines' references. Structure only, no I/O beyond reading the file: every error is collected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from gateway import components
from gateway.config.decode import Errors, decode, join
from gateway.config.expand import expand
from gateway.config.model import SECTIONS, SIGNALS, GatewayConfig, ServiceConfig, valid_id

_TOP_LEVEL = (*SECTIONS, "service", "connectors")


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Loaded:
    config: GatewayConfig
    warnings: tuple[str, ...]


def load_file(path: str | Path, env: Mapping[str, str] | None = None) -> Loaded:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read config file {str(path)!r}: {exc.strerror}"]) from exc
    return load_text(text, env)


def load_text(text: str, env: Mapping[str, str] | None = None) -> Loaded:
    errors = Errors()
    warnings: list[str] = []
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"cannot parse YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["the config must be a mapping with receivers, exporters and service"])
    for key in raw:
        if key not in _TOP_LEVEL:
            errors.add("", f"unknown top-level key {key!r}")
    if raw.get("connectors"):
        errors.add("connectors", "connectors are not supported by this gateway")
    raw = expand(raw, os.environ if env is None else env, errors)

    sections: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        sections[section] = _load_section(cast(components.Kind, section), raw.get(section), errors, warnings)

    service = decode(ServiceConfig, raw.get("service"), "service", errors) or ServiceConfig()
    _check_service(service, sections, errors)
    if errors:
        raise ConfigError(errors.lines)
    config = GatewayConfig(
        receivers=sections["receivers"],
        processors=sections["processors"],
        exporters=sections["exporters"],
        extensions=sections["extensions"],
        service=service,
    )
    return Loaded(config, tuple(warnings))


def _load_section(kind: components.Kind, data: Any, errors: Errors, warnings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        errors.add(kind, f"want a mapping, got {type(data).__name__}")
        return out
    for key, body in data.items():
        cid = str(key)
        path = join(kind, cid)
        if not valid_id(cid):
            errors.add(path, "invalid component id: want type[/name]")
            continue
        type_name = cid.partition("/")[0]
        factory = components.lookup(kind, type_name)
        if factory is None:
            known = ", ".join(components.known(kind))
            errors.add(path, f"unknown type {type_name!r} (known: {known})")
            continue
        new_name = components.DEPRECATED.get((kind, type_name))
        if new_name:
            warnings.append(f"{path}: {type_name!r} is a deprecated name, use {new_name!r}")
        cfg = decode(factory.config, body, path, errors)
        if cfg is not None:
            out[cid] = cfg
    return out


def _check_service(service: ServiceConfig, sections: dict[str, dict[str, Any]], errors: Errors) -> None:
    for ext in service.extensions:
        if ext not in sections["extensions"]:
            errors.add("service::extensions", f"references extension {ext!r} which is not configured")
    if not service.pipelines:
        errors.add("service::pipelines", "at least one pipeline is required")
    for pid, pipe in service.pipelines.items():
        path = join("service::pipelines", pid)
        if not valid_id(pid) or pid.partition("/")[0] not in SIGNALS:
            errors.add(path, f"invalid pipeline id: want one of {', '.join(SIGNALS)}, optionally /name")
            continue
        signal = pid.partition("/")[0]
        for kind, refs in (("receiver", pipe.receivers), ("processor", pipe.processors), ("exporter", pipe.exporters)):
            section = kind + "s"
            seen: set[str] = set()
            for ref in refs:
                if ref in seen:
                    errors.add(path, f"references {kind} {ref!r} more than once")
                seen.add(ref)
                if ref not in sections[section]:
                    if not _declared_with_error(section, ref, errors):
                        errors.add(path, f"references {kind} {ref!r} which is not configured")
                    continue
                factory = components.lookup(cast(components.Kind, section), ref.partition("/")[0])
                if factory is not None and signal not in factory.signals:
                    errors.add(path, f"{kind} {ref!r} does not support {signal}")
        if not pipe.receivers:
            errors.add(path, "must have at least one receiver")
        if not pipe.exporters:
            errors.add(path, "must have at least one exporter")


def _declared_with_error(section: str, ref: str, errors: Errors) -> bool:
    """A component whose own block failed to decode was reported already: say nothing more."""
    prefix = f"{section}::{ref}"
    return any(line.startswith(prefix + ":") for line in errors.lines)
