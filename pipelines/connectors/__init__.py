"""Connectors' pure parts: the decisions a connector makes, free of pipelines and sockets."""
