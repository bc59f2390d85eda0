"""Zipkin spans to OTLP, as the Collector's `zipkin` receiver translates them (contrib
`pkg/translator/zipkin` v0.161.0): v2 JSON (`v2_json`), v2 protobuf (`v2_proto`) and v1 JSON
(`v1_json`) decode to the v2 model (`model.ZSpan`) or straight to spans, and `model.to_request` builds
the `ExportTraceServiceRequest`. Bytes in, OTLP out; a malformed request raises `PermanentError`."""
