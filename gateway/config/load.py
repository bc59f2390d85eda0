"""Load a Collector-format YAML config: parse, expand `${...}`, decode every component, check the
pipelines' references. Structure only, no I/O beyond reading the file: every error is collected.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from gateway import registry
from gateway.component import (
    ConnectorFactory,
    ExporterFactory,
    ExtensionFactory,
    ExtensionRef,
    ProcessorFactory,
    ReceiverFactory,
)
from gateway.config.decode import Errors, decode, join
from gateway.config.expand import expand
from gateway.config.model import (
    SECTIONS,
    SIGNALS,
    GatewayConfig,
    PipelineConfig,
    ServiceConfig,
    pipeline_order,
    valid_id,
)

_TOP_LEVEL = (*SECTIONS, "service")


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Loaded:
    config: GatewayConfig
    warnings: tuple[str, ...]


def load_file(path: str | Path, env: Mapping[str, str] | None = None) -> Loaded:
    return load_files([path], env)


def load_files(paths: Sequence[str | Path], env: Mapping[str, str] | None = None) -> Loaded:
    """Several files merge in order, as the Collector's repeated `--config`: mappings merge key by key,
    any other value (a list included) is replaced by the later file's."""
    merged: Any = None
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError([f"cannot read config file {str(path)!r}: {exc.strerror}"]) from exc
        merged = _merge(merged, _parse(text, str(path) if len(paths) > 1 else ""))
    return _load(merged, env)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return over if over is not None or base is None else base


def _parse(text: str, name: str = "") -> Any:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = f" in {name}" if name else ""
        raise ConfigError([f"cannot parse YAML{where}: {exc}"]) from exc
    return {} if raw is None else raw


def load_text(text: str, env: Mapping[str, str] | None = None) -> Loaded:
    return _load(_parse(text), env)


def _load(raw: Any, env: Mapping[str, str] | None) -> Loaded:
    errors = Errors()
    warnings: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["the config must be a mapping with receivers, exporters and service"])
    for key in raw:
        if key not in _TOP_LEVEL:
            errors.add("", f"unknown top-level key {key!r}")
    before = len(errors.lines)
    raw = expand(raw, os.environ if env is None else env, errors)
    expansion_errors = errors.lines[before:]

    sections: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        sections[section] = _load_section(cast(registry.Kind, section), raw.get(section), errors, warnings)

    raw_service = raw.get("service")
    service = _load_service(raw_service, errors)
    # Pipelines that were written but failed to decode were reported already.
    declared = isinstance(raw_service, dict) and bool(raw_service.get("pipelines"))
    _check_service(service, sections, errors, pipelines_declared=declared)
    _check_connectors(service, sections, errors)
    _check_extension_refs(service, sections, errors)
    _check_kept_metadata(service, sections, errors)
    _drop_consequences(errors, expansion_errors)
    if errors:
        raise ConfigError(errors.lines)
    config = GatewayConfig(
        receivers=sections["receivers"],
        processors=sections["processors"],
        exporters=sections["exporters"],
        extensions=sections["extensions"],
        service=service,
        connectors=sections["connectors"],
    )
    return Loaded(config, tuple(warnings))


def _drop_consequences(errors: Errors, expansion_errors: list[str]) -> None:
    """A value that failed to expand became "": the errors that follow from it in the same component
    (a bad endpoint, an invalid choice) would only repeat the expansion error, so they are dropped."""
    tainted = {"::".join(line.partition(": ")[0].split("::")[:2]) for line in expansion_errors}
    keep = set(expansion_errors)
    errors.lines = [
        line for line in errors.lines
        if line in keep or not any(line.startswith((t + ":", t + "::")) for t in tainted)
    ]


