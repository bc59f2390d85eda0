"""The gateway's own telemetry over OTLP (`service::telemetry`): spans, metrics and logs about itself,
exported by the OpenTelemetry SDK straight to the configured endpoints, never through its pipelines."""
