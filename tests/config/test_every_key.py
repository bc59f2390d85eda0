"""Every key the gateway accepts does what it says, or is refused (issue #12, item 7).

The product rule: "A key we accept must do what it says. A Collector key we do not support is refused
by `validate` with its path, never silently ignored."

`inventory()` lists every config key of every component type in `gateway.registry.REGISTRY` and of
`service`, computed from the config dataclasses (recursing through nested blocks): one entry per
field, named by the class that declares it, so a key shared through inheritance (the exporter
helper's `timeout`, the TLS blocks) is one entry. `EVIDENCE` says, for each, why it is there:

- `Proven(test, ...)`: tests that set the key to something other than its default and observe the
  difference. Each must exist and its source must name the key (or the `key=` given, when the test
  spells it differently), so a renamed or deleted test, or one pointed at the wrong key, fails here.
  A test that only checks the value was parsed does not count.
- `Refused()`: the field is declared with `unsupported(reason)`; the decoder refuses a config that
  sets it (`test_the_decoder_refuses_an_unsupported_key` shows that once for all of them).
- `Todo(reason)`: not settled; fails, so it cannot be forgotten.

A key added to a config class without an entry here fails `test_every_key_has_evidence`.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import textwrap
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway import registry
from gateway.config.decode import Errors, decode
from gateway.config.model import ServiceConfig
from pipelines.config_types import unsupported, unsupported_reason


class Proven:
    """Tests (`path/test_file.py::test_name`) showing the key changing behaviour."""

    def __init__(self, *tests: str, key: str | None = None) -> None:
        assert tests, "name at least one test"
        self.tests = tests
        self.key = key

    def __repr__(self) -> str:
        return f"Proven({', '.join(self.tests)})"


class Refused:
    """Declared with `unsupported(reason)`: a config that sets the key is refused with its path."""

    def __repr__(self) -> str:
        return "Refused()"


class Todo:
    """Not settled yet: who or what it waits for."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Todo({self.reason!r})"


Evidence = Proven | Refused | Todo

# ---------------------------------------------------------------- the inventory, from the code


@dataclass(frozen=True)
class Key:
    field: dataclasses.Field[Any]
    path: str  # one config path where the key is written, for messages


def declaring_class(cls: type, name: str) -> type:
    """The class of `cls`'s MRO whose own annotations declare field `name`."""
    for klass in cls.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return klass
    raise LookupError(f"{cls.__qualname__}.{name} is declared nowhere in its MRO")