def _load_service(data: Any, errors: Errors) -> ServiceConfig:
    """Pipelines are decoded one by one, so a typo in one still lets the others' references be checked."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.add("service", f"want a mapping, got {type(data).__name__}")
        return ServiceConfig()
    rest = {k: v for k, v in data.items() if k != "pipelines"}
    service = decode(ServiceConfig, rest, "service", errors) or ServiceConfig()
    raw_pipes = data.get("pipelines") or {}
    if not isinstance(raw_pipes, dict):
        errors.add("service::pipelines", f"want a mapping, got {type(raw_pipes).__name__}")
        return service
    pipelines: dict[str, PipelineConfig] = {}
    for pid, body in raw_pipes.items():
        pipe = decode(PipelineConfig, body, join("service::pipelines", str(pid)), errors)
        if pipe is not None:
            pipelines[str(pid)] = pipe
    return dataclasses.replace(service, pipelines=pipelines)


def _load_section(kind: registry.Kind, data: Any, errors: Errors, warnings: list[str]) -> dict[str, Any]:
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
        factory = registry.lookup(kind, type_name)
        if factory is None:
            known = ", ".join(registry.known(kind))
            errors.add(path, f"unknown type {type_name!r} (known: {known})")
            continue
        new_name = registry.DEPRECATED.get((kind, type_name))
        if new_name:
            warnings.append(f"{path}: {type_name!r} is a deprecated name, use {new_name!r}")
        cfg = decode(factory.config, body, path, errors)
        if cfg is not None:
            out[cid] = cfg
    return out


def _check_service(
    service: ServiceConfig, sections: dict[str, dict[str, Any]], errors: Errors, pipelines_declared: bool = False
) -> None:
    for ext in service.extensions:
        if ext not in sections["extensions"] and not _declared_with_error("extensions", ext, errors):
            errors.add("service::extensions", f"references extension {ext!r} which is not configured")
        if service.workers > 1 and ext.partition("/")[0] == "healthcheckv2":
            errors.add("service::extensions", f"{ext!r} is not supported with service::workers > 1 (each worker's "
                       "components have their own status; use health_check, which answers for all workers)")
    if not service.pipelines and not pipelines_declared:
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
                if kind != "processor" and ref in sections["connectors"]:
                    if ref in sections[section]:
                        errors.add(path, f"{ref!r} is ambiguous: a {kind} and a connector have that id")
                    continue  # a connector's signals are checked with its other ends (_check_connectors)
                if ref not in sections[section]:
                    if not _declared_with_error(section, ref, errors) and not _declared_with_error(
                            "connectors", ref, errors):
                        errors.add(path, f"references {kind} {ref!r} which is not configured")
                    continue
                factory = registry.lookup(cast(registry.Kind, section), ref.partition("/")[0])
                if factory is not None and not isinstance(factory, ExtensionFactory | ConnectorFactory) \
                        and signal not in factory.signals:
                    errors.add(path, f"{kind} {ref!r} does not support {signal}")
                elif isinstance(factory, ProcessorFactory) and factory.check_for_signal is not None:
                    for message in factory.check_for_signal(sections[section][ref], signal):
                        errors.add(path, f"{kind} {ref!r}: {message}")
        if not pipe.receivers:
            errors.add(path, "must have at least one receiver")
        if not pipe.exporters:
            errors.add(path, "must have at least one exporter")


def _declared_with_error(section: str, ref: str, errors: Errors) -> bool:
    """A component whose own block failed to decode was reported already: say nothing more."""
    prefix = f"{section}::{ref}"
    return any(line.startswith(prefix + ":") for line in errors.lines)


_ROLE_NAMES = {"authenticator": "an authenticator extension", "storage": "a file_storage extension",
               "client_authenticator": "a client authenticator extension"}


def _check_extension_refs(service: ServiceConfig, sections: dict[str, dict[str, Any]], errors: Errors) -> None:
    """Every extension a receiver or exporter names (an `auth::authenticator`, a `sending_queue::storage`)
    is one that can play that role, configured, and enabled in `service::extensions`."""
    for section in ("receivers", "processors", "exporters"):
        for cid, cfg in sections[section].items():
            factory = registry.lookup(section, cid.partition("/")[0])
            if not isinstance(factory, ReceiverFactory | ProcessorFactory | ExporterFactory) \
                    or factory.extension_refs is None:
                continue
            for ref in factory.extension_refs(cfg):
                _check_ref(join(join(section, cid), ref.key), ref, service, sections, errors)
    admin = service.admin
    if admin.enabled and admin.auth is not None:
        ref = ExtensionRef("auth::authenticator", admin.auth.authenticator, "authenticator")
        _check_ref("service::admin::auth::authenticator", ref, service, sections, errors)


def _check_ref(path: str, ref: ExtensionRef, service: ServiceConfig, sections: dict[str, dict[str, Any]],
               errors: Errors) -> None:
    ext = registry.lookup("extensions", ref.extension.partition("/")[0])
    if isinstance(ext, ExtensionFactory) and ref.role not in ext.roles:
        errors.add(path, f"references {ref.extension!r}, which is not {_ROLE_NAMES[ref.role]}")
    elif ref.extension not in sections["extensions"]:
        if not _declared_with_error("extensions", ref.extension, errors):
            errors.add(path, f"references extension {ref.extension!r} which is not configured")
    elif ref.extension not in service.extensions:
        errors.add(path, f"references extension {ref.extension!r} which is not enabled in service::extensions")


def _check_kept_metadata(service: ServiceConfig, sections: dict[str, dict[str, Any]], errors: Errors) -> None:
    """The request headers each exporter's queue would keep with every request, from the `batch`
    processors upstream of it (through connectors too: any of them, not only the one whose batching
    wins) and its client authenticator, are checked by the exporter (a persistent queue must not write
    credentials to disk); the batching ones of every exporter a processor's data reaches, by the
    processor (tail_sampling's `storage`). Refused whether or not a receiver keeps metadata today."""
    pipes = {pid: p for pid, p in service.pipelines.items() if valid_id(pid) and pid.partition("/")[0] in SIGNALS}
    reached = {pid: _exporters_reached(pid, pipes, sections["connectors"]) for pid in pipes}
    batched: dict[str, dict[str, str]] = {}
    for xid, cfg in sections["exporters"].items():
        kept = batched[xid] = {}
        for pid, pipe in pipes.items():
            if xid not in reached[pid]:
                continue
            for prid in pipe.processors:
                proc = registry.lookup("processors", prid.partition("/")[0])
                if isinstance(proc, ProcessorFactory) and proc.metadata_keys is not None and \
                        prid in sections["processors"]:
                    for key in proc.metadata_keys(sections["processors"][prid]):
                        kept.setdefault(key, f"processors::{prid}::metadata_keys")
        factory = registry.lookup("exporters", xid.partition("/")[0])
        if not isinstance(factory, ExporterFactory) or factory.check_kept_metadata is None:
            continue
        kept = dict(kept)
        for ref in factory.extension_refs(cfg) if factory.extension_refs is not None else []:
            ext = registry.lookup("extensions", ref.extension.partition("/")[0])
            if ref.role == "client_authenticator" and isinstance(ext, ExtensionFactory) and \
                    ext.context_keys is not None and ref.extension in sections["extensions"]:
                for key in ext.context_keys(sections["extensions"][ref.extension]):
                    kept.setdefault(key, f"the authenticator extensions::{ref.extension}")
        for key, message in factory.check_kept_metadata(cfg, kept):
            errors.add(join(join("exporters", xid), key), message)
    for prid, cfg in sections["processors"].items():
        proc = registry.lookup("processors", prid.partition("/")[0])
        if not isinstance(proc, ProcessorFactory) or proc.check_kept_metadata is None:
            continue
        kept = {}
        for pid, pipe in pipes.items():
            if prid in pipe.processors:
                for xid in sorted(reached[pid]):
                    for key, source in batched.get(xid, {}).items():
                        kept.setdefault(key, source)
        for key, message in proc.check_kept_metadata(cfg, kept):
            errors.add(join(join("processors", prid), key), message)


def _exporters_reached(pid: str, pipes: Mapping[str, PipelineConfig], connectors: Mapping[str, Any]) -> set[str]:
    """The exporter ids a pipeline's data reaches: its own, and through its connectors those of the
    pipelines they feed."""
    reached: set[str] = set()
    todo, seen = [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for xid in pipes[current].exporters:
            if xid in connectors:
                todo.extend(other for other, p in pipes.items() if xid in p.receivers)
            else:
                reached.add(xid)
    return reached


def _check_connectors(service: ServiceConfig, sections: dict[str, dict[str, Any]], errors: Errors) -> None:
    """Each connector in a pipeline joins an exporter side to a receiver side of signals it supports,
    its config fits the pipelines it feeds, and connectors form no cycle (the Collector's rules)."""
    pipes = {pid: p for pid, p in service.pipelines.items()
             if valid_id(pid) and pid.partition("/")[0] in SIGNALS}
    for cid, cfg in sections["connectors"].items():
        factory = registry.connector(cid.partition("/")[0])
        as_exporter = [pid for pid, p in pipes.items() if cid in p.exporters]
        as_receiver = [pid for pid, p in pipes.items() if cid in p.receivers]
        if not as_exporter and not as_receiver:
            continue  # configured, not used: the Collector builds nothing for it either
        path = join("connectors", cid)
        exporter_signals = {pid.partition("/")[0] for pid in as_exporter}
        receiver_signals = {pid.partition("/")[0] for pid in as_receiver}
        for pid in as_exporter:
            s = pid.partition("/")[0]
            if not any((s, r) in factory.pairs for r in receiver_signals):
                errors.add(join("service::pipelines", pid),
                           f"connector {cid!r} used as exporter in {s} pipeline but not used in any supported "
                           f"receiver pipeline")
            elif factory.check_for_signal is not None:
                for message in factory.check_for_signal(cfg, s):
                    errors.add(path, message)
        for pid in as_receiver:
            r = pid.partition("/")[0]
            if not any((s, r) in factory.pairs for s in exporter_signals):
                errors.add(join("service::pipelines", pid),
                           f"connector {cid!r} used as receiver in {r} pipeline but not used in any supported "
                           f"exporter pipeline")
        if factory.check_pipelines is not None:
            for message in factory.check_pipelines(cfg, frozenset(as_receiver)):
                errors.add(path, message)
    try:
        pipeline_order(pipes, frozenset(sections["connectors"]))
    except ValueError as exc:
        errors.add("service::pipelines", str(exc))

