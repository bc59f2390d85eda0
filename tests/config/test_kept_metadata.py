"""`validate` refuses an exporter whose persistent queue would write request headers that may carry
credentials to disk: headers a `batch` processor upstream keeps (`metadata_keys`, through connectors
too) or its `headers_setter` reads (`from_context`). Only a few tenant headers, and those listed in
`sending_queue::persist_metadata_keys`, may be written; a credential header never."""

from __future__ import annotations

import pytest

from gateway.config.load import ConfigError, load_text

STORAGE = "exporters::otlp/x::sending_queue::storage"


def config(batch_keys: str = "[]", queue: str = "storage: file_storage", auth: str = "",
           headers_setter: str = "[{key: x-out, from_context: x-tenant}]", pipelines: str = "") -> str:
    return f"""
receivers: {{otlp: {{protocols: {{grpc: {{include_metadata: true}}}}}}}}
processors: {{batch: {{metadata_keys: {batch_keys}}}}}
exporters:
  otlp/x: {{endpoint: "x:4317", sending_queue: {{{queue}}}{auth}}}
extensions:
  file_storage: {{directory: /tmp}}
  headers_setter: {{headers: {headers_setter}}}
connectors: {{forward: {{}}}}
service:
  extensions: [file_storage, headers_setter]
  pipelines:
{pipelines or "    traces: {receivers: [otlp], processors: [batch], exporters: [otlp/x]}"}
"""


def refusals(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_text(text, env={})
    return raised.value.errors


@pytest.mark.parametrize("header", ["authorization", "Authorization", "proxy-authorization", "cookie", "x-api-key",
                                    "api-key", "x-honeycomb-team", "x-auth-token", "x-my-secret"])
def test_a_batch_processor_keeping_a_credential_header_is_refused(header: str) -> None:
    assert refusals(config(f"[{header}]")) == [
        f"{STORAGE}: a persistent queue would write request header {header.lower()!r} (kept for "
        "processors::batch::metadata_keys) to disk, and it may carry credentials: use an in-memory queue"]


def test_a_credential_header_a_headers_setter_reads_is_refused() -> None:
    text = config(auth=", auth: {authenticator: headers_setter}",
                  headers_setter="[{key: authorization, from_context: authorization}]")
    assert refusals(text) == [
        f"{STORAGE}: a persistent queue would write request header 'authorization' (kept for the authenticator "
        "extensions::headers_setter) to disk, and it may carry credentials: use an in-memory queue"]


def test_a_batch_processor_upstream_of_a_connector_counts() -> None:
    pipelines = """    traces/in: {receivers: [otlp], processors: [batch], exporters: [forward]}
    traces/out: {receivers: [forward], exporters: [otlp/x]}"""
    assert refusals(config("[cookie]", pipelines=pipelines)) == [
        f"{STORAGE}: a persistent queue would write request header 'cookie' (kept for "
        "processors::batch::metadata_keys) to disk, and it may carry credentials: use an in-memory queue"]


def test_any_other_header_needs_persist_metadata_keys() -> None:
    assert refusals(config("[x-team]")) == [
        f"{STORAGE}: a persistent queue would write request header 'x-team' (kept for "
        "processors::batch::metadata_keys) to disk: list it in sending_queue::persist_metadata_keys if it never "
        "carries credentials, or use an in-memory queue"]
    load_text(config("[x-team]", queue="storage: file_storage, persist_metadata_keys: [X-Team]"), env={})


def test_persist_metadata_keys_cannot_let_a_credential_header_through() -> None:
    text = config("[authorization]", queue="storage: file_storage, persist_metadata_keys: [authorization]")
    assert refusals(text) == [
        "exporters::otlp/x::sending_queue: persist_metadata_keys: 'authorization' may carry credentials; it is never "
        "written to disk"]


@pytest.mark.parametrize("text", [
    config("[x-scope-orgid, tenant]"),  # tenant headers, on disk without being listed
    config("[authorization]", queue="queue_size: 10"),  # an in-memory queue writes nothing
    config("[authorization]", queue="enabled: false, storage: file_storage"),
    config(auth=", auth: {authenticator: headers_setter}"),  # from_context x-tenant
    config(auth=", auth: {authenticator: headers_setter}",
           headers_setter="[{key: authorization, from_context: auth.subject}, {key: x-a, value: fixed}]"),
])
def test_configs_that_write_no_credentials_stay_valid(text: str) -> None:
    load_text(text, env={})


def tail_config(batch_keys: str, tail: str = "storage: file_storage", queue: str = "queue_size: 10") -> str:
    pipelines = """    traces/in: {receivers: [otlp], processors: [tail_sampling], exporters: [forward]}
    traces/out: {receivers: [forward], processors: [batch], exporters: [otlp/x]}"""
    text = config(batch_keys, queue=queue, pipelines=pipelines)
    return text.replace("processors: {batch:", "processors: {tail_sampling: {" + tail +
                        ", policies: [{name: all, type: always_sample}]}, batch:")


TAIL_STORAGE = "processors::tail_sampling::storage"


@pytest.mark.parametrize("header", ["authorization", "cookie", "x-api-key"])
def test_tail_sampling_storage_keeping_a_credential_header_is_refused(header: str) -> None:
    refused = (f"{TAIL_STORAGE}: storage would write request header {header!r} (kept for "
               "processors::batch::metadata_keys) to disk, and it may carry credentials: keep pending spans in memory "
               "(no storage)")
    assert refusals(tail_config(f"[{header}]")) == [refused]
    text = tail_config(f"[{header}]", tail=f"storage: file_storage, persist_metadata_keys: [{header}]")
    assert refusals(text) == [
        f"processors::tail_sampling: persist_metadata_keys: {header!r} may carry credentials; it is never written "
        "to disk", refused]


def test_tail_sampling_storage_needs_persist_metadata_keys_for_any_other_header() -> None:
    assert refusals(tail_config("[x-team]")) == [
        f"{TAIL_STORAGE}: storage would write request header 'x-team' (kept for processors::batch::metadata_keys) "
        "to disk: list it in persist_metadata_keys if it never carries credentials, or keep pending spans in "
        "memory (no storage)"]
    load_text(tail_config("[x-team]", tail="storage: file_storage, persist_metadata_keys: [x-team]"), env={})


@pytest.mark.parametrize("text", [
    tail_config("[x-scope-orgid]"),
    tail_config("[authorization]", tail="decision_wait: 1s"),  # pending spans in memory only
])
def test_tail_sampling_configs_that_write_no_credentials_stay_valid(text: str) -> None:
    load_text(text, env={})
