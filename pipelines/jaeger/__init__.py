"""Jaeger spans to OTLP, as the Collector's `jaeger` receiver translates them (contrib
`pkg/translator/jaeger` v0.161.0): Thrift batches (`thrift`: the binary and compact protocols, for
`thrift_http` and the agent's UDP `emitBatch`) and api_v2 protobuf (`proto`, for gRPC `PostSpans`)
decode to one model (`model.Span`), and `model.thrift_request` / `model.proto_request` build the
`ExportTraceServiceRequest`. Bytes in, OTLP out; a malformed request raises `PermanentError`."""
