"""A subset of OTTL, the OpenTelemetry Transformation Language: enough for routing conditions."""