def _blocks(tp: Any, suffix: str = "") -> Iterator[tuple[type, str]]:
    """The config dataclasses a field's type holds (in `X | None`, `tuple[X, ...]`, `dict[str, X]`,
    `Annotated[X, ...]`), with the path suffix that leads into each."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        yield tp, suffix
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        yield from _blocks(args[0], suffix)
    elif origin in (tuple, list):
        yield from _blocks(args[0], suffix + "[0]")
    elif origin is dict:
        yield from _blocks(args[1], suffix + "::<id>")
    else:
        for arg in args:
            yield from _blocks(arg, suffix)


def _walk(cls: type, path: str, out: dict[str, Key], seen: frozenset[type]) -> None:
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        owner = declaring_class(cls, f.name)
        out.setdefault(f"{owner.__module__}.{owner.__qualname__}.{f.name}", Key(f, f"{path}::{f.name}"))
        for block, suffix in _blocks(hints[f.name]):
            if block not in seen:
                _walk(block, f"{path}::{f.name}{suffix}", out, seen | {block})


def inventory() -> dict[str, Key]:
    """Every key of every registered component type and of `service`, by declaring class."""
    out: dict[str, Key] = {}
    for kind, types in registry.REGISTRY.items():
        for type_name in types:
            factory = registry.lookup(kind, type_name)
            assert factory is not None
            _walk(factory.config, f"{kind}::{type_name}", out, frozenset({factory.config}))
    _walk(ServiceConfig, "service", out, frozenset({ServiceConfig}))
    return out


# ---------------------------------------------------------------- the evidence, key by key

# Where the tests are.
GRAPH = "tests/test_graph.py::"
WORKERS = "tests/test_workers.py::"
ADMIN = "tests/test_admin.py::"
ADMIN_WORKERS = "tests/test_admin_workers.py::"
ADMIN_AUTH = "tests/test_admin_auth.py::"
TELEMETRY = "tests/test_service_telemetry.py::"
OWN = "tests/test_own_telemetry.py::"
OWN_ARRIVE = OWN + "test_own_spans_and_metrics_arrive_at_a_backend_with_resource_headers_and_link"
OWN_TLS = OWN + "test_certificate_client_key_and_client_certificate_send_own_spans_over_tls"
OWN_BATCH = OWN + "test_batch_processor_keys_shape_the_sdks_batch_span_processor"
OWN_SAMPLER = OWN + "test_sampler_decides_which_receiver_spans_are_kept"
OWN_LOG_SAMPLING = OWN + "test_logs_sampling_keeps_initial_then_every_thereafter_per_message_and_tick"
E2E = "tests/e2e/test_processors_e2e.py::"
BAD_INPUT = "tests/e2e/test_bad_input.py::"
E2E_TLS = "tests/e2e/test_tls.py::"
PERSISTENCE = "tests/delivery/test_persistence.py::"
RELOAD = "tests/delivery/test_reload.py::"
FAULTS = "tests/delivery/test_faults.py::"
NO_SECRETS = "tests/delivery/test_no_secrets_on_disk.py::"
DELIVERY = "tests/delivery/test_units.py::"
RECEIVER = "tests/receivers/test_otlp_keys.py::"
OTLP = "tests/exporters/test_otlp_grpc.py::"
OTLPHTTP = "tests/exporters/test_otlp_http.py::"
HELPER = "tests/exporters/test_exporter_helper.py::"
CLIENT_TLS = "tests/exporters/test_exporter_tls.py::"
DESTINATIONS = "tests/exporters/test_destinations.py::"
DEBUG = "tests/exporters/test_debug.py::"
LIMITS = "tests/transport/test_h2_limits.py::"
CORS = "tests/receivers/test_cors.py::"
HEALTH_BODY = "tests/extensions/test_health.py::"
ZPAGES = "tests/extensions/test_zpages.py::"
PPROF = "tests/extensions/test_pprof.py::"
REGEXP = "tests/processors/test_regexp_cache.py::"
BATCH_LIMIT = "tests/processors/test_batch_metadata_limit.py::"
CHANNEL = "tests/transport/test_grpc_channel.py::"
TLS = "tests/transport/test_tls.py::"
GRPC_TRANSPORT = "tests/receivers/test_grpc_transport.py::"
CONNECTION_AGE = "tests/e2e/test_connection_age.py::"
DECODES = LIMITS + "test_keepalive_keys_decode_to_limits"
GRPC_CLIENT = "tests/transport/test_grpc_client.py::"
BATCH = "tests/processors/test_batch_processor.py::"
HTTP_ATTACKS = "tests/receivers/test_http_attacks.py::"
HTTP_GUARD = "tests/transport/test_http_guard.py::"
LIMITER = "tests/processors/test_memory_limiter.py::"
ATTRIBUTES = "tests/processors/test_attributes.py::"
SAMPLER = "tests/processors/test_probabilistic_sampler.py::"
ROUTING = "tests/connectors/test_routing_pure.py::"
OTTL = "tests/processors/test_transform_filter.py::"
AUTH = "tests/auth/test_bearertokenauth.py::"
CLIENT_AUTH = ("tests/auth/test_client_auth_e2e.py::"
               "test_exporter_auth_bearertokenauth_basicauth_and_headers_setter_reach_the_backends")
HEADERS_SETTER = "tests/auth/test_headers_setter.py::"
BASICAUTH = "tests/auth/test_basicauth.py::"
OIDC = "tests/auth/test_oidc.py::"
OAUTH2 = "tests/auth/test_oauth2client.py::"
OAUTH2_E2E = OAUTH2 + "test_one_token_shared_by_every_call_and_refreshed_after_a_401"
STORAGE = "tests/extensions/test_file_storage_keys.py::"
HEALTH = "tests/extensions/test_health_keys.py::"
HC2 = "tests/extensions/test_healthcheckv2.py::"
HC2_DOWN = HC2 + "test_a_backend_down_then_back_turns_the_exporter_and_its_pipeline_recoverable_then_ok"
HC2_PERMANENT = HC2 + "test_a_permanent_refusal_is_a_permanent_error_and_use_v2_false_answers_as_health_check"
HC2_KEYS = HC2 + "test_use_v2_decides_which_keys_apply"
HC2_PATHS = HC2 + "test_config_path_is_where_the_config_is_served_and_status_can_be_switched_off"
ZIPKIN = "tests/receivers/test_zipkin.py::"
JAEGER = "tests/receivers/test_jaeger.py::"
JAEGER_PROTOCOLS = JAEGER + "test_protocols_grpc_thrift_http_thrift_compact_thrift_binary_each_listen_on_their_endpoint"
TAIL = "tests/processors/test_tail_sampling.py::"
TAIL_DIFF = "tests/interop/test_tail_sampling_side_by_side.py::test_same_traces_kept_as_the_collector"
TAIL_DELIVERY = "tests/delivery/test_tail_sampling_delivery.py::"
LB = "tests/exporters/test_loadbalancing.py::"
LB_TRACEID = LB + "test_routing_key_traceid_sends_each_trace_to_one_endpoint_and_every_endpoint_gets_some"
LB_DNS = LB + "test_dns_resolver_follows_the_addresses_of_a_name"



def under(prefix: str, entries: dict[str, Evidence]) -> dict[str, Evidence]:
    return {prefix + name: evidence for name, evidence in entries.items()}


EVIDENCE: dict[str, Evidence] = {
    # service
    **under("gateway.config.model.", {
        "ServiceConfig.pipelines": Proven(GRAPH + "test_connected_pipelines_as_nodes_and_edges"),
        "PipelineConfig.receivers": Proven(GRAPH + "test_connected_pipelines_as_nodes_and_edges"),
        "PipelineConfig.processors": Proven(E2E + "test_hatchet_payload_deleted_or_hashed"),
        "PipelineConfig.exporters": Proven(E2E + "test_hatchet_payload_deleted_or_hashed"),
        "ServiceConfig.extensions": Proven(E2E + "test_authenticator_must_be_configured_and_enabled"),
        "ServiceConfig.workers": Proven(WORKERS + "test_spans_over_many_connections_arrive_once_and_metrics_add_up"),
        "ServiceConfig.shutdown_timeout":
            Proven(PERSISTENCE + "test_sigterm_with_backend_down_counts_what_the_memory_queue_drops"),
        "ServiceConfig.admin": Proven(ADMIN + "test_graph_stats_and_drop_reasons"),
        "AdminConfig.endpoint": Proven(ADMIN + "test_admin_off_with_enabled_false"),
        "AdminConfig.enabled": Proven(ADMIN + "test_admin_off_with_enabled_false"),
        "AdminConfig.auth": Proven(ADMIN_WORKERS + "test_bearer_token_guards_every_route_and_top_sends_it"),
        "AdminConfig.tls": Proven(ADMIN_AUTH + "test_beyond_loopback_the_supervisor_serves_tls",
                                  ADMIN_AUTH + "test_one_process_serves_tls"),
        # Shared by the receivers' `auth` blocks and the admin endpoint's.
        "AuthConfig.authenticator": Proven(E2E + "test_auth_two_tenants_reach_the_backend_with_their_org_id",
                                           ADMIN_WORKERS + "test_bearer_token_guards_every_route_and_top_sends_it"),
        "ServiceConfig.reload": Proven(RELOAD + "test_a_changed_config_file_is_reloaded_when_watched"),
        "ReloadConfig.watch": Proven(RELOAD + "test_a_changed_config_file_is_reloaded_when_watched"),
        "ReloadConfig.watch_interval": Proven(RELOAD + "test_a_changed_config_file_is_reloaded_when_watched"),
        "ServiceConfig.telemetry": Proven(TELEMETRY + "test_metrics_address_is_where_metrics_are_served"),
    }),
    **under("gateway.config.telemetry.", {
        "TelemetryConfig.metrics": Proven(TELEMETRY + "test_metrics_address_is_where_metrics_are_served"),
        "MetricsTelemetry.address": Proven(TELEMETRY + "test_metrics_address_is_where_metrics_are_served"),
        "MetricsTelemetry.level":
            Proven(TELEMETRY + "test_metrics_level_none_serves_no_metrics",
                   TELEMETRY + "test_metrics_level_basic_normal_detailed_show_the_collectors_metrics_of_each_level"),
        "MetricsTelemetry.readers":
            Proven(TELEMETRY + "test_metrics_readers_prometheus_pull_is_where_metrics_are_served", OWN_ARRIVE),
        "MetricsTelemetry.views": Refused(),
        "Reader.pull": Proven(TELEMETRY + "test_metrics_readers_prometheus_pull_is_where_metrics_are_served"),
        "PullReader.exporter": Proven(TELEMETRY + "test_metrics_readers_prometheus_pull_is_where_metrics_are_served"),
        "PullExporter.prometheus":
            Proven(TELEMETRY + "test_metrics_readers_prometheus_pull_is_where_metrics_are_served"),
        "Prometheus.host": Proven(TELEMETRY + "test_metrics_readers_prometheus_pull_is_where_metrics_are_served"),
        "Prometheus.port": Proven(TELEMETRY + "test_metrics_readers_prometheus_pull_is_where_metrics_are_served"),
        "Prometheus.without_units": Refused(),
        "Prometheus.without_type_suffix": Refused(),
        "Prometheus.without_scope_info": Refused(),
        "Reader.periodic": Proven(OWN_ARRIVE),
        "PeriodicReader.exporter": Proven(OWN_ARRIVE),
        "PeriodicReader.interval": Proven(OWN_ARRIVE),
        "PeriodicReader.timeout": Proven(OWN_ARRIVE),
        "PushExporter.otlp": Proven(OWN_ARRIVE),
        "PushExporter.console": Refused(),
        "OtlpExporter.endpoint": Proven(OWN_ARRIVE, OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "OtlpExporter.protocol": Proven(OWN_ARRIVE, OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "OtlpExporter.headers": Proven(OWN_ARRIVE, OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "Header.name": Proven(OWN_ARRIVE),
        "Header.value": Proven(OWN_ARRIVE),
        "OtlpExporter.headers_list": Proven(OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "OtlpExporter.insecure": Proven(OWN_ARRIVE, OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "OtlpExporter.compression": Proven(OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "OtlpExporter.timeout": Proven(OWN + "test_otlp_exporter_keys_reach_the_sdks_exporter"),
        "OtlpExporter.certificate": Proven(OWN_TLS),
        "OtlpExporter.client_key": Proven(OWN_TLS),
        "OtlpExporter.client_certificate": Proven(OWN_TLS),
        "OtlpExporter.temporality_preference": Refused(),
        "OtlpExporter.default_histogram_aggregation": Refused(),
        "TelemetryConfig.resource": Proven(OWN_ARRIVE),
        "TelemetryConfig.traces": Proven(OWN_ARRIVE),
        "TracesTelemetry.level": Proven(OWN + "test_traces_level_none_or_no_processors_makes_no_tracer"),
        "TracesTelemetry.processors":
            Proven(OWN_ARRIVE, OWN + "test_traces_level_none_or_no_processors_makes_no_tracer"),
        "TracesTelemetry.propagators": Refused(),
        "Processor.batch": Proven(OWN_ARRIVE),
        "Processor.simple": Proven(OWN_TLS),
        "SimpleProcessor.exporter": Proven(OWN_TLS),
        "BatchProcessor.exporter": Proven(OWN_ARRIVE),
        "BatchProcessor.schedule_delay": Proven(OWN_BATCH),
        "BatchProcessor.export_timeout": Proven(OWN_BATCH),
        "BatchProcessor.max_queue_size": Proven(OWN_BATCH),
        "BatchProcessor.max_export_batch_size": Proven(OWN_BATCH),
        "TracesTelemetry.sampler": Proven(OWN_SAMPLER),
        "Sampler.always_on": Proven(OWN_SAMPLER),
        "Sampler.always_off": Proven(OWN_SAMPLER),
        "Sampler.trace_id_ratio_based": Proven(OWN_SAMPLER),
        "Sampler.parent_based": Proven(OWN_SAMPLER),
        "ParentBased.root": Proven(OWN_SAMPLER),
        "Ratio.ratio": Proven(OWN_SAMPLER),
        "TelemetryConfig.logs": Proven(TELEMETRY + "test_logs_level_filters_the_gateways_log"),
        "LogsTelemetry.level": Proven(TELEMETRY + "test_logs_level_filters_the_gateways_log"),
        "LogsTelemetry.encoding":
            Proven(TELEMETRY + "test_logs_encoding_json_writes_each_line_as_one_json_object",
                   TELEMETRY + "test_logs_encoding_console_is_the_default_layout"),
        "LogsTelemetry.processors": Proven(OWN + "test_logs_processors_send_the_gateways_log_records_over_otlp"),
        "LogsTelemetry.development": Proven(OWN + "test_logs_development_gives_warnings_a_stacktrace"),
        "LogsTelemetry.sampling": Proven(OWN_LOG_SAMPLING),
        "LogSampling.enabled": Proven(OWN_LOG_SAMPLING),
        "LogSampling.tick": Proven(OWN_LOG_SAMPLING),
        "LogSampling.initial": Proven(OWN_LOG_SAMPLING),
        "LogSampling.thereafter": Proven(OWN_LOG_SAMPLING),
        "LogsTelemetry.disable_caller": Refused(),
        "LogsTelemetry.disable_stacktrace": Refused(),
        "LogsTelemetry.output_paths": Refused(),
        "LogsTelemetry.error_output_paths": Refused(),
        "LogsTelemetry.initial_fields": Refused(),
    }),

    # receivers: otlp
    **under("gateway.receivers.otlp_config.", {
        "Config.protocols": Proven(RECEIVER + "test_protocols_grpc_and_http_each_listen_on_their_endpoint"),
        "Protocols.grpc": Proven(RECEIVER + "test_protocols_grpc_and_http_each_listen_on_their_endpoint"),
        "Protocols.http": Proven(RECEIVER + "test_protocols_grpc_and_http_each_listen_on_their_endpoint"),
        "GrpcConfig.endpoint": Proven(RECEIVER + "test_protocols_grpc_and_http_each_listen_on_their_endpoint"),
        "GrpcConfig.transport": Proven(GRPC_TRANSPORT + "test_tcp4_and_tcp6_listen_only_on_their_family",
                                       GRPC_TRANSPORT + "test_tcp_listens_on_either_family"),
        "GrpcConfig.max_recv_msg_size_mib":
            Proven(BAD_INPUT + "test_grpc_over_max_recv_msg_size_is_resource_exhausted"),
        "GrpcConfig.max_concurrent_streams": Proven(LIMITS + "test_max_concurrent_streams_0_means_100_never_unlimited",
                                                    LIMITS + "test_extra_stream_is_refused"),
        "GrpcConfig.read_buffer_size":
            Proven(DECODES, LIMITS + "test_read_buffer_size_is_what_one_read_asks_the_socket_for",
                   key="read_size"),
        "GrpcConfig.write_buffer_size": Proven(DECODES, LIMITS + "test_write_buffer_size_is_the_write_high_water_mark",
                                               key="write_high_water"),
        "GrpcConfig.keepalive":
            Proven(DECODES,
                   CONNECTION_AGE + "test_sdk_reconnects_after_max_connection_age_and_loses_nothing"),
        "GrpcConfig.max_connections": Proven(LIMITS + "test_max_connections_closes_the_extra_connection_at_once"),
        "GrpcConfig.connection_timeout":
            Proven(LIMITS + "test_preface_never_finished_is_closed_after_connection_timeout",
                   LIMITS + "test_header_block_never_finished_is_closed_after_connection_timeout"),
        "KeepaliveConfig.server_parameters":
            Proven(DECODES, LIMITS + "test_max_connection_idle_sends_goaway_and_closes",
                   key="max_connection_idle"),
        "KeepaliveConfig.enforcement_policy":
            Proven(DECODES, LIMITS + "test_pings_too_often_are_enhance_your_calm_too_many_pings",
                   key="min_ping_interval"),
        "KeepaliveServerParameters.max_connection_idle":
            Proven(DECODES, LIMITS + "test_max_connection_idle_sends_goaway_and_closes"),
        "KeepaliveServerParameters.max_connection_age":
            Proven(DECODES, LIMITS + "test_max_connection_age_two_step_goaway_then_grace",
                   CONNECTION_AGE + "test_sdk_reconnects_after_max_connection_age_and_loses_nothing"),
        "KeepaliveServerParameters.max_connection_age_grace":
            Proven(DECODES, LIMITS + "test_max_connection_age_two_step_goaway_then_grace"),
        "KeepaliveServerParameters.time": Proven(DECODES, LIMITS + "test_keepalive_ping_then_close_when_unanswered",
                                                 key="keepalive_time"),
        "KeepaliveServerParameters.timeout": Proven(DECODES, LIMITS + "test_keepalive_ping_then_close_when_unanswered",
                                                    key="keepalive_timeout"),
        "KeepaliveEnforcementPolicy.min_time":
            Proven(DECODES,
                   LIMITS + "test_pings_too_often_are_enhance_your_calm_too_many_pings",
                   key="min_ping_interval"),
        "KeepaliveEnforcementPolicy.permit_without_stream":
            Proven(DECODES, LIMITS + "test_permit_without_stream_decides_whether_pings_with_no_stream_are_strikes"),
        "GrpcConfig.include_metadata":
            Proven(E2E + "test_request_headers_reach_from_context_only_with_include_metadata"),
        "GrpcConfig.tls": Proven(E2E_TLS + "test_tls_receiver_and_exporters"),
        "GrpcConfig.auth": Proven(E2E + "test_auth_two_tenants_reach_the_backend_with_their_org_id"),
        "HttpConfig.endpoint": Proven(RECEIVER + "test_protocols_grpc_and_http_each_listen_on_their_endpoint"),
        "HttpConfig.traces_url_path": Proven(RECEIVER + "test_url_paths_move_each_signal"),
        "HttpConfig.metrics_url_path": Proven(RECEIVER + "test_url_paths_move_each_signal"),
        "HttpConfig.logs_url_path": Proven(RECEIVER + "test_url_paths_move_each_signal"),
        "HttpConfig.max_request_body_size": Proven(BAD_INPUT + "test_http_body_over_the_limit_is_413"),
        "HttpConfig.include_metadata": Proven(RECEIVER + "test_http_include_metadata_keeps_the_request_headers"),
        "HttpConfig.tls": Proven(RECEIVER + "test_server_cert_pem_and_key_pem_serve_tls_from_inline_pem"),
        "HttpConfig.auth": Proven(E2E + "test_auth_two_tenants_reach_the_backend_with_their_org_id"),
        "HttpConfig.cors":
            Proven(CORS + "test_a_running_receiver_answers_preflight_and_export_with_cors_headers",
                   CORS + "test_without_cors_there_are_no_cors_headers_and_no_preflight"),
        "HttpConfig.response_headers": Proven(RECEIVER + "test_response_headers_are_added_to_every_answer"),
        "HttpConfig.read_timeout": Proven(HTTP_ATTACKS + "test_slow_body"),
        "HttpConfig.read_header_timeout": Proven(HTTP_ATTACKS + "test_slowloris_headers"),
        "HttpConfig.write_timeout":
            Proven(HTTP_GUARD + "test_write_timeout_ends_the_connection_when_the_answer_is_late",
                   HTTP_GUARD + "test_write_timeout_0_waits_for_the_answer"),
        "HttpConfig.idle_timeout": Proven(HTTP_ATTACKS + "test_idle_keep_alive_connections"),
        "HttpConfig.max_connections": Proven(HTTP_ATTACKS + "test_connection_flood"),
        "HttpConfig.include_tls_metadata": Refused(),
        "HttpConfig.compression_algorithms": Refused(),
        "HttpConfig.middlewares": Refused(),
        "CorsConfig.allowed_origins":
            Proven(CORS + "test_allowed_origins",
                   CORS + "test_a_running_receiver_answers_preflight_and_export_with_cors_headers"),
        "CorsConfig.allowed_headers": Proven(CORS + "test_preflight_headers_follow_the_config"),
        "CorsConfig.max_age":
            Proven(CORS + "test_preflight_headers_follow_the_config",
                   CORS + "test_a_running_receiver_answers_preflight_and_export_with_cors_headers"),
    }),

    # receivers: zipkin
    **under("gateway.receivers.zipkin.", {
        "Config.endpoint": Proven(ZIPKIN + "test_endpoint_and_parse_string_tags"),
        "Config.parse_string_tags": Proven(ZIPKIN + "test_endpoint_and_parse_string_tags"),
        "Config.tls": Proven(ZIPKIN + "test_tls_serves_https"),
        "Config.max_request_body_size":
            Proven(ZIPKIN + "test_max_request_body_size_refuses_a_larger_body_with_400_and_counts_it"),
        **{f"Config.{key}": Refused() for key in (
            "transport", "include_metadata", "auth", "cors", "response_headers", "compression_algorithms",
            "middlewares", "include_tls_metadata", "keep_alives_enabled", "read_timeout", "read_header_timeout",
            "write_timeout", "idle_timeout")},
    }),

    # receivers: jaeger (the grpc and thrift_http blocks' other keys are the otlp receiver's, on its servers)
    **under("gateway.receivers.jaeger.", {
        **{key: Proven(JAEGER_PROTOCOLS) for key in (
            "Config.protocols", "Protocols.grpc", "Protocols.thrift_http", "Protocols.thrift_compact",
            "Protocols.thrift_binary", "JaegerGrpcConfig.endpoint", "ThriftHttpConfig.endpoint",
            "CompactConfig.endpoint", "BinaryConfig.endpoint")},
        "Config.remote_sampling": Refused(),
        **{f"ThriftHttpConfig.{key}": Refused() for key in ("traces_url_path", "metrics_url_path", "logs_url_path")},
    }),
    **under("gateway.receivers.jaeger_udp.UdpConfig.", {
        "queue_size": Proven(JAEGER + "test_queue_size_and_workers_drop_what_the_queue_cannot_hold"),
        "workers": Proven(JAEGER + "test_queue_size_and_workers_drop_what_the_queue_cannot_hold"),
        "max_packet_size": Proven(JAEGER + "test_max_packet_size_cuts_a_longer_packet_which_then_fails_to_decode"),
        "socket_buffer_size": Proven(JAEGER + "test_socket_buffer_size_sets_the_receive_buffer"),
    }),

    # TLS: what servers (receiver protocols, health_check) and clients (every OTLP exporter) share
    **under("gateway.transport.tls.", {
        "_TLSCommon.cert_file": Proven(HEALTH + "test_tls_serves_the_health_check_over_https",
                                       CLIENT_TLS + "test_http_cert_file_and_key_file_answer_a_client_ca_file"),
        "_TLSCommon.key_file": Proven(HEALTH + "test_tls_serves_the_health_check_over_https",
                                      CLIENT_TLS + "test_http_cert_file_and_key_file_answer_a_client_ca_file"),
        "_TLSCommon.cert_pem": Proven(RECEIVER + "test_server_cert_pem_and_key_pem_serve_tls_from_inline_pem",
                                      CLIENT_TLS + "test_grpc_cert_file_and_cert_pem_answer_a_client_ca_file"),
        "_TLSCommon.key_pem": Proven(RECEIVER + "test_server_cert_pem_and_key_pem_serve_tls_from_inline_pem"),
        "_TLSCommon.ca_file":
            Proven(OTLP + "test_tls_with_ca_file", OTLPHTTP + "test_tls_with_ca_file",
                   TLS + "test_ca_file_is_refused_on_a_server_and_trusted_by_a_client"),
        "_TLSCommon.ca_pem":
            Proven(CLIENT_TLS + "test_ca_pem_is_the_ca_given_inline",
                   TLS + "test_ca_file_is_refused_on_a_server_and_trusted_by_a_client"),
        "_TLSCommon.include_system_ca_certs_pool":
            Proven(TLS + "test_ca_file_replaces_the_system_roots_in_both_exporters",
                   TLS + "test_ca_file_is_refused_on_a_server_and_trusted_by_a_client"),
        "_TLSCommon.min_version": Proven(RECEIVER + "test_server_min_version_and_max_version_bound_the_tls_version",
                                         CLIENT_TLS + "test_min_version_and_max_version_bound_the_tls_version"),
        "_TLSCommon.max_version": Proven(RECEIVER + "test_server_min_version_and_max_version_bound_the_tls_version",
                                         CLIENT_TLS + "test_min_version_and_max_version_bound_the_tls_version"),
        "_TLSCommon.cipher_suites": Proven(TLS + "test_cipher_suites_by_go_names"),
        "_TLSCommon.reload_interval":
            Proven(TLS + "test_rotated_server_certificate_is_served_without_a_restart",
                   TLS + "test_a_clients_reload_interval_is_refused_and_a_servers_accepted"),
        "TLSServerConfig.client_ca_file":
            Proven(CLIENT_TLS + "test_grpc_cert_file_and_cert_pem_answer_a_client_ca_file"),
        "TLSClientConfig.insecure": Proven(CLIENT_TLS + "test_insecure_sends_plaintext_where_tls_is_the_default"),
        "TLSClientConfig.insecure_skip_verify": Proven(OTLPHTTP + "test_insecure_skip_verify",
                                                       GRPC_CLIENT + "test_tls_and_mutual_tls"),
        "TLSClientConfig.server_name_override":
            Proven(CLIENT_TLS + "test_server_name_override_is_the_name_the_certificate_must_carry"),
    }),

    # exporters: what otlp and otlphttp share (and the destinations)
    **under("gateway.exporters.", {
        "otlp_common.OtlpCommon.endpoint": Proven(OTLPHTTP + "test_endpoint_gets_v1_traces_gzip_by_default"),
        "otlp_common.OtlpCommon.headers": Proven(OTLP + "test_headers_and_tenant_header_reach_the_backend"),
        "otlp_common.OtlpCommon.compression": Proven(OTLP + "test_gzip_is_the_default_compression",
                                                     OTLPHTTP + "test_zstd_compression"),
        "otlp_common.OtlpCommon.tls": Proven(OTLP + "test_tls_with_ca_file"),
        "otlp_common.OtlpCommon.tenant_header": Proven(OTLP + "test_headers_and_tenant_header_reach_the_backend"),
        "otlp_common.OtlpCommon.auth": Proven(CLIENT_AUTH),
        "otlp_common.ClientAuthConfig.authenticator": Proven(CLIENT_AUTH),
        "helper.ExporterCommon.timeout": Proven(OTLP + "test_timeout_bounds_a_slow_backend"),
        "helper.ExporterCommon.sending_queue":
            Proven(HELPER + "test_sending_queue_enabled_false_sends_before_answering_and_hands_back_the_refusal"),
        "helper.ExporterCommon.retry_on_failure": Proven(HELPER + "test_retry_on_failure_enabled_false_sends_once"),
        "helper.QueueConfig.enabled":
            Proven(HELPER + "test_sending_queue_enabled_false_sends_before_answering_and_hands_back_the_refusal"),
        "helper.QueueConfig.num_consumers": Proven(HELPER + "test_num_consumers_is_how_many_sends_run_at_once"),
        "helper.QueueConfig.queue_size": Proven(FAULTS + "test_full_queue_refuses_with_retryable_answer"),
        "helper.QueueConfig.sizer": Proven(HELPER + "test_sizer_counts_queue_size_in_requests_or_items"),
        "helper.QueueConfig.storage": Proven(NO_SECRETS + "test_queue_files_hold_no_request_headers"),
        "helper.QueueConfig.persist_metadata_keys": Proven(
            "tests/config/test_kept_metadata.py::test_any_other_header_needs_persist_metadata_keys",
            NO_SECRETS + "test_queue_files_hold_no_request_headers"),
        "helper.QueueConfig.blocking": Proven(HELPER + "test_blocking_waits_for_room_instead_of_refusing"),
        "helper.QueueConfig.wait_for_result":
            Proven(HELPER + "test_wait_for_result_answers_once_the_backend_took_the_request"),
        "retry.RetryConfig.enabled": Proven(HELPER + "test_retry_on_failure_enabled_false_sends_once"),
        "retry.RetryConfig.initial_interval":
            Proven(HELPER + "test_initial_interval_multiplier_and_max_interval_shape_the_backoff"),
        "retry.RetryConfig.multiplier":
            Proven(HELPER + "test_initial_interval_multiplier_and_max_interval_shape_the_backoff"),
        "retry.RetryConfig.max_interval":
            Proven(HELPER + "test_initial_interval_multiplier_and_max_interval_shape_the_backoff"),
        "retry.RetryConfig.randomization_factor":
            Proven(HELPER + "test_randomization_factor_spreads_each_wait_around_the_interval"),
        "retry.RetryConfig.max_elapsed_time":
            Proven(DELIVERY + "test_max_elapsed_time_gives_up_and_stop_interrupts_the_sleep"),
    }),

    # exporters: otlp (gRPC connections)
    **under("gateway.exporters.otlp_grpc.", {
        "GrpcKeys.balancer_name":
            Proven(CHANNEL + "test_the_otlp_exporters_balancer_name_spreads_or_sticks"),
        "GrpcKeys.keepalive": Proven(CHANNEL + "test_keepalive_finds_a_black_holed_connection_and_nothing_is_lost"),
        "KeepaliveConfig.time": Proven(CHANNEL + "test_keepalive_finds_a_black_holed_connection_and_nothing_is_lost",
                                       key="ka_time"),
        "KeepaliveConfig.timeout": Proven(CHANNEL + "test_keepalive_finds_a_black_holed_connection_and_nothing_is_lost",
                                          key="ka_timeout"),
        "KeepaliveConfig.permit_without_stream":
            Proven(CHANNEL + "test_permit_without_stream_pings_an_idle_connection_or_waits_for_a_call"),
    }),

    # exporters: otlphttp
    **under("gateway.exporters.", {
        "otlp_http.Config.timeout": Proven(OTLPHTTP + "test_timeout_bounds_a_slow_backend"),
        "otlp_http.Config.traces_endpoint": Proven(OTLPHTTP + "test_traces_endpoint_is_used_as_is"),
        "otlp_http.Config.metrics_endpoint":
            Proven(OTLPHTTP + "test_metrics_endpoint_and_logs_endpoint_are_used_as_is"),
        "otlp_http.Config.logs_endpoint": Proven(OTLPHTTP + "test_metrics_endpoint_and_logs_endpoint_are_used_as_is"),
        "otlp_http.Config.encoding": Proven(OTLPHTTP + "test_encoding_json_sends_otlp_json"),
    }),

    # exporters: honeycomb, tempo, jaeger
    **under("gateway.exporters.", {
        "destination.DestinationConfig.protocol":
            Proven(DESTINATIONS + "test_tempo_sends_fixed_tenant_or_the_batch_tenant"),
        "destination.DestinationConfig.traces_endpoint":
            Proven(DESTINATIONS + "test_protocol_http_keys_signal_endpoints_and_json_encoding"),
        "destination.DestinationConfig.metrics_endpoint":
            Proven(DESTINATIONS + "test_protocol_http_keys_signal_endpoints_and_json_encoding"),
        "destination.DestinationConfig.logs_endpoint":
            Proven(DESTINATIONS + "test_protocol_http_keys_signal_endpoints_and_json_encoding"),
        "destination.DestinationConfig.encoding":
            Proven(DESTINATIONS + "test_protocol_http_keys_signal_endpoints_and_json_encoding"),
        "honeycomb.Config.api_key": Proven(DESTINATIONS + "test_honeycomb_and_jaeger_send_their_headers"),
        "honeycomb.Config.dataset": Proven(DESTINATIONS + "test_honeycomb_and_jaeger_send_their_headers"),
        "honeycomb.Config.region": Proven(DESTINATIONS + "test_honeycomb_endpoints_by_region_and_protocol"),
        "tempo.Config.tenant": Proven(DESTINATIONS + "test_tempo_sends_fixed_tenant_or_the_batch_tenant"),
        "tempo.Config.tenant_header":
            Proven(DESTINATIONS + "test_tempo_tenant_header_names_where_the_batch_tenant_goes"),
    }),

    # exporters: loadbalancing
    **under("gateway.exporters.", {
        "loadbalancing.Config.protocol": Proven(LB_TRACEID),
        "loadbalancing.ProtocolConfig.otlp": Proven(LB_TRACEID),
        "loadbalancing.Config.resolver": Proven(LB_TRACEID, LB_DNS),
        "loadbalancing.Config.routing_key":
            Proven(LB_TRACEID, LB + "test_routing_key_attributes_groups_by_the_routing_attributes"),
        "loadbalancing.Config.routing_attributes":
            Proven(LB + "test_routing_key_attributes_groups_by_the_routing_attributes"),
        "loadbalancing.Config.retry_on_failure":
            Proven(LB + "test_retry_on_failure_at_the_top_sends_again_what_no_endpoint_took"),
        "loadbalancing.Config.timeout": Refused(),
        "lb_resolvers.ResolverConfig.static": Proven(LB_TRACEID),
        "lb_resolvers.StaticConfig.hostnames": Proven(LB_TRACEID),
        "lb_resolvers.ResolverConfig.dns": Proven(LB_DNS),
        "lb_resolvers.DnsConfig.hostname": Proven(LB_DNS),
        "lb_resolvers.DnsConfig.port": Proven(LB_DNS),
        "lb_resolvers.DnsConfig.interval": Proven(LB_DNS),
        "lb_resolvers.DnsConfig.server": Proven(LB_DNS, LB + "test_dns_timeout_bounds_each_resolution"),
        "lb_resolvers.DnsConfig.timeout": Proven(LB + "test_dns_timeout_bounds_each_resolution"),
        "lb_resolvers.ResolverConfig.k8s": Refused(),
        "lb_resolvers.ResolverConfig.aws_cloud_map": Refused(),
    }),

    # exporters: debug (logging)
    **under("gateway.exporters.", {
        "debug.Config.verbosity": Proven(DEBUG + "test_verbosity_and_the_old_loglevel_choose_what_the_pusher_writes"),
        "debug.Config.loglevel": Proven(DEBUG + "test_verbosity_and_the_old_loglevel_choose_what_the_pusher_writes"),
        "debug.Config.sampling_initial": Proven(DEBUG + "test_sampling_initial_and_thereafter_follow_zaps_sampler"),
        "debug.Config.sampling_thereafter": Proven(DEBUG + "test_sampling_initial_and_thereafter_follow_zaps_sampler"),
        "debug.Config.use_internal_logger":
            Proven(DEBUG + "test_use_internal_logger_writes_through_the_gateway_log_not_stdout"),
    }),

    # processors: batch
    **under("pipelines.processors.", {
        "batch.Config.send_batch_size": Proven(BATCH + "test_send_batch_size_sends_once_that_many_items_wait"),
        "batch.Config.timeout": Proven(BATCH + "test_timeout_sends_what_waits_when_it_passes"),
        "batch.Config.send_batch_max_size": Proven(BATCH + "test_send_batch_max_size_cuts_a_request_larger_than_it"),
        "batch.Config.send_batch_max_bytes": Proven(BATCH + "test_send_batch_max_bytes_keeps_every_batch_under_it"),
        "batch.Config.metadata_keys": Proven(BATCH + "test_metadata_keys_keep_batches_of_different_values_apart"),
        "batch.Config.metadata_cardinality_limit":
            Proven(BATCH_LIMIT + "test_metadata_cardinality_limit_refuses_the_combination_past_the_limit",
                   BATCH_LIMIT + "test_without_a_limit_every_combination_is_taken"),
    }),

    # processors: memory_limiter
    **under("pipelines.processors.", {
        "memory_limiter.Config.check_interval": Proven(LIMITER + "test_check_interval_paces_the_readings"),
        "memory_limiter.Config.limit_mib": Proven(LIMITER + "test_limit_mib_sets_where_refusing_starts"),
        "memory_limiter.Config.spike_limit_mib": Proven(LIMITER + "test_spike_limit_mib_replaces_the_default_fifth"),
        "memory_limiter.Config.limit_percentage":
            Proven(LIMITER + "test_limit_percentage_and_spike_limit_percentage_are_of_the_total_memory"),
        "memory_limiter.Config.spike_limit_percentage":
            Proven(LIMITER + "test_limit_percentage_and_spike_limit_percentage_are_of_the_total_memory"),
        "memory_limiter.Config.min_gc_interval_when_soft_limited":
            Proven(LIMITER + "test_min_gc_interval_when_soft_limited_spaces_the_collections"),
        "memory_limiter.Config.min_gc_interval_when_hard_limited":
            Proven(LIMITER + "test_min_gc_interval_when_hard_limited_spaces_the_collections"),
    }),

    # processors: attributes and resource (actions, include/exclude)
    **under("pipelines.processors.", {
        "attributes.Config.actions": Proven(ATTRIBUTES + "test_actions_apply_in_order"),
        "attributes.Config.include": Proven(ATTRIBUTES + "test_include_then_exclude"),
        "attributes.Config.exclude": Proven(ATTRIBUTES + "test_include_then_exclude"),
        "resource.Config.attributes": Proven(ATTRIBUTES + "test_resource_processor_touches_resources_only"),
        "actions.ActionConfig.key": Proven(ATTRIBUTES + "test_insert_only_when_absent"),
        "actions.ActionConfig.action": Proven(ATTRIBUTES + "test_insert_only_when_absent",
                                              ATTRIBUTES + "test_update_only_when_present"),
        "actions.ActionConfig.value": Proven(ATTRIBUTES + "test_upsert_both_ways"),
        "actions.ActionConfig.from_attribute":
            Proven(ATTRIBUTES + "test_from_attribute_copies_and_missing_source_does_nothing"),
        "actions.ActionConfig.from_context": Proven(ATTRIBUTES + "test_from_context_metadata_and_tenant"),
        "actions.ActionConfig.pattern": Proven(ATTRIBUTES + "test_delete_by_key_and_pattern"),
        "actions.ActionConfig.converted_type": Proven(ATTRIBUTES + "test_convert"),
        "matching.MatchProperties.match_type": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.MatchProperties.services": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.MatchProperties.span_names": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.MatchProperties.span_kinds": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.MatchProperties.attributes": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.MatchProperties.resources": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.MatchProperties.libraries": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.AttributeMatch.key": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.AttributeMatch.value": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.LibraryMatch.name": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        "matching.LibraryMatch.version": Proven(ATTRIBUTES + "test_include_keys_as_written_in_yaml"),
        # Refused by MatchProperties.validate (SpanMatcher), in every pipeline, not by `unsupported()`.
        "matching.MatchProperties.log_bodies": Proven(ATTRIBUTES + "test_match_config_errors"),
        "matching.MatchProperties.log_severity_texts": Proven(ATTRIBUTES + "test_match_config_errors"),
        "matching.MatchProperties.regexp":
            Proven(REGEXP + "test_without_cacheenabled_nothing_is_remembered",
                   key="RegexpOptions"),
        "matching.RegexpOptions.cacheenabled":
            Proven(REGEXP + "test_cacheenabled_remembers_results_within_cachemaxnumentries",
                   REGEXP + "test_without_cacheenabled_nothing_is_remembered"),
        "matching.RegexpOptions.cachemaxnumentries":
            Proven(REGEXP + "test_cacheenabled_remembers_results_within_cachemaxnumentries"),
    }),

    # processors: probabilistic_sampler
    **under("pipelines.processors.", {
        "probabilistic_sampler.Config.sampling_percentage":
            Proven(SAMPLER + "test_fraction_of_20000_random_traces_at_25_percent"),
        "probabilistic_sampler.Config.hash_seed": Proven(SAMPLER + "test_hash_seed_agreement_over_many_traces"),
        "probabilistic_sampler.Config.mode": Proven(SAMPLER + "test_proportional_multiplies_and_only_raises_th"),
        "probabilistic_sampler.Config.fail_closed":
            Proven(SAMPLER + "test_inconsistent_th_and_bad_tracestate_fail_closed_or_open"),
        "probabilistic_sampler.Config.sampling_precision":
            Proven(SAMPLER + "test_sampling_precision_is_the_number_of_hex_digits_of_th"),
        "probabilistic_sampler.Config.attribute_source": Refused(),
        "probabilistic_sampler.Config.from_attribute": Refused(),
        "probabilistic_sampler.Config.sampling_priority": Refused(),
    }),

    # processors: tail_sampling (the policies' keys side by side with the Collector)
    **under("pipelines.tail_sampling.config.", {
        "Config.decision_wait": Proven(TAIL + "test_decision_wait_and_decision_wait_after_root_received", TAIL_DIFF),
        "Config.decision_wait_after_root_received":
            Proven(TAIL + "test_decision_wait_and_decision_wait_after_root_received"),
        "Config.num_traces": Proven(TAIL + "test_num_traces_decides_the_oldest_early_instead_of_losing_it"),
        "Config.block_on_overflow":
            Proven(TAIL_DELIVERY + "test_block_on_overflow_refuses_a_new_trace_past_num_traces"),
        "Config.expected_new_traces_per_sec":
            Proven(TAIL + "test_expected_new_traces_per_sec_is_accepted_and_changes_no_decision"),
        "Config.policies": Proven(TAIL_DIFF),
        "Config.decision_cache":
            Proven(TAIL + "test_late_spans_follow_the_decision_remembered_by_num_traces_or_decision_cache"),
        "DecisionCacheCfg.sampled_cache_size":
            Proven(TAIL + "test_late_spans_follow_the_decision_remembered_by_num_traces_or_decision_cache"),
        "DecisionCacheCfg.non_sampled_cache_size":
            Proven(TAIL + "test_late_spans_follow_the_decision_remembered_by_num_traces_or_decision_cache"),
        "Config.sample_on_first_match":
            Proven(TAIL_DIFF, TAIL + "test_drop_policies_come_first_and_sample_on_first_match_stops_early"),
        "Config.drop_pending_traces_on_shutdown":
            Proven(TAIL_DELIVERY + "test_drop_pending_traces_on_shutdown_counts_them_dropped"),
        "Config.maximum_trace_size_bytes":
            Proven(TAIL + "test_maximum_trace_size_bytes_drops_a_trace_that_grows_past_it"),
        "Config.max_pending_bytes":
            Proven(TAIL + "test_max_pending_bytes_counts_everything_pending_and_the_largest_trace_pays",
                   TAIL_DELIVERY + "test_max_pending_bytes_refuses_decides_the_giant_trace_early_and_stalls_no_one"),
        "Config.storage": Proven(TAIL_DELIVERY + "test_pending_spans_survive_kill9_and_are_decided_after_the_restart"),
        "Config.persist_metadata_keys": Proven(
            "tests/config/test_kept_metadata.py::test_tail_sampling_storage_needs_persist_metadata_keys_for_any_other_header"),
        "Config.sampling_strategy": Refused(),
        "Config.num_shards": Refused(),
        "Config.tail_storage": Refused(),
        **{f"SharedPolicyCfg.{k}": Proven(TAIL_DIFF) for k in (
            "name", "type", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
            "rate_limiting", "bytes_limiting", "span_count", "trace_state", "boolean_attribute", "ottl_condition")},
        "PolicyCfg.composite": Proven(TAIL_DIFF),
        "PolicyCfg.drop": Proven(TAIL_DIFF),
        "PolicyCfg.and_": Proven(TAIL_DIFF, key="and"),
        "PolicyCfg.not_": Proven(TAIL + "test_policy_keys_decide_as_the_collector_does", key="not"),
        "AndSubPolicyCfg.not_": Proven(TAIL_DIFF, key="not"),
        "CompositeSubPolicyCfg.and_":
            Proven(TAIL + "test_composite_shares_max_total_spans_per_second_by_rate_allocation", key="and"),
        "AndCfg.and_sub_policy": Proven(TAIL_DIFF),
        "NotCfg.not_sub_policy": Proven(TAIL_DIFF),
        "DropCfg.drop_sub_policy": Proven(TAIL_DIFF),
        **{f"{block}.{k}": Proven(TAIL_DIFF) for block, keys in {
            "LatencyCfg": ("threshold_ms", "upper_threshold_ms"),
            "NumericAttributeCfg": ("key", "min_value", "max_value", "invert_match"),
            "ProbabilisticCfg": ("hash_salt", "sampling_percentage"),
            "StatusCodeCfg": ("status_codes",),
            "StringAttributeCfg": ("key", "values", "enabled_regex_matching", "invert_match"),
            "BooleanAttributeCfg": ("key", "value", "invert_match"),
            "TraceStateCfg": ("key", "values"),
            "SpanCountCfg": ("min_spans", "max_spans"),
            "CompositeCfg": ("max_total_spans_per_second", "policy_order", "composite_sub_policy", "rate_allocation"),
            "RateAllocationCfg": ("policy", "percent"),
            "RateLimitingCfg": ("spans_per_second",),
            "BytesLimitingCfg": ("bytes_per_second", "burst_capacity"),
        }.items() for k in keys},
        "RateLimitingCfg.burst_capacity":
            Proven(TAIL + "test_rate_and_bytes_limiting_are_token_buckets_with_burst_capacity"),
        "StringAttributeCfg.cache_max_size":
            Proven(TAIL + "test_string_attribute_cache_max_size_bounds_the_regex_results_kept"),
        "OTTLConditionCfg.error_mode": Proven(TAIL + "test_ottl_condition_error_mode"),
        "OTTLConditionCfg.span": Proven(TAIL + "test_ottl_condition_error_mode", TAIL_DIFF),
        "OTTLConditionCfg.spanevent": Proven(TAIL + "test_ottl_condition_error_mode", TAIL_DIFF),
    }),

    # processors: transform and filter (OTTL)
    **under("pipelines.ottl_processors.transform.", {
        "Config.error_mode": Proven(OTTL + "test_error_mode_ignore_skips_a_failing_statement_and_propagate_refuses"),
        "Config.trace_statements":
            Proven(OTTL + "test_trace_statements_flat_form_infers_the_span_context_and_runs_in_order"),
        "Config.metric_statements": Proven(OTTL + "test_metric_and_log_statements"),
        "Config.log_statements": Proven(OTTL + "test_metric_and_log_statements"),
        "Config.profile_statements": Refused(),
        "Config.flatten_data": Refused(),
        "ContextStatements.context": Proven(OTTL + "test_advanced_form_context_conditions_and_resource_statements"),
        "ContextStatements.conditions": Proven(OTTL + "test_advanced_form_context_conditions_and_resource_statements"),
        "ContextStatements.statements": Proven(OTTL + "test_advanced_form_context_conditions_and_resource_statements"),
        "ContextStatements.error_mode":
            Proven(OTTL + "test_error_mode_ignore_skips_a_failing_statement_and_propagate_refuses"),
        "ContextStatements.shared_cache": Refused(),
    }),
    **under("pipelines.ottl_processors.filter.", {
        "Config.error_mode": Proven(OTTL + "test_filter_error_mode"),
        "Config.traces": Proven(OTTL + "test_filter_span_block_drops_spans_and_empty_scopes_and_resources"),
        "Config.metrics": Proven(OTTL + "test_filter_metrics_and_logs"),
        "Config.logs": Proven(OTTL + "test_filter_metrics_and_logs"),
        "Config.trace_conditions": Proven(OTTL + "test_filter_trace_conditions_infer_each_conditions_context"),
        "Config.metric_conditions": Proven(OTTL + "test_filter_metrics_and_logs"),
        "Config.log_conditions": Proven(OTTL + "test_filter_metrics_and_logs"),
        "Config.spans": Refused(),
        "Config.profiles": Refused(),
        "Config.profile_conditions": Refused(),
        "ContextConditions.context": Proven(OTTL + "test_filter_trace_conditions_infer_each_conditions_context"),
        "ContextConditions.conditions": Proven(OTTL + "test_filter_trace_conditions_infer_each_conditions_context"),
        "ContextConditions.error_mode": Proven(OTTL + "test_filter_error_mode"),
        "TraceFilters.resource": Proven(OTTL + "test_filter_resource_and_spanevent_blocks"),
        "TraceFilters.span": Proven(OTTL + "test_filter_span_block_drops_spans_and_empty_scopes_and_resources"),
        "TraceFilters.spanevent": Proven(OTTL + "test_filter_resource_and_spanevent_blocks"),
        "MetricFilters.resource": Proven(OTTL + "test_filter_resource_conditions_of_metrics_and_logs"),
        "MetricFilters.metric": Proven(OTTL + "test_filter_metrics_and_logs"),
        "MetricFilters.datapoint": Proven(OTTL + "test_filter_metrics_and_logs"),
        "MetricFilters.include": Refused(),
        "MetricFilters.exclude": Refused(),
        "MetricFilters.regexp": Refused(),
        "LogFilters.resource": Proven(OTTL + "test_filter_resource_conditions_of_metrics_and_logs"),
        "LogFilters.log_record": Proven(OTTL + "test_filter_metrics_and_logs"),
        "LogFilters.include": Refused(),
        "LogFilters.exclude": Refused(),
    }),

    # connectors: routing (forward has no keys)
    **under("pipelines.connectors.routing.", {
        "Config.table": Proven(ROUTING + "test_route_statement_without_where_takes_everything"),
        "Config.default_pipelines": Proven(ROUTING + "test_fast_path_to_the_defaults_and_to_nowhere"),
        "Config.error_mode": Proven(ROUTING + "test_error_mode_propagate_refuses_the_request"),
        "Config.match_once": Proven(ROUTING + "test_match_once_false_gives_each_resource_to_every_matching_route"),
        "RouteConfig.statement": Proven(ROUTING + "test_route_statement_without_where_takes_everything"),
        "RouteConfig.condition": Proven(ROUTING + "test_request_routes_decide_for_the_whole_request_without_parsing"),
        "RouteConfig.context": Proven(ROUTING + "test_request_routes_decide_for_the_whole_request_without_parsing"),
        "RouteConfig.pipelines": Proven(ROUTING + "test_request_routes_decide_for_the_whole_request_without_parsing"),
    }),

    # extensions: bearertokenauth
    **under("gateway.extensions.", {
        "bearertokenauth.Config.token": Proven(AUTH + "test_token_and_scheme"),
        "bearertokenauth.Config.tokens": Proven(AUTH + "test_tokens_with_tenants_custom_header_and_no_scheme"),
        "bearertokenauth.Config.header": Proven(AUTH + "test_tokens_with_tenants_custom_header_and_no_scheme"),
        "bearertokenauth.Config.scheme": Proven(AUTH + "test_tokens_with_tenants_custom_header_and_no_scheme"),
        "bearertokenauth.Config.filename": Proven(AUTH + "test_file_reload_on_change_and_configmap_symlink_swap"),
        "bearertokenauth.Config.reload_interval":
            Proven(AUTH + "test_reload_interval_is_how_often_the_file_is_checked"),
    }),

    # extensions: headers_setter, basicauth
    **under("gateway.extensions.", {
        "headers_setter.Config.headers": Proven(CLIENT_AUTH),
        "headers_setter.Config.additional_auth": Refused(),
        "headers_setter.HeaderConfig.key":
            Proven(HEADERS_SETTER + "test_action_insert_update_upsert_delete", CLIENT_AUTH),
        "headers_setter.HeaderConfig.action":
            Proven(HEADERS_SETTER + "test_action_insert_update_upsert_delete", CLIENT_AUTH),
        "headers_setter.HeaderConfig.value": Proven(HEADERS_SETTER + "test_action_insert_update_upsert_delete"),
        "headers_setter.HeaderConfig.from_context":
            Proven(HEADERS_SETTER + "test_value_from_context_from_attribute_and_default_value", CLIENT_AUTH),
        "headers_setter.HeaderConfig.from_attribute":
            Proven(HEADERS_SETTER + "test_value_from_context_from_attribute_and_default_value", CLIENT_AUTH),
        "headers_setter.HeaderConfig.default_value":
            Proven(HEADERS_SETTER + "test_value_from_context_from_attribute_and_default_value", CLIENT_AUTH),
        "headers_setter.HeaderConfig.value_file": Refused(),
        "basicauth.Config.htpasswd":
            Proven(BASICAUTH + "test_a_running_gateway_takes_basic_credentials_from_the_sdks_and_refuses_the_rest"),
        "basicauth.HtpasswdConfig.file":
            Proven(BASICAUTH + "test_htpasswd_file_and_inline_inline_wins_and_the_file_is_reread",
                   BASICAUTH + "test_a_running_gateway_takes_basic_credentials_from_the_sdks_and_refuses_the_rest"),
        "basicauth.HtpasswdConfig.inline":
            Proven(BASICAUTH + "test_htpasswd_file_and_inline_inline_wins_and_the_file_is_reread",
                   BASICAUTH + "test_a_running_gateway_takes_basic_credentials_from_the_sdks_and_refuses_the_rest"),
        "basicauth.Config.client_auth": Proven(CLIENT_AUTH),
        "basicauth.ClientAuthConfig.username": Proven(CLIENT_AUTH),
        "basicauth.ClientAuthConfig.password": Proven(CLIENT_AUTH),
        "basicauth.ClientAuthConfig.username_file": Refused(),
        "basicauth.ClientAuthConfig.password_file": Refused(),
        "basicauth.ClientAuthConfig.aws_secrets_manager": Refused(),
        "oidc.Config.issuer_url": Proven(OIDC + "test_oidc_through_a_running_gateway"),
        "oidc.Config.issuer_ca_path": Proven(OIDC + "test_oidc_through_a_running_gateway"),
        "oidc.Config.audience": Proven(OIDC + "test_oidc_through_a_running_gateway"),
        "oidc.Config.ignore_audience": Proven(OIDC + "test_attribute_username_claim_groups_claim_and_ignore_audience"),
        "oidc.Config.username_claim": Proven(OIDC + "test_attribute_username_claim_groups_claim_and_ignore_audience"),
        "oidc.Config.groups_claim": Proven(OIDC + "test_oidc_through_a_running_gateway",
                                           OIDC + "test_attribute_username_claim_groups_claim_and_ignore_audience"),
        "oidc.Config.attribute": Proven(OIDC + "test_attribute_username_claim_groups_claim_and_ignore_audience"),
        "oidc.Config.providers": Refused(),
        "oidc.Config.public_keys_file": Refused(),
        "oauth2client.Config.client_id": Proven(OAUTH2_E2E),
        "oauth2client.Config.client_secret":
            Proven(OAUTH2 + "test_expiry_buffer_is_how_long_before_expiry_a_token_is_fetched_again"),
        "oauth2client.Config.client_secret_file": Proven(OAUTH2_E2E),
        "oauth2client.Config.token_url": Proven(OAUTH2_E2E),
        "oauth2client.Config.scopes": Proven(OAUTH2_E2E),
        "oauth2client.Config.endpoint_params": Proven(OAUTH2_E2E),
        "oauth2client.Config.timeout": Proven(OAUTH2 + "test_timeout_bounds_a_token_endpoint_that_never_answers"),
        "oauth2client.Config.expiry_buffer":
            Proven(OAUTH2 + "test_expiry_buffer_is_how_long_before_expiry_a_token_is_fetched_again"),
        "oauth2client.Config.tls": Proven(OAUTH2_E2E),
        "oauth2client.Config.client_id_file": Refused(),
        "oauth2client.Config.grant_type": Refused(),
    }),

    # extensions: file_storage
    **under("gateway.extensions.", {
        "file_storage.Config.directory": Proven(STORAGE + "test_directory_is_where_the_queue_files_are"),
        "file_storage.Config.create_directory": Proven(STORAGE + "test_create_directory_creates_a_missing_directory"),
        "file_storage.Config.directory_permissions":
            Proven(STORAGE + "test_directory_permissions_is_the_mode_of_a_created_directory"),
        "file_storage.Config.fsync": Proven(STORAGE + "test_fsync_syncs_the_queue_files"),
        "file_storage.Config.max_size_mib": Proven(STORAGE + "test_max_size_mib_bounds_the_disk_the_queues_use"),
        "file_storage.Config.timeout":
            Proven(STORAGE + "test_timeout_is_how_long_a_start_waits_for_a_locked_queue_directory"),
        "file_storage.Config.compaction": Refused(),
        "file_storage.Config.recreate": Refused(),
    }),

    # extensions: health_check
    **under("gateway.extensions.", {
        "health.Config.endpoint": Proven(HEALTH + "test_endpoint_is_where_it_listens"),
        "health.Config.path": Proven(HEALTH + "test_path_is_where_it_answers"),
        "health.Config.tls": Proven(HEALTH + "test_tls_serves_the_health_check_over_https"),
        "health.Config.response_body": Proven(HEALTH_BODY + "test_response_body_replaces_the_json_status"),
        "health.ResponseBody.healthy": Proven(HEALTH_BODY + "test_response_body_replaces_the_json_status"),
        "health.ResponseBody.unhealthy": Proven(HEALTH_BODY + "test_response_body_replaces_the_json_status"),
        "health.Config.check_collector_pipeline":
            Proven(HEALTH_BODY + "test_check_collector_pipeline_is_refused_when_enabled_and_accepted_off"),
        "health.CheckCollectorPipeline.enabled":
            Proven(HEALTH_BODY + "test_check_collector_pipeline_is_refused_when_enabled_and_accepted_off"),
        "health.CheckCollectorPipeline.interval": Refused(),
        "health.CheckCollectorPipeline.exporter_failure_threshold": Refused(),
    }),

    # extensions: zpages
    **under("gateway.extensions.", {
        "zpages.Config.endpoint": Proven(ZPAGES + "test_endpoint_is_where_it_listens"),
        "zpages.Config.expvar": Proven(ZPAGES + "test_expvar_is_refused"),
        "zpages.Expvar.enabled": Refused(),
    }),

    # extensions: pprof
    **under("gateway.extensions.", {
        "pprof.Config.endpoint": Proven(PPROF + "test_endpoint_is_where_it_listens"),
        "pprof.Config.save_to_file": Proven(PPROF + "test_save_to_file_writes_a_profile_of_the_run_at_shutdown",
                                            PPROF + "test_each_worker_saves_its_own_file"),
        "pprof.Config.block_profile_fraction": Refused(),
        "pprof.Config.mutex_profile_fraction": Refused(),
    }),
    # extensions: healthcheckv2 (its use_v2: false keys are health_check's, above)
    **under("gateway.extensions.healthcheckv2.", {
        "Config.use_v2": Proven(HC2_PERMANENT, HC2_KEYS),
        "Config.http": Proven(HC2_DOWN, HC2_KEYS),
        "Config.grpc": Proven(HC2_DOWN),
        "Config.component_health": Proven(HC2_DOWN, HC2_PERMANENT),
        "HttpConfig.endpoint": Proven(HC2_DOWN),
        "HttpConfig.tls": Refused(),
        "HttpConfig.status": Proven(HC2_DOWN),
        "HttpConfig.config": Proven(HC2_DOWN),
        "StatusPath.enabled": Proven(HC2_PATHS),
        "StatusPath.path": Proven(HC2_DOWN, HC2_KEYS),
        "ConfigPath.enabled": Proven(HC2_DOWN),
        "ConfigPath.path": Proven(HC2_PATHS),
        "GrpcConfig.endpoint": Proven(HC2_DOWN),
        "GrpcConfig.transport": Proven(HC2_KEYS),
        "GrpcConfig.tls": Refused(),
        "ComponentHealth.include_permanent_errors": Proven(HC2_PERMANENT),
        "ComponentHealth.include_recoverable_errors": Proven(HC2_DOWN),
        "ComponentHealth.recovery_duration": Proven(HC2_DOWN),
    }),
}


# ---------------------------------------------------------------- the checks

KEYS = inventory()


def test_the_inventory_is_computed_from_the_code() -> None:
    # A field is listed once, under the class that declares it.
    assert KEYS["gateway.exporters.helper.ExporterCommon.timeout"].path == "exporters::otlp::timeout"
    assert "gateway.exporters.otlp_grpc.Config.timeout" not in KEYS
    assert "gateway.exporters.otlp_http.Config.timeout" in KEYS  # redeclared there, with its own default
    # Nested blocks are followed through `X | None`, `tuple[X, ...]` and `dict[str, X]`.
    assert KEYS["gateway.exporters.helper.QueueConfig.queue_size"].path == "exporters::otlp::sending_queue::queue_size"
    assert KEYS["gateway.transport.tls._TLSCommon.min_version"].path == (
        "receivers::otlp::protocols::grpc::tls::min_version")
    assert KEYS["pipelines.processors.actions.ActionConfig.key"].path == "processors::attributes::actions[0]::key"
    assert KEYS["gateway.config.model.PipelineConfig.receivers"].path == "service::pipelines::<id>::receivers"


def test_every_key_has_evidence() -> None:
    missing = sorted(set(KEYS) - set(EVIDENCE))
    stale = sorted(set(EVIDENCE) - set(KEYS))
    lines = [f"no evidence for {k} (e.g. {KEYS[k].path})" for k in missing]
    lines += [f"evidence for {k}, which is no longer a key" for k in stale]
    assert not lines, "\n" + "\n".join(lines)


def _function(test: str) -> Any:
    path, _, name = test.partition("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    function = getattr(module, name.partition("[")[0], None)
    assert callable(function), f"{test}: no such test function"
    return function


def _code_of(source: str) -> str:
    """A test function's source without its docstrings and comments: a key named only in prose is no
    evidence that the test sets it."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)  # comments are not kept by the parser


