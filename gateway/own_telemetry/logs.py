"""`service::telemetry::logs` beyond stderr: `processors` (the gateway's log records over OTLP, by the
SDK's logger provider, fed by a handler on the `gateway` logger only, so the SDK's own complaints never
loop back), `sampling` (zap's sampler) and `development` (a stack trace from `warn` up, as zap's
development mode)."""

from __future__ import annotations

import logging
import time
import traceback

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from gateway.config.telemetry import LogSampling, LogsTelemetry, Processor
from gateway.own_telemetry.exporters import exporter

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_DECIDED = "_gateway_sampled"


class Sampler(logging.Filter):
    """zap's sampler: in each `tick`, of the lines with one level and message (its template), the first
    `initial` pass, then every `thereafter`-th. The decision is kept on the record, so every handler that
    carries this filter writes the same lines."""

    def __init__(self, config: LogSampling) -> None:
        super().__init__()
        self._config = config
        self._tick_end = 0.0
        self._counts: dict[tuple[int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        decided: bool | None = getattr(record, _DECIDED, None)
        if decided is not None:
            return decided
        now = time.monotonic()
        if now >= self._tick_end:
            self._tick_end = now + self._config.tick
            self._counts.clear()
        key = (record.levelno, str(record.msg))
        n = self._counts[key] = self._counts.get(key, 0) + 1
        keep = n <= self._config.initial or (
            self._config.thereafter > 0 and (n - self._config.initial) % self._config.thereafter == 0)
        setattr(record, _DECIDED, keep)
        return keep


class Development(logging.Filter):
    """A record at `warn` or above carries the stack that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and not record.exc_info and not record.stack_info:
            # The caller's frames, without those of `logging` and of this filter.
            frames = [f for f in traceback.extract_stack() if f.filename not in (logging.__file__, __file__)]
            record.stack_info = "Stack (most recent call last):\n" + "".join(traceback.format_list(frames))
        return True


def filters(config: LogsTelemetry) -> list[logging.Filter]:
    """What every handler of the gateway's log carries, for `sampling` and `development`."""
    out: list[logging.Filter] = []
    if config.sampling is not None and config.sampling.enabled:
        out.append(Sampler(config.sampling))
    if config.development:
        out.append(Development())
    return out


_SEVERITY = {logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"), logging.INFO: (SeverityNumber.INFO, "INFO"),
             logging.WARNING: (SeverityNumber.WARN, "WARN"), logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
             logging.CRITICAL: (SeverityNumber.FATAL, "FATAL")}


class OtlpHandler(logging.Handler):
    """A `logging` record as an SDK log record: the message as the body, the logger's name as the scope,
    where it was logged as `code.*` attributes, an exception with it. (The SDK's own `LoggingHandler`
    is deprecated in favour of an instrumentation package the gateway does not need.)"""

    def __init__(self, level: int, provider: LoggerProvider) -> None:
        super().__init__(level)
        self._provider = provider

    def emit(self, record: logging.LogRecord) -> None:
        try:
            number, text = _SEVERITY.get(record.levelno, (SeverityNumber.UNSPECIFIED, record.levelname))
            exc = record.exc_info[1] if record.exc_info else None
            attributes: dict[str, str | int] = {"code.file.path": record.pathname, "code.line.number": record.lineno}
            if record.stack_info:
                attributes["code.stacktrace"] = record.stack_info
            self._provider.get_logger(record.name).emit(
                timestamp=int(record.created * 1e9), observed_timestamp=time.time_ns(), severity_number=number,
                severity_text=text, body=record.getMessage(), attributes=attributes, exception=exc)
        except Exception:
            self.handleError(record)


def _processor(p: Processor) -> LogRecordProcessor:
    if p.batch is not None:
        b = p.batch
        assert b.exporter.otlp is not None
        return BatchLogRecordProcessor(exporter(b.exporter.otlp, "logs"), schedule_delay_millis=b.schedule_delay,
                                       max_export_batch_size=b.max_export_batch_size,
                                       export_timeout_millis=b.export_timeout, max_queue_size=b.max_queue_size)
    assert p.simple is not None and p.simple.exporter.otlp is not None
    return SimpleLogRecordProcessor(exporter(p.simple.exporter.otlp, "logs"))


class OwnLogs:
    def __init__(self, config: LogsTelemetry, resource: Resource) -> None:
        self.config = config
        self.provider = LoggerProvider(resource=resource) if config.processors else None
        self._handler: OtlpHandler | None = None

    def start(self) -> None:
        if self.provider is None:
            return
        for p in self.config.processors:
            self.provider.add_log_record_processor(_processor(p))
        self._handler = OtlpHandler(LEVELS.get(self.config.level.lower(), logging.INFO), self.provider)
        for f in filters(self.config):
            self._handler.addFilter(f)
        logging.getLogger("gateway").addHandler(self._handler)

    def shutdown(self) -> None:
        if self._handler is not None:
            logging.getLogger("gateway").removeHandler(self._handler)
            self._handler = None
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None
