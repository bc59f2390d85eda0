// Command hatchet-engine-sim behaves like the Hatchet engine's internal trace export
// (seed 000): OTLP over gRPC, TLS unless SERVER_OTEL_INSECURE=true, an Authorization
// header from SERVER_OTEL_COLLECTOR_AUTH, ParentBased(TraceIDRatioBased) head sampling,
// and the resource attributes service.name, library.language=go, k8s.pod.name and
// k8s.namespace.name.
//
// It emits SIM_SPANS spans (default 10) in traces named under "hatchet.run/", flushes,
// prints one JSON line on stdout describing what it sampled and exported, and exits
// non-zero when any export failed or a sampled trace was not exported.
//
// Environment (Hatchet's own):
//
//	SERVER_OTEL_COLLECTOR_URL   host:port, no scheme; empty disables export (like Hatchet)
//	SERVER_OTEL_SERVICE_NAME    service.name (default "server")
//	SERVER_OTEL_TRACE_ID_RATIO  head sampling ratio 0..1 (default 1)
//	SERVER_OTEL_INSECURE        "true" for plaintext (default false => TLS)
//	SERVER_OTEL_COLLECTOR_AUTH  value of the Authorization header (default empty)
//	K8S_POD_NAME, K8S_POD_NAMESPACE
//
// Environment (simulator only):
//
//	SIM_SPANS             number of spans to emit (default 10)
//	SIM_SPANS_PER_TRACE   spans per trace: one root + children (default 2)
//	SIM_CA_FILE           PEM CA bundle to trust instead of the system roots (TLS mode)
//	SIM_TLS_SERVER_NAME   override the TLS server name checked against the certificate
//	SIM_TIMEOUT           per-export timeout and retry budget, Go duration (default 10s)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
)

type report struct {
	Enabled          bool     `json:"enabled"`
	Endpoint         string   `json:"endpoint"`
	ServiceName      string   `json:"service_name"`
	Insecure         bool     `json:"insecure"`
	Ratio            float64  `json:"ratio"`
	SpansStarted     int      `json:"spans_started"`
	SpansSampled     int      `json:"spans_sampled"`
	SpansExported    int      `json:"spans_exported"`
	TraceIDs         []string `json:"trace_ids"`
	SampledTraceIDs  []string `json:"sampled_trace_ids"`
	ExportedTraceIDs []string `json:"exported_trace_ids"`
	Errors           []string `json:"errors"`
	OK               bool     `json:"ok"`
}

// recordingExporter wraps the OTLP exporter and records what was really accepted.
type recordingExporter struct {
	inner    sdktrace.SpanExporter
	mu       sync.Mutex
	exported map[string]struct{}
	spans    int
	errs     []string
}

func (r *recordingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := r.inner.ExportSpans(ctx, spans)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, fmt.Sprintf("export of %d spans failed: %v", len(spans), err))
		return err
	}
	for _, s := range spans {
		r.exported[s.SpanContext().TraceID().String()] = struct{}{}
	}
	r.spans += len(spans)
	return nil
}

func (r *recordingExporter) Shutdown(ctx context.Context) error { return r.inner.Shutdown(ctx) }

