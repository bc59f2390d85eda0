"""Gateway configs for the delivery tests: small retry intervals so that faults resolve quickly."""

from __future__ import annotations

from tests.harness import Ports, Sink, basic_config

FAST_RETRY = "{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 60s}"


def exporter(name: str, sink: Sink, kind: str = "otlp", queue: str = "{num_consumers: 4}",
             retry: str = FAST_RETRY, timeout: str = "2s") -> str:
    if kind == "otlp":
        where = f'endpoint: "127.0.0.1:{sink.grpc_port}"\n    tls: {{insecure: true}}'
    else:
        where = f'endpoint: "http://127.0.0.1:{sink.http_port}"\n    compression: none'
    return f"""  {kind}/{name}:
    {where}
    timeout: {timeout}
    retry_on_failure: {retry}
    sending_queue: {queue}
"""


def config(ports: Ports, exporters: list[str], names: list[str], batch: str = "{timeout: 50ms}",
           extra_processors: str = "", pipeline_processors: str = "[batch]", extensions: str = "",
           service_extra: str = "") -> str:
    processors = f"batch: {batch}" + (f"\n  {extra_processors}" if extra_processors else "")
    text = basic_config(ports, "".join(exporters), "[" + ", ".join(names) + "]", processors=processors,
                        pipeline_processors=pipeline_processors)
    if extensions:
        text = text.replace("extensions:\n  health_check:", f"extensions:\n{extensions}  health_check:", 1)
        ids = [line.strip().rstrip(":") for line in extensions.splitlines()
               if line.startswith("  ") and not line.startswith("    ")]
        text = text.replace("  extensions: [health_check]", f"  extensions: [health_check, {', '.join(ids)}]", 1)
    if service_extra:
        text = text.replace("service:\n", f"service:\n{service_extra}", 1)
    return text
