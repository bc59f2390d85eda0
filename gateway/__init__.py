"""The gateway's I/O half: CLI, config loading, the service, receivers, exporters, extensions."""

__version__ = "0.1.0"