def _mentions(source: str, key: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", _code_of(source)) is not None


@pytest.mark.parametrize("name", sorted(EVIDENCE))
def test_the_evidence_holds(name: str) -> None:
    evidence = EVIDENCE[name]
    key = KEYS.get(name)
    where = key.path if key is not None else "no longer a key"
    if isinstance(evidence, Todo):
        pytest.fail(f"{name} ({where}): not settled: {evidence.reason}")
    if key is None:
        return  # reported by test_every_key_has_evidence
    reason = unsupported_reason(key.field)
    if isinstance(evidence, Refused):
        assert reason is not None, f"{name} ({where}) is listed as refused but is not declared with unsupported()"
        return
    assert reason is None, f"{name} ({where}) is declared with unsupported(): list it as Refused()"
    spelled = evidence.key or key.field.name
    for test in evidence.tests:
        source = inspect.getsource(_function(test))
        assert _mentions(source, spelled), f"{name} ({where}): {test} does not mention {spelled!r}"


# ---------------------------------------------------------------- how a refused key is refused


@dataclass(frozen=True)
class _Tiny:
    kept: int = 1
    refused: Any = unsupported("the gateway does not do this")
    off: bool = unsupported("nor this", default=False)


def test_the_decoder_refuses_an_unsupported_key() -> None:
    errors = Errors()
    assert decode(_Tiny, {"kept": 2}, "exporters::tiny", errors) == _Tiny(kept=2)
    assert not errors
    assert decode(_Tiny, {"kept": 2, "refused": {"a": 1}, "off": True}, "exporters::tiny", errors) is None
    assert errors.lines == [
        "exporters::tiny::refused: not supported by this gateway: the gateway does not do this",
        "exporters::tiny::off: not supported by this gateway: nor this",
    ]
