"""Connectors: components that are an exporter of one pipeline and a receiver of others."""
