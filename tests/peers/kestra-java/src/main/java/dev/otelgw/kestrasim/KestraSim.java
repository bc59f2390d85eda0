package dev.otelgw.kestrasim;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.logs.Logger;
import io.opentelemetry.api.logs.Severity;
import io.opentelemetry.api.metrics.DoubleHistogram;
import io.opentelemetry.api.metrics.LongCounter;
import io.opentelemetry.api.metrics.Meter;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.exporter.otlp.http.logs.OtlpHttpLogRecordExporter;
import io.opentelemetry.exporter.otlp.http.logs.OtlpHttpLogRecordExporterBuilder;
import io.opentelemetry.exporter.otlp.http.metrics.OtlpHttpMetricExporter;
import io.opentelemetry.exporter.otlp.http.metrics.OtlpHttpMetricExporterBuilder;
import io.opentelemetry.exporter.otlp.trace.OtlpGrpcSpanExporter;
import io.opentelemetry.exporter.otlp.trace.OtlpGrpcSpanExporterBuilder;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.common.export.RetryPolicy;
import io.opentelemetry.sdk.logs.SdkLoggerProvider;
import io.opentelemetry.sdk.logs.data.LogRecordData;
import io.opentelemetry.sdk.logs.export.BatchLogRecordProcessor;
import io.opentelemetry.sdk.logs.export.LogRecordExporter;
import io.opentelemetry.sdk.metrics.Aggregation;
import io.opentelemetry.sdk.metrics.InstrumentType;
import io.opentelemetry.sdk.metrics.SdkMeterProvider;
import io.opentelemetry.sdk.metrics.data.AggregationTemporality;
import io.opentelemetry.sdk.metrics.data.MetricData;
import io.opentelemetry.sdk.metrics.export.MetricExporter;
import io.opentelemetry.sdk.metrics.export.PeriodicMetricReader;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * kestra-sim: exports telemetry the way Kestra does (seed 003).
 *
 * <p>Traces go over OTLP gRPC to an endpoint (default http://localhost:4317); metrics go over
 * OTLP/HTTP to {@code <http base>/v1/metrics} and logs to {@code <http base>/v1/logs} (default
 * base http://localhost:4318). It emits a few spans, a counter, a histogram and a few log
 * records, force-flushes the three providers, prints one JSON line on stdout and exits 1 when
 * any export failed.
 *
 * <p>Usage: {@code java -jar kestra-sim.jar [TRACES_GRPC_ENDPOINT [HTTP_BASE]]}. Environment:
 * KESTRA_SIM_TRACES_ENDPOINT, KESTRA_SIM_HTTP_ENDPOINT (used when the arguments are absent),
 * KESTRA_SIM_SERVICE_NAME (default "kestra"), SIM_TRACES (traces to emit, default 2, each a root
 * and 2 children), SIM_HEADERS ("k=v,k2=v2", sent on all three signals), SIM_CA_FILE (PEM CA
 * to trust for https endpoints), SIM_TIMEOUT (per-export timeout and retry budget, e.g. "10s",
 * "500ms"; default 10s).
 */
public final class KestraSim {
  private static final AttributeKey<String> NAMESPACE = AttributeKey.stringKey("kestra.namespace");
  private static final AttributeKey<String> FLOW_ID = AttributeKey.stringKey("kestra.flowId");
  private static final AttributeKey<String> EXECUTION_ID = AttributeKey.stringKey("kestra.executionId");
  private static final AttributeKey<String> TASK_ID = AttributeKey.stringKey("kestra.taskId");

  private final List<String> errors = new ArrayList<>();
  private final Set<String> exportedTraceIds = new TreeSet<>();
  private final Set<String> exportedMetricNames = new TreeSet<>();
  private final List<String> exportedLogBodies = new ArrayList<>();
  private int spansExported;
  private int metricExports;

  private synchronized void error(String what, CompletableResultCode result) {
    Throwable t = result.getFailureThrowable();
    errors.add(what + " export failed" + (t == null ? "" : ": " + t));
  }

  private final class RecordingSpanExporter implements SpanExporter {
    private final SpanExporter delegate;

    RecordingSpanExporter(SpanExporter delegate) {
      this.delegate = delegate;
    }

    @Override
    public CompletableResultCode export(Collection<SpanData> spans) {
      List<SpanData> copy = new ArrayList<>(spans);
      CompletableResultCode r = delegate.export(spans);
      r.whenComplete(
          () -> {
            synchronized (KestraSim.this) {
              if (r.isSuccess()) {
                spansExported += copy.size();
                copy.forEach(s -> exportedTraceIds.add(s.getTraceId()));
              } else {
                error("traces (" + copy.size() + " spans)", r);
              }
            }
          });
      return r;
    }

    @Override
    public CompletableResultCode flush() {
      return delegate.flush();
    }

    @Override
    public CompletableResultCode shutdown() {
      return delegate.shutdown();
    }
  }

  private final class RecordingMetricExporter implements MetricExporter {
    private final MetricExporter delegate;

    RecordingMetricExporter(MetricExporter delegate) {
      this.delegate = delegate;
    }

    @Override
    public AggregationTemporality getAggregationTemporality(InstrumentType type) {
      return delegate.getAggregationTemporality(type);
    }

    @Override
    public Aggregation getDefaultAggregation(InstrumentType type) {
      return delegate.getDefaultAggregation(type);
    }

    @Override
    public CompletableResultCode export(Collection<MetricData> metrics) {
      List<MetricData> copy = new ArrayList<>(metrics);
      CompletableResultCode r = delegate.export(metrics);
      r.whenComplete(
          () -> {
            synchronized (KestraSim.this) {
              if (r.isSuccess()) {
                metricExports++;
                copy.forEach(m -> exportedMetricNames.add(m.getName()));
              } else {
                error("metrics (" + copy.size() + " metrics)", r);
              }
            }
          });
      return r;
    }

    @Override
    public CompletableResultCode flush() {
      return delegate.flush();
    }

    @Override
    public CompletableResultCode shutdown() {
      return delegate.shutdown();
    }
  }

  private final class RecordingLogExporter implements LogRecordExporter {
    private final LogRecordExporter delegate;

    RecordingLogExporter(LogRecordExporter delegate) {
      this.delegate = delegate;
    }

    @Override
    public CompletableResultCode export(Collection<LogRecordData> logs) {
      List<LogRecordData> copy = new ArrayList<>(logs);
      CompletableResultCode r = delegate.export(logs);
      r.whenComplete(
          () -> {
            synchronized (KestraSim.this) {
              if (r.isSuccess()) {
                for (LogRecordData l : copy) {
                  exportedLogBodies.add(l.getBodyValue() == null ? "" : l.getBodyValue().asString());
                }
              } else {
                error("logs (" + copy.size() + " records)", r);
              }
            }
          });
      return r;
    }

    @Override
    public CompletableResultCode flush() {
      return delegate.flush();
    }

    @Override
    public CompletableResultCode shutdown() {
      return delegate.shutdown();
    }
  }

  private static String env(String key, String def) {
    String v = System.getenv(key);
    return v == null || v.isEmpty() ? def : v;
  }

  static Duration parseDuration(String s) {
    String t = s.trim();
    if (t.endsWith("ms")) {
      return Duration.ofMillis(Long.parseLong(t.substring(0, t.length() - 2)));
    }
    if (t.endsWith("s")) {
      t = t.substring(0, t.length() - 1);
    }
    return Duration.ofMillis(Math.round(Double.parseDouble(t) * 1000));
  }

  static Map<String, String> parseHeaders(String s) {
    Map<String, String> out = new LinkedHashMap<>();
    if (s == null || s.isBlank()) {
      return out;
    }
    for (String part : s.split(",")) {
      int eq = part.indexOf('=');
      if (eq > 0) {
        out.put(part.substring(0, eq).trim(), part.substring(eq + 1).trim());
      }
    }
    return out;
  }

  static String json(Object o) {
    if (o == null) {
      return "null";
    }
    if (o instanceof Boolean || o instanceof Integer || o instanceof Long) {
      return o.toString();
    }
    if (o instanceof Collection<?> c) {
      StringBuilder b = new StringBuilder("[");
      boolean first = true;
      for (Object e : c) {
        if (!first) {
          b.append(',');
        }
        first = false;
        b.append(json(e));
      }
      return b.append(']').toString();
    }
    if (o instanceof Map<?, ?> m) {
      StringBuilder b = new StringBuilder("{");
      boolean first = true;
      for (Map.Entry<?, ?> e : m.entrySet()) {
        if (!first) {
          b.append(',');
        }
        first = false;
        b.append(json(e.getKey().toString())).append(':').append(json(e.getValue()));
      }
      return b.append('}').toString();
    }
    String s = o.toString();
    StringBuilder b = new StringBuilder("\"");
    for (char ch : s.toCharArray()) {
      switch (ch) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (ch < 0x20) {
            b.append(String.format("\\u%04x", (int) ch));
          } else {
            b.append(ch);
          }
        }
      }
    }
    return b.append('"').toString();
  }

  private static boolean join(CompletableResultCode r, Duration d) {
    return r.join(d.toMillis() + 5000, TimeUnit.MILLISECONDS).isSuccess();
  }

  private int run(String[] args) throws Exception {
    String tracesEndpoint =
        args.length > 0 ? args[0] : env("KESTRA_SIM_TRACES_ENDPOINT", "http://localhost:4317");
    String httpBase =
        args.length > 1 ? args[1] : env("KESTRA_SIM_HTTP_ENDPOINT", "http://localhost:4318");
    while (httpBase.endsWith("/")) {
      httpBase = httpBase.substring(0, httpBase.length() - 1);
    }
    String metricsEndpoint = httpBase + "/v1/metrics";
    String logsEndpoint = httpBase + "/v1/logs";
    String serviceName = env("KESTRA_SIM_SERVICE_NAME", "kestra");
    int nTraces = Integer.parseInt(env("SIM_TRACES", "2"));
    Duration timeout = parseDuration(env("SIM_TIMEOUT", "10s"));
    Map<String, String> headers = parseHeaders(System.getenv("SIM_HEADERS"));
    String caFile = System.getenv("SIM_CA_FILE");
    byte[] ca = caFile == null || caFile.isEmpty() ? null : Files.readAllBytes(Path.of(caFile));
    RetryPolicy retry =
        RetryPolicy.builder()
            .setMaxAttempts(5)
            .setInitialBackoff(Duration.ofMillis(200))
            .setMaxBackoff(Duration.ofSeconds(2))
            .build();

    OtlpGrpcSpanExporterBuilder sb =
        OtlpGrpcSpanExporter.builder()
            .setEndpoint(tracesEndpoint)
            .setTimeout(timeout)
            .setRetryPolicy(retry);
    OtlpHttpMetricExporterBuilder mb =
        OtlpHttpMetricExporter.builder()
            .setEndpoint(metricsEndpoint)
            .setTimeout(timeout)
            .setRetryPolicy(retry);
    OtlpHttpLogRecordExporterBuilder lb =
        OtlpHttpLogRecordExporter.builder()
            .setEndpoint(logsEndpoint)
            .setTimeout(timeout)
            .setRetryPolicy(retry);
    for (Map.Entry<String, String> h : headers.entrySet()) {
      sb.addHeader(h.getKey(), h.getValue());
      mb.addHeader(h.getKey(), h.getValue());
      lb.addHeader(h.getKey(), h.getValue());
    }
    if (ca != null) {
      sb.setTrustedCertificates(ca);
      mb.setTrustedCertificates(ca);
      lb.setTrustedCertificates(ca);
    }

    Resource resource =
        Resource.getDefault()
            .merge(
                Resource.create(
                    Attributes.of(
                        AttributeKey.stringKey("service.name"), serviceName,
                        AttributeKey.stringKey("service.namespace"), "kestra")));
    SdkTracerProvider tracerProvider =
        SdkTracerProvider.builder()
            .setResource(resource)
            .addSpanProcessor(
                BatchSpanProcessor.builder(new RecordingSpanExporter(sb.build()))
                    .setScheduleDelay(Duration.ofMillis(500))
                    .build())
            .build();
    SdkMeterProvider meterProvider =
        SdkMeterProvider.builder()
            .setResource(resource)
            .registerMetricReader(
                PeriodicMetricReader.builder(new RecordingMetricExporter(mb.build()))
                    .setInterval(Duration.ofHours(1))
                    .build())
            .build();
    SdkLoggerProvider loggerProvider =
        SdkLoggerProvider.builder()
            .setResource(resource)
            .addLogRecordProcessor(
                BatchLogRecordProcessor.builder(new RecordingLogExporter(lb.build()))
                    .setScheduleDelay(Duration.ofMillis(500))
                    .build())
            .build();

    Tracer tracer = tracerProvider.get("io.kestra.core.runners.Executor");
    Meter meter = meterProvider.get("io.kestra.core.metrics");
    Logger logger = loggerProvider.get("io.kestra.plugin.ee.core.log.LogShipper");
    LongCounter started =
        meter
            .counterBuilder("kestra.executor.execution.started.count")
            .setDescription("Executions started")
            .build();
    DoubleHistogram duration =
        meter
            .histogramBuilder("kestra.worker.job.duration")
            .setDescription("Task run duration")
            .setUnit("s")
            .build();
    List<String> metricNames =
        List.of("kestra.executor.execution.started.count", "kestra.worker.job.duration");

    Set<String> traceIds = new TreeSet<>();
    List<String> logBodies = new ArrayList<>();
    int spansSent = 0;
    for (int i = 0; i < nTraces; i++) {
      String executionId = String.format("sim-execution-%04d", i);
      Attributes flowAttrs =
          Attributes.of(NAMESPACE, "company.team", FLOW_ID, "opentelemetry_basic", EXECUTION_ID, executionId);
      Span root =
          tracer
              .spanBuilder("POST /api/v1/executions/{namespace}/{id}")
              .setSpanKind(SpanKind.SERVER)
              .setAllAttributes(flowAttrs)
              .startSpan();
      spansSent++;
      try (Scope ignored = root.makeCurrent()) {
        for (String task : List.of("hello", "log_export")) {
          Span child =
              tracer
                  .spanBuilder("Worker - " + task)
                  .setParent(Context.current())
                  .setAllAttributes(flowAttrs)
                  .setAttribute(TASK_ID, task)
                  .startSpan();
          spansSent++;
          try (Scope s = child.makeCurrent()) {
            String body = "execution " + executionId + " task " + task + " succeeded";
            logger
                .logRecordBuilder()
                .setSeverity(Severity.INFO)
                .setSeverityText("INFO")
                .setBody(body)
                .setAllAttributes(flowAttrs)
                .emit();
            logBodies.add(body);
            duration.record(0.05 * (i + 1), flowAttrs);
          } finally {
            child.end();
          }
        }
        started.add(1, Attributes.of(NAMESPACE, "company.team", FLOW_ID, "opentelemetry_basic"));
      } finally {
        root.end();
      }
      traceIds.add(root.getSpanContext().getTraceId());
    }

    Duration flushWait = timeout.plusSeconds(5);
    boolean tOk = join(tracerProvider.forceFlush(), flushWait);
    boolean mOk = join(meterProvider.forceFlush(), flushWait);
    boolean lOk = join(loggerProvider.forceFlush(), flushWait);
    join(tracerProvider.shutdown(), flushWait);
    join(loggerProvider.shutdown(), flushWait);
    // The meter provider is not shut down: shutdown would export the (cumulative) metrics a
    // second time; one export per run keeps the downstream counts simple.

    Map<String, Object> out = new LinkedHashMap<>();
    synchronized (this) {
      if (!tOk) {
        errors.add("traces force flush did not succeed");
      }
      if (!mOk) {
        errors.add("metrics force flush did not succeed");
      }
      if (!lOk) {
        errors.add("logs force flush did not succeed");
      }
      if (!exportedTraceIds.containsAll(traceIds) || spansExported != spansSent) {
        errors.add("not every span was exported: sent " + spansSent + ", exported " + spansExported);
      }
      if (!exportedMetricNames.containsAll(metricNames)) {
        errors.add("not every metric was exported: exported " + exportedMetricNames);
      }
      if (!exportedLogBodies.containsAll(logBodies)) {
        errors.add("not every log record was exported: exported " + exportedLogBodies.size());
      }
      out.put("service_name", serviceName);
      out.put("traces_endpoint", tracesEndpoint);
      out.put("metrics_endpoint", metricsEndpoint);
      out.put("logs_endpoint", logsEndpoint);
      out.put("trace_ids", traceIds);
      out.put("spans_sent", spansSent);
      out.put("spans_exported", spansExported);
      out.put("exported_trace_ids", exportedTraceIds);
      out.put("metric_names", metricNames);
      out.put("exported_metric_names", exportedMetricNames);
      out.put("metric_exports", metricExports);
      out.put("log_bodies", logBodies);
      out.put("exported_log_bodies", exportedLogBodies);
      out.put("errors", errors);
      out.put("ok", errors.isEmpty());
    }
    System.out.println(json(out));
    System.out.flush();
    return errors.isEmpty() ? 0 : 1;
  }

  public static void main(String[] args) {
    int rc;
    try {
      rc = new KestraSim().run(args);
    } catch (Exception e) {
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("errors", List.of(e.toString()));
      out.put("ok", false);
      System.out.println(json(out));
      rc = 2;
    }
    System.out.flush();
    System.exit(rc);
  }
}
