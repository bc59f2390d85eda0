"""The OpenTelemetry SDK's OTLP exporters, built from otelconf's `exporter: {otlp: {...}}` block, and the
resource and sampler of the gateway's own telemetry.

The SDK is the well-kept implementation of exactly this: its exporters send the gateway's spans, metrics
and logs straight to their endpoint, on threads of their own, never through the gateway's pipelines.
Every setting is passed explicitly, so no OTEL_* variable of the environment changes what the config says.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import grpc
from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as grpc_logs
from opentelemetry.exporter.otlp.proto.grpc import metric_exporter as grpc_metrics
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_traces
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http import _log_exporter as http_logs
from opentelemetry.exporter.otlp.proto.http import metric_exporter as http_metrics
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_traces
from opentelemetry.sdk.resources import Resource

from gateway.config.telemetry import OtlpExporter, Sampler

Signal = Literal["traces", "metrics", "logs"]

SERVICE_NAME = "otel-trace-gateway"
SERVICE_VERSION = "0.1.0"
# The pod's identity, when Kubernetes' downward API gives it (as seed 000's services add it).
_K8S_ENV = {"K8S_POD_NAME": "k8s.pod.name", "K8S_POD_NAMESPACE": "k8s.namespace.name"}

_GRPC = {"traces": grpc_traces.OTLPSpanExporter, "metrics": grpc_metrics.OTLPMetricExporter,
         "logs": grpc_logs.OTLPLogExporter}
_HTTP = {"traces": http_traces.OTLPSpanExporter, "metrics": http_metrics.OTLPMetricExporter,
         "logs": http_logs.OTLPLogExporter}


def resource(configured: Mapping[str, str | None], env: Mapping[str, str]) -> Resource:
    """The Collector's defaults (service name, version, a fresh instance id), the pod's name and namespace
    from `env`, then `service::telemetry::resource` (a null value removes an attribute)."""
    attrs: dict[str, str] = {"service.name": SERVICE_NAME, "service.version": SERVICE_VERSION,
                             "service.instance.id": str(uuid.uuid4())}
    attrs.update({key: env[var] for var, key in _K8S_ENV.items() if env.get(var)})
    for key, value in configured.items():
        if value is None:
            attrs.pop(key, None)
        else:
            attrs[key] = value
    return Resource(attrs)


def ratio(config: Sampler | None) -> float:
    """The share of requests and export calls the sampler keeps; none: every one (the Collector's
    parent_based(always_on)). The gateway's spans never take a parent from a client (an incoming
    traceparent is only a link), so a parent-based sampler decides as its root does, and every span is a
    root: a trace-id ratio is a ratio of spans."""
    if config is None or config.always_on is not None:
        return 1.0
    if config.always_off is not None:
        return 0.0
    if config.trace_id_ratio_based is not None:
        return config.trace_id_ratio_based.ratio
    assert config.parent_based is not None
    return ratio(config.parent_based.root)


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def exporter(config: OtlpExporter, signal: Signal) -> Any:
    """The SDK's OTLP exporter of `signal` for `config`."""
    headers = config.all_headers()
    timeout = config.timeout / 1000
    gzip = config.compression == "gzip"
    if config.protocol == "grpc":
        # `host:port` (TLS unless `insecure`), or a URL whose scheme says (http: plaintext), as the SDK reads it.
        parts = urlsplit(config.endpoint if "://" in config.endpoint else f"//{config.endpoint}")
        insecure = config.insecure if config.insecure is not None else parts.scheme == "http"
        credentials = None
        if not insecure:
            credentials = grpc.ssl_channel_credentials(
                _read(config.certificate), _read(config.client_key), _read(config.client_certificate))
        return _GRPC[signal](
            endpoint=parts.netloc, insecure=insecure, credentials=credentials, headers=headers, timeout=timeout,
            compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression)
    url = config.endpoint if "://" in config.endpoint else f"https://{config.endpoint}"
    if config.insecure and url.startswith("https://"):
        url = "http://" + url.removeprefix("https://")
    # As otelconf: a URL without a path gets the signal's default one.
    if urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + f"/v1/{signal}"
    return _HTTP[signal](
        endpoint=url, certificate_file=config.certificate or None, client_key_file=config.client_key or None,
        client_certificate_file=config.client_certificate or None, headers=headers, timeout=timeout,
        compression=Compression.Gzip if gzip else Compression.NoCompression)
