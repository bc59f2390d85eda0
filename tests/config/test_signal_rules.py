"""Rules a component can only check against the pipeline it runs in are still reported by `validate`."""

from __future__ import annotations

import pytest

from gateway.config.load import ConfigError, load_text

CONFIG = """
receivers: {otlp: {protocols: {http: {}}}}
processors:
  attributes/x:
    include: {match_type: strict, services: [a]}
    actions: [{key: k, value: v, action: insert}]
exporters: {debug: {}}
service:
  pipelines:
    %s: {receivers: [otlp], processors: [attributes/x], exporters: [debug]}
"""


def test_span_matchers_are_refused_in_a_logs_pipeline() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(CONFIG % "logs", env={})
    assert exc.value.errors == [
        "service::pipelines::logs: processor 'attributes/x': include: "
        "services, span_names, and span_kinds are not valid for logs"
    ]


def test_the_same_processor_is_valid_in_a_traces_pipeline() -> None:
    assert load_text(CONFIG % "traces", env={}).config.processors["attributes/x"].include.services == ("a",)