func envDefault(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) (int, error) {
	v := envDefault(key, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative integer, got %q", key, v)
	}
	return n, nil
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func emit(rep *report) {
	if rep.TraceIDs == nil {
		rep.TraceIDs = []string{}
	}
	if rep.SampledTraceIDs == nil {
		rep.SampledTraceIDs = []string{}
	}
	if rep.ExportedTraceIDs == nil {
		rep.ExportedTraceIDs = []string{}
	}
	if rep.Errors == nil {
		rep.Errors = []string{}
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
}

func fail(rep *report, err error) {
	rep.Errors = append(rep.Errors, err.Error())
	rep.OK = false
	emit(rep)
	os.Exit(1)
}

func main() {
	rep := &report{
		Endpoint:    os.Getenv("SERVER_OTEL_COLLECTOR_URL"),
		ServiceName: envDefault("SERVER_OTEL_SERVICE_NAME", "server"),
	}
	rep.Insecure = strings.EqualFold(envDefault("SERVER_OTEL_INSECURE", "false"), "true")

	ratio, err := strconv.ParseFloat(envDefault("SERVER_OTEL_TRACE_ID_RATIO", "1"), 64)
	if err != nil || ratio < 0 || ratio > 1 {
		fail(rep, fmt.Errorf("SERVER_OTEL_TRACE_ID_RATIO: want a number in [0,1], got %q",
			os.Getenv("SERVER_OTEL_TRACE_ID_RATIO")))
	}
	rep.Ratio = ratio
	nSpans, err := envInt("SIM_SPANS", 10)
	if err != nil {
		fail(rep, err)
	}
	perTrace, err := envInt("SIM_SPANS_PER_TRACE", 2)
	if err != nil {
		fail(rep, err)
	}
	if perTrace < 1 {
		perTrace = 1
	}
	timeout, err := time.ParseDuration(envDefault("SIM_TIMEOUT", "10s"))
	if err != nil {
		fail(rep, fmt.Errorf("SIM_TIMEOUT: %v", err))
	}

	if rep.Endpoint == "" {
		// Like Hatchet: an empty collector URL disables trace export.
		rep.OK = true
		emit(rep)
		return
	}
	rep.Enabled = true
	if strings.Contains(rep.Endpoint, "://") {
		fail(rep, fmt.Errorf("SERVER_OTEL_COLLECTOR_URL must be host:port without a scheme, got %q", rep.Endpoint))
	}

	ctx := context.Background()
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(rep.Endpoint),
		otlptracegrpc.WithTimeout(timeout),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
			Enabled:         true,
			InitialInterval: 200 * time.Millisecond,
			MaxInterval:     2 * time.Second,
			MaxElapsedTime:  timeout,
		}),
	}
	if rep.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	} else {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: os.Getenv("SIM_TLS_SERVER_NAME")}
		if caFile := os.Getenv("SIM_CA_FILE"); caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				fail(rep, fmt.Errorf("SIM_CA_FILE: %v", err))
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				fail(rep, fmt.Errorf("SIM_CA_FILE: no PEM certificate found in %s", caFile))
			}
			tlsCfg.RootCAs = pool
		}
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	}
	if auth := os.Getenv("SERVER_OTEL_COLLECTOR_AUTH"); auth != "" {
		opts = append(opts, otlptracegrpc.WithHeaders(map[string]string{"Authorization": auth}))
	}

	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		fail(rep, fmt.Errorf("creating OTLP gRPC exporter: %v", err))
	}
	rec := &recordingExporter{inner: exp, exported: map[string]struct{}{}}

	attrs := []attribute.KeyValue{
		attribute.String("service.name", rep.ServiceName),
		attribute.String("library.language", "go"),
	}
	if v := os.Getenv("K8S_POD_NAME"); v != "" {
		attrs = append(attrs, attribute.String("k8s.pod.name", v))
	}
	if v := os.Getenv("K8S_POD_NAMESPACE"); v != "" {
		attrs = append(attrs, attribute.String("k8s.namespace.name", v))
	}
	res := resource.NewSchemaless(attrs...)

	var handlerMu sync.Mutex
	var handled []string
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		handlerMu.Lock()
		defer handlerMu.Unlock()
		handled = append(handled, err.Error())
	}))

	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithBatcher(rec, sdktrace.WithBatchTimeout(500*time.Millisecond)),
	)
	tracer := tp.Tracer("github.com/hatchet-dev/hatchet/internal/telemetry")

	all := map[string]struct{}{}
	sampled := map[string]struct{}{}
	tenant := "707d0855-80ab-4e1f-a156-f1c4546cbf52"
	for i, trIdx := 0, 0; i < nSpans; trIdx++ {
		runID := fmt.Sprintf("run-%04d", trIdx)
		rootCtx, root := tracer.Start(ctx, "hatchet.run/workflow-run",
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("hatchet.tenant_id", tenant),
				attribute.String("hatchet.workflow_run_id", runID),
				attribute.String("hatchet.workflow_name", "sim-workflow"),
				attribute.Int("hatchet.sim.index", i),
			))
		i++
		rep.SpansStarted++
		if root.SpanContext().IsSampled() {
			rep.SpansSampled++
		}
		for c := 1; c < perTrace && i < nSpans; c++ {
			_, child := tracer.Start(rootCtx, "hatchet.run/step-run",
				trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(
					attribute.String("hatchet.tenant_id", tenant),
					attribute.String("hatchet.workflow_run_id", runID),
					attribute.String("hatchet.step_run_id", fmt.Sprintf("%s-step-%d", runID, c)),
					attribute.String("db.system", "postgresql"),
					attribute.Int("hatchet.sim.index", i),
				))
			if c%2 == 0 {
				child.SetAttributes(attribute.Bool("hatchet.retry", true))
			}
			child.End()
			i++
			rep.SpansStarted++
			if child.SpanContext().IsSampled() {
				rep.SpansSampled++
			}
		}
		root.End()
		id := root.SpanContext().TraceID().String()
		all[id] = struct{}{}
		if root.SpanContext().IsSampled() {
			sampled[id] = struct{}{}
		}
	}

	flushCtx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	if err := tp.ForceFlush(flushCtx); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("force flush: %v", err))
	}
	if err := tp.Shutdown(flushCtx); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("shutdown: %v", err))
	}

	rec.mu.Lock()
	rep.SpansExported = rec.spans
	rep.ExportedTraceIDs = sortedKeys(rec.exported)
	rep.Errors = append(rep.Errors, rec.errs...)
	rec.mu.Unlock()
	handlerMu.Lock()
	for _, h := range handled {
		rep.Errors = append(rep.Errors, "otel: "+h)
	}
	handlerMu.Unlock()
	rep.TraceIDs = sortedKeys(all)
	rep.SampledTraceIDs = sortedKeys(sampled)

	var missing []string
	for id := range sampled {
		if _, ok := rec.exported[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		rep.Errors = append(rep.Errors, fmt.Sprintf("%d sampled traces not exported: %s",
			len(missing), strings.Join(missing, ",")))
	}
	if rep.SpansExported != rep.SpansSampled && len(rep.Errors) == 0 {
		rep.Errors = append(rep.Errors, fmt.Sprintf("sampled %d spans but exported %d",
			rep.SpansSampled, rep.SpansExported))
	}
	rep.OK = len(rep.Errors) == 0
	emit(rep)
	if !rep.OK {
		os.Exit(1)
	}
}
