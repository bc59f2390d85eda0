"""What the destination exporters (`honeycomb`, `tempo`, `jaeger`) share.

A destination is an OTLP exporter that knows where it sends: its config is every key the `otlp` and
`otlphttp` exporters accept, plus `protocol` and the destination's own keys. At creation it is
turned into a plain `otlp` or `otlphttp` config and handed to that exporter's factory, so retry,
queue and every fix there apply here too (composed, not copied).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from gateway.component import Settings
from gateway.exporters import otlp_grpc, otlp_http
from gateway.exporters.otlp_common import OtlpCommon

Protocol = Literal["grpc", "http"]

_HTTP_ONLY = ("traces_endpoint", "metrics_endpoint", "logs_endpoint")


@dataclass(frozen=True)
class DestinationConfig(otlp_grpc.GrpcKeys, OtlpCommon):
    protocol: Protocol = "grpc"
    # The otlphttp exporter's own keys, for `protocol: http`.
    traces_endpoint: str = ""
    metrics_endpoint: str = ""
    logs_endpoint: str = ""
    encoding: Literal["proto", "json"] = "proto"

    def protocol_errors(self) -> list[str]:
        if self.protocol == "http":
            grpc_only = {f.name for f in dataclasses.fields(otlp_grpc.GrpcKeys)}
            default = otlp_grpc.GrpcKeys()
            return [f"{name} applies to protocol grpc only" for name in sorted(grpc_only)
                    if getattr(self, name) != getattr(default, name)]
        errors = self.grpc_errors()
        errors += [f"{name} applies to protocol http only" for name in _HTTP_ONLY if getattr(self, name)]
        if self.encoding != "proto":
            errors.append("encoding applies to protocol http only")
        return errors


def header_set(headers: dict[str, str], name: str) -> bool:
    return any(k.lower() == name.lower() for k in headers)


def with_default_port(endpoint: str, protocol: Protocol, insecure: bool, grpc_port: int, http_port: int) -> str:
    """A scheme-less `host` or `host:port` in the form the protocol's exporter wants, with the
    destination's default port when none is given, and for HTTP a scheme from `tls.insecure`.
    A URL is kept as written: its scheme implies its port (https://tempo.example.com is 443)."""
    if "://" in endpoint:
        return endpoint
    hostport, slash, path = endpoint.partition("/")
    if not _has_port(hostport):
        hostport = f"{hostport}:{grpc_port if protocol == 'grpc' else http_port}"
    rest = hostport + slash + path
    if protocol == "http":
        return f"{'http' if insecure else 'https'}://{rest}"
    return rest


def _has_port(hostport: str) -> bool:
    if hostport.startswith("["):  # [v6]:port
        return "]:" in hostport
    return ":" in hostport


def otlp_config(cfg: DestinationConfig, endpoint: str, headers: dict[str, str],
                tenant_header: str) -> otlp_grpc.Config | otlp_http.Config:
    """The plain `otlp` (protocol grpc) or `otlphttp` (protocol http) config a destination stands for."""
    common: dict[str, Any] = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(OtlpCommon)}
    common.update(endpoint=endpoint, headers=headers, tenant_header=tenant_header)
    if cfg.protocol == "grpc":
        return otlp_grpc.Config(**common, keepalive=cfg.keepalive, balancer_name=cfg.balancer_name)
    return otlp_http.Config(
        **common, traces_endpoint=cfg.traces_endpoint, metrics_endpoint=cfg.metrics_endpoint,
        logs_endpoint=cfg.logs_endpoint, encoding=cfg.encoding,
    )


def create(settings: Settings[Any], config: otlp_grpc.Config | otlp_http.Config) -> Any:
    """The exporter for `config`, built by the `otlp` or `otlphttp` factory under this component's id."""
    factory = otlp_grpc.FACTORY if isinstance(config, otlp_grpc.Config) else otlp_http.FACTORY
    return factory.create(dataclasses.replace(settings, config=config))
