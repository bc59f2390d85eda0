"""Runs one scenario against one target (the gateway or otelcol-ref) and measures it, under one of
two loads.

`run_one`, the closed loop (`python -m bench run`): a fixed number of requests in flight, as fast as
the target answers. The CPU window opens once the target is healthy and closes when delivery has
drained, so it holds exactly the work of forwarding the load; the figure is spans per CPU-second.

`run_rate`, the open loop (`python -m bench rate`): many connections, each sending one request per
period whatever the target does (`bench/rateload.py`). The CPU window is a fixed stretch of wall
time after a warm-up; the figure is the target's CPU share at that offered rate, CPU-seconds /
wall-seconds, as the Collector's testbed reports it.

CPU is read from /proc for the target and all its children. Spans lost = accepted x fan-out -
dropped by processors (sampler) x fan-out - delivered.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen, procstat, rateload
from bench.scenarios import Ports, Scenario, Target
from bench.sink import CountingSink

REPO = Path(__file__).resolve().parent.parent


def collector_binary() -> Path | None:
    base = os.environ.get("OTELGW_PEERS_DIR") or str(Path.home() / ".cache" / "otel-gateway" / "peers")
    path = Path(base) / "bin" / "otelcol-ref"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_R = TypeVar("_R", bound="Outcome")


@dataclass
class Outcome:
    """What every run records, whichever load drove it."""

    scenario: str
    target: Target
    workers: int = 1
    spans: int = 512  # spans per request
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    exit_code: int | None = None

    @classmethod
    def from_dict(cls: type[_R], d: dict[str, Any]) -> _R:
        """Back from results.json (derived figures are recomputed, unknown keys ignored)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class RunResult(Outcome):
    """One closed-loop run (`python -m bench run`)."""

    accepted: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    refused_requests: int = 0
    load_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_total: int = 0
    peak_rss_process: int = 0
    steady_rss_process: int = 0  # the median sample of the second half of the load (largest process)
    processes: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    # Tail sampling (scenarios with a decision_wait) only: the largest process's RSS before the load,
    # the traces pending a decision (the median of the target's own counters over the second half of
    # the load), spans per trace in the payload, and pending spans with where that figure came from:
    # "metrics" (pending traces x spans per trace) or "estimate" (accepted spans/s x decision_wait).
    rss_before_process: int = 0
    pending_traces: float = 0.0
    spans_per_trace: float = 0.0
    pending_spans: float = 0.0
    pending_source: str = ""

    @property
    def bytes_per_pending_span(self) -> float:
        """(steady RSS - RSS before the load) / pending spans, of the largest process."""
        if not self.pending_spans:
            return float("nan")
        return (self.steady_rss_process - self.rss_before_process) / self.pending_spans

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.load_seconds if self.load_seconds else 0.0

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.load_seconds if self.load_seconds else 0.0

    @property
    def spans_per_cpu_s(self) -> float:
        return self.accepted / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_seconds / self.accepted * 1e6 if self.accepted else float("nan")

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(accepted_per_s=self.accepted_per_s, delivered_per_s=self.delivered_per_s,
                 spans_per_cpu_s=self.spans_per_cpu_s, cpu_per_million=self.cpu_per_million,
                 bytes_per_pending_span=self.bytes_per_pending_span)
        return d


@dataclass
class RateResult(Outcome):
    """One fixed-rate run (`python -m bench rate`): `connections` clients, each one request of `spans`
    spans every 1/`rate` seconds. CPU and the sent-in-window count cover the measurement window
    only; sent, acked, delivered and lost cover the whole run (warm-up included)."""

    connections: int = 0  # client connections asked for
    rate: float = 0.0  # requests per second per connection
    connected: int = 0  # the generator's connections that came up
    established: int = 0  # TCP connections the target's receiver held mid-window (/proc/net/tcp)
    senders: int = 0  # generator processes
    window_seconds: float = 0.0
    cpu_seconds: float = 0.0  # the target's, in the window
    cpu_share_max: float = 0.0  # the busiest stretch of about one second in the window
    sent: int = 0
    sent_in_window: int = 0
    acked: int = 0
    acked_spans: int = 0
    failed: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    peak_rss_total: int = 0
    peak_rss_process: int = 0
    steady_rss_process: int = 0  # the median sample over the window (largest process)
    processes: int = 0
    lag_p99_ms: float = float("nan")  # how late the generator sent against its schedule
    lag_max_ms: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    generator_cpu_seconds: float = 0.0  # all sender processes, in the window

    @property
    def offered_per_s(self) -> float:
        return self.connections * self.rate

    @property
    def achieved_per_s(self) -> float:
        return self.sent_in_window / self.window_seconds if self.window_seconds else 0.0

    @property
    def cpu_share(self) -> float:
        """CPU-seconds per wall-second: 1.0 is one core busy."""
        return self.cpu_seconds / self.window_seconds if self.window_seconds else 0.0

    @property
    def generator_share(self) -> float:
        return self.generator_cpu_seconds / self.window_seconds if self.window_seconds else 0.0

    @property
    def cpu_per_million(self) -> float:
        spans = self.sent_in_window * self.spans
        return self.cpu_seconds / spans * 1e6 if spans else float("nan")

    @property
    def behind(self) -> bool:
        """The generator did not hold the offered rate (3% short, beyond the window's edge effects, or
        sends 10% of a period late at p99): the figure is for a lower rate."""
        expected = self.offered_per_s * self.window_seconds
        # Each connection sends one more or one fewer in the window depending on its phase.
        short = expected - self.sent_in_window > max(0.03 * expected, 1.5 * self.connections**0.5)
        late = self.rate > 0 and self.lag_p99_ms / 1000 > 0.1 / self.rate
        return self.status == "ok" and (short or late)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(offered_per_s=self.offered_per_s, achieved_per_s=self.achieved_per_s, cpu_share=self.cpu_share,
                 generator_share=self.generator_share, cpu_per_million=self.cpu_per_million, behind=self.behind)
        return d


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


def _metrics(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _total(m: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def dropped_in_pipeline(m: dict[str, list[tuple[dict[str, str], float]]]) -> int:
    """Items the processors let go on purpose (the sampler), from either side's own metrics."""
    if "otelcol_gateway_pipeline_incoming_items_total" in m:
        # A request a processor refused (the tail sampler's max_pending_bytes) entered the pipeline, but
        # its client was told so: it is not accepted, not dropped.
        refused = sum(_total(m, f"otelcol_processor_refused_{kind}_total")
                      for kind in ("spans", "metric_points", "log_records"))
        return int(_total(m, "otelcol_gateway_pipeline_incoming_items_total")
                   - _total(m, "otelcol_gateway_pipeline_outgoing_items_total") - refused)
    if "otelcol_processor_incoming_items_total" in m:
        by_proc: dict[str, float] = {}
        for lab, v in m["otelcol_processor_incoming_items_total"]:
            by_proc[lab.get("processor", "")] = by_proc.get(lab.get("processor", ""), 0) + v
        for lab, v in m.get("otelcol_processor_outgoing_items_total", []):
            by_proc[lab.get("processor", "")] = by_proc.get(lab.get("processor", ""), 0) - v
        return int(sum(by_proc.values()))
    if _TAIL_SPANS in m:
        # The Collector's tail sampler counts spans per policy only. With sample_on_first_match (scenario
        # f), each policy sees the traces no earlier one kept, so the last policy's not-sampled spans (the
        # fewest of any policy's) are the spans of the traces dropped; plus late spans of dropped traces.
        not_sampled: dict[str, float] = {}
        for lab, v in m[_TAIL_SPANS]:
            if lab.get("sampled") == "false":
                not_sampled[lab.get("policy", "")] = not_sampled.get(lab.get("policy", ""), 0) + v
        late = _total(m, "otelcol_processor_tail_sampling_early_releases_from_cache_decision_total", sampled="false")
        return int(min(not_sampled.values(), default=0) + late)
    return int(_total(m, "otelcol_processor_probabilistic_sampler_count_traces_sampled_total", sampled="false"))


_TAIL_SPANS = "otelcol_processor_tail_sampling_count_spans_sampled_total"


def pending_traces(m: dict[str, list[tuple[dict[str, str], float]]]) -> float | None:
    """Traces a tail sampler holds undecided: new trace ids less decisions, from either side's own
    counters (the same names on both). Not `sampling_traces_on_memory`: the Collector's also counts
    decided traces it keeps for late spans (until `num_traces` pushes them out)."""
    new = m.get("otelcol_processor_tail_sampling_new_trace_id_received_total")
    if new is None:
        return None
    # A trace the Collector let go undecided (num_traces reached) is no longer pending either.
    gone = _total(m, "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total")
    decided = _total(m, "otelcol_processor_tail_sampling_global_count_traces_sampled_total")
    return sum(v for _, v in new) - decided - gone


def _validate(config: Path) -> str | None:
    proc = subprocess.run([sys.executable, "-m", "gateway", "validate", "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("invalid config")]
    return "; ".join(lines[:3]) or f"validate exited {proc.returncode}"


def _start(target: Target, config: Path, workdir: Path, profile: Path | None,
           collector_flags: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    log = (workdir / "target.log").open("wb")
    if target == "gateway":
        cmd = [sys.executable, "-m", "gateway", "--config", str(config)]
        if profile is not None:
            # py-spy samples from outside the process (CPU figures then include py-spy itself).
            mode = ["--native"] if os.environ.get("BENCH_PYSPY_NATIVE") else ["--nonblocking"]
            cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw", "--rate", "200",
                   "--subprocesses", *mode, "-o", str(profile), "--", *cmd]
    else:
        binary = collector_binary()
        assert binary is not None
        cmd = [str(binary), "--config", str(config), *collector_flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=REPO if target == "gateway" else workdir, env=env)


def _stop(proc: subprocess.Popen[bytes], profiled: bool, timeout: float = 30.0) -> int | None:
    if proc.poll() is None:
        if profiled:
            # Stop the gateway under py-spy; py-spy then writes its profile and exits with it.
            for pid in procstat.children(proc.pid):
                os.kill(pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _tail(workdir: Path) -> str:
    try:
        return (workdir / "target.log").read_text(errors="replace")[-1500:]
    except OSError:
        return ""


# `python -m bench run --own-traces RATIO`: the gateway also traces itself at RATIO, to a sink of its
# own (so its spans are not counted as delivered), to measure what its own telemetry costs.
OWN_TRACES_ENV = "OTELGW_BENCH_OWN_TRACES"


def with_own_traces(config: str, ratio: float, port: int) -> str:
    """The config with `service::telemetry::traces` exporting the gateway's own spans at `ratio`."""
    block = (f"    traces:\n"
             f"      sampler: {{trace_id_ratio_based: {{ratio: {ratio}}}}}\n"
             f"      processors:\n"
             f"        - batch: {{exporter: {{otlp: {{protocol: grpc, insecure: true,\n"
             f"                                        endpoint: \"127.0.0.1:{port}\"}}}}}}\n")
    assert "\n  telemetry:\n" in config, "the scenario's config has no service::telemetry section"
    return config.replace("\n  telemetry:\n", "\n  telemetry:\n" + block, 1)


# `python -m bench run --tap COMPONENT`: a tap stays open on COMPONENT's inputs at its default rate
# while the load runs (the admin endpoint on a free port), to measure what an open tap costs.
TAP_ENV = "OTELGW_BENCH_TAP"


def with_admin(config: str, port: int) -> str:
    """The config with the admin endpoint on `port`."""
    assert "\nservice:\n" in config, "the scenario's config has no service section"
    return config.replace("\nservice:\n", f'\nservice:\n  admin: {{endpoint: "127.0.0.1:{port}"}}\n', 1)


class TapReader(threading.Thread):
    """Reads a tap's stream (`/api/v1/tap`) until `stop`, counting its lines."""

    def __init__(self, port: int, component: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.path = f"/api/v1/tap?component={urllib.parse.quote(component)}&direction=in"
        self.lines = 0
        self.error = ""
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self._stopping = False

    def run(self) -> None:
        try:
            self._conn.request("GET", self.path)
            resp = self._conn.getresponse()
            if resp.status != 200:
                self.error = f"tap refused: HTTP {resp.status} {resp.read(200)!r}"
                return
            for _ in resp:
                self.lines += 1
        except (OSError, http.client.HTTPException) as exc:
            if not self._stopping:
                self.error = f"tap failed: {type(exc).__name__}: {exc}"

    def stop(self) -> str:
        self._stopping = True
        if self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(socket.SHUT_RDWR)
        self.join(5)
        self._conn.close()
        return self.error or f"{self.lines} lines"


class _Running(NamedTuple):
    proc: subprocess.Popen[bytes]
    ports: Ports
    sink: CountingSink
    workdir: Path


def _run_target(res: Outcome, scenario: Scenario, workers: int, keep: bool, profile: Path | None,
                measure: Callable[[_Running], None]) -> None:
    """Start the sink and the target with the scenario's config, wait until it is healthy, `measure`,
    stop it; a skipped or failed start is recorded in `res`."""
    target = res.target
    if target == "collector" and collector_binary() is None:
        res.status, res.reason = "skipped", "otelcol-ref not built (bash .ci/peers.sh)"
        return
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.key}-{target}-"))
    (workdir / "storage").mkdir()
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    own = os.environ.get(OWN_TRACES_ENV) if target == "gateway" else None
    tap = os.environ.get(TAP_ENV) if target == "gateway" else None
    try:
        with CountingSink() as sink, (CountingSink() if own else contextlib.nullcontext()) as own_sink:
            config = workdir / "config.yaml"
            text = scenario.config(target, ports, sink.port, str(workdir), workers)
            if own and own_sink is not None:
                text = with_own_traces(text, float(own), own_sink.port)
            reader = TapReader(free_port(), tap) if tap else None
            if reader is not None:
                text = with_admin(text, reader.port)
            config.write_text(text)
            if target == "gateway":
                problem = _validate(config)
                if problem:
                    res.status, res.reason = "skipped", f"gateway cannot run this config yet: {problem}"
                    return
            proc = _start(target, config, workdir, profile if target == "gateway" else None, scenario.collector_flags)
            try:
                deadline = time.monotonic() + 60
                while _http_status(f"http://127.0.0.1:{ports.health}/") != 200:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        res.status, res.reason = "failed", f"not healthy (exit {proc.poll()}): {_tail(workdir)}"
                        return
                    time.sleep(0.05)
                if reader is not None:
                    reader.start()
                measure(_Running(proc, ports, sink, workdir))
                if reader is not None:
                    got = reader.stop()
                    if res.status == "ok":
                        res.reason = f"{res.reason}; tap open on {tap}: {got}".lstrip("; ")
            finally:
                res.exit_code = _stop(proc, profile is not None and target == "gateway")
                if res.status == "ok" and res.exit_code != 0:
                    res.reason = f"exit code {res.exit_code} at shutdown"
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _drain(sink: CountingSink) -> None:
    """Wait until the sink's count has not moved for longer than the batch timeout, twice over."""
    last, still_since = sink.spans(), time.monotonic()
    drain_deadline = time.monotonic() + 60
    while time.monotonic() - still_since < 1.0 and time.monotonic() < drain_deadline:
        time.sleep(0.05)
        now = sink.spans()
        if now != last:
            last, still_since = now, time.monotonic()


def run_one(scenario: Scenario, target: Target, load: loadgen.LoadSpec, workers: int = 1,
            keep: bool = False, profile: Path | None = None) -> RunResult:
    res = RunResult(scenario.key, target, workers, load.payload.spans_per_request)
    _run_target(res, scenario, workers, keep, profile, lambda t: _measure(res, scenario, t, load))
    return res


def _measure(res: RunResult, scenario: Scenario, t: _Running, load: loadgen.LoadSpec) -> None:
    port = t.ports.grpc if scenario.transport == "grpc" else t.ports.http
    spec = replace(load, target=f"127.0.0.1:{port}", transport=scenario.transport)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        before = procstat.sample(t.proc.pid)
        pending = pool.apply_async(loadgen.run, (spec,))
        peak_total, peak_proc, nproc = before.rss_bytes, before.max_rss_bytes, before.processes
        started = time.monotonic()
        steady: list[int] = []  # samples once half the load's time has passed
        held: list[float] = []  # traces pending in a tail sampler, about once a second, over the same half
        scraped = 0.0
        while not pending.ready():
            s = procstat.sample(t.proc.pid)
            peak_total, peak_proc = max(peak_total, s.rss_bytes), max(peak_proc, s.max_rss_bytes)
            nproc = max(nproc, s.processes)
            now = time.monotonic()
            if now - started >= load.duration / 2:
                steady.append(s.max_rss_bytes)
                if scenario.decision_wait and now - scraped >= 1.0:
                    scraped = now
                    n = pending_traces(_metrics(t.ports.metrics))
                    if n is not None:
                        held.append(n)
            pending.wait(0.25)
        out: loadgen.LoadResult = pending.get()
    if scenario.decision_wait:
        _decided(t.ports.metrics, scenario.decision_wait)
    _drain(t.sink)
    after = procstat.sample(t.proc.pid)
    metrics = _metrics(t.ports.metrics)
    res.accepted = out.ok_spans
    res.refused_requests = out.failed_requests
    res.delivered = t.sink.spans()
    res.dropped = dropped_in_pipeline(metrics)
    res.lost = res.accepted * scenario.fanout - res.dropped * scenario.fanout - res.delivered
    res.load_seconds = out.elapsed
    res.cpu_seconds = after.cpu_seconds - before.cpu_seconds
    res.peak_rss_total, res.peak_rss_process, res.processes = peak_total, peak_proc, nproc
    res.steady_rss_process = int(statistics.median(steady)) if steady else peak_proc
    res.p50_ms = loadgen.percentile(out.latencies, 0.50) * 1000
    res.p99_ms = loadgen.percentile(out.latencies, 0.99) * 1000
    if scenario.decision_wait:
        res.rss_before_process, res.spans_per_trace = before.max_rss_bytes, out.spans_per_trace
        if held:
            res.pending_traces = statistics.median(held)
            res.pending_spans, res.pending_source = res.pending_traces * out.spans_per_trace, "metrics"
        else:
            res.pending_spans, res.pending_source = res.accepted_per_s * scenario.decision_wait, "estimate"
    if out.errors:
        res.reason = "refused: " + ", ".join(f"{k} x{v}" for k, v in out.errors.items())
        why = [f"{lab.get('reason', '?')}: {v:,.0f} spans" for lab, v in
               metrics.get("otelcol_gateway_processor_tail_sampling_refused_spans_total", []) if v]
        if why:
            res.reason += f" (tail_sampling refused {', '.join(why)})"


def _decided(metrics_port: int, decision_wait: float) -> None:
    """Wait until the tail sampler has decided every trace it holds (its counters say so), so the drain
    that follows waits for the last kept traces rather than stopping in a gap between ticks."""
    deadline = time.monotonic() + decision_wait + 60
    while time.monotonic() < deadline:
        n = pending_traces(_metrics(metrics_port))
        if n is None or n <= 0:
            return
        time.sleep(0.2)


def run_rate(scenario: Scenario, target: Target, load: rateload.RateSpec, workers: int = 1,
             keep: bool = False, profile: Path | None = None) -> RateResult:
    res = RateResult(scenario.key, target, workers, load.payload.spans_per_request, connections=load.connections,
                     rate=load.rate, senders=len(load.shares()))
    if scenario.transport != "grpc":
        res.status, res.reason = "skipped", "the fixed-rate load speaks OTLP/gRPC only"
        return res
    _run_target(res, scenario, workers, keep, profile, lambda t: _measure_rate(res, scenario, t, load))
    return res


def _max_share(samples: list[tuple[float, float]], span: float = 1.0) -> float:
    """The largest CPU share over any stretch of at least `span` seconds between (time, cpu) samples."""
    best, j = 0.0, 0
    for i, (t0, c0) in enumerate(samples):
        j = max(j, i + 1)
        while j < len(samples) and samples[j][0] - t0 < span:
            j += 1
        if j == len(samples):
            break
        t1, c1 = samples[j]
        best = max(best, (c1 - c0) / (t1 - t0))
    return best


def _measure_rate(res: RateResult, scenario: Scenario, t: _Running, load: rateload.RateSpec) -> None:
    spec = replace(load, target=f"127.0.0.1:{t.ports.grpc}")
    shares = spec.shares()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(shares) + 1)
    results: Queue[rateload.RateLoadResult] = ctx.Queue()
    senders = [ctx.Process(target=rateload.sender, args=(i, spec, n, barrier, results), daemon=True)
               for i, n in enumerate(shares)]
    for p in senders:
        p.start()
    try:
        out = rateload.RateLoadResult()
        try:
            # Every sender has its connections up (or one gave up and broke the barrier).
            barrier.wait(timeout=60 + spec.connections / 20)
        except threading.BrokenBarrierError:
            pass
        else:
            t0 = time.monotonic()
            win_start, win_end = t0 + spec.warmup, t0 + spec.warmup + spec.duration
            before = after = procstat.sample(t.proc.pid)
            peak_total, peak_proc, nproc = before.rss_bytes, before.max_rss_bytes, before.processes
            steady: list[int] = []
            cpu: list[tuple[float, float]] = []  # (time, cpu-seconds) in the window
            t_before = t_after = t0
            while True:
                now = time.monotonic()
                s = procstat.sample(t.proc.pid)
                peak_total, peak_proc = max(peak_total, s.rss_bytes), max(peak_proc, s.max_rss_bytes)
                nproc = max(nproc, s.processes)
                if now >= win_start:
                    if not cpu:
                        before, t_before = s, now
                    cpu.append((now, s.cpu_seconds))
                    steady.append(s.max_rss_bytes)
                    if not res.established and now >= win_start + spec.duration / 2:
                        res.established = procstat.established(t.ports.grpc)
                if now >= win_end:
                    after, t_after = s, now
                    break
                edge = win_start if now < win_start else win_end
                time.sleep(max(0.0, min(0.25, edge - time.monotonic())))
            res.window_seconds = t_after - t_before
            res.cpu_seconds = after.cpu_seconds - before.cpu_seconds
            res.cpu_share_max = _max_share(cpu)
            res.peak_rss_total, res.peak_rss_process, res.processes = peak_total, peak_proc, nproc
            res.steady_rss_process = int(statistics.median(steady)) if steady else peak_proc
        deadline = time.monotonic() + spec.warmup + spec.duration + 90
        for _ in senders:
            try:
                out.merge(results.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                out.problems.append("a sender process gave no result")
                break
    finally:
        for p in senders:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    if out.problems or not res.window_seconds:
        res.status = "failed"
        res.reason = "; ".join(out.problems) or "the senders did not start"
        return
    if scenario.decision_wait:
        _decided(t.ports.metrics, scenario.decision_wait)
    _drain(t.sink)
    metrics = _metrics(t.ports.metrics)
    res.connected = out.connected
    res.sent, res.sent_in_window = out.sent, out.sent_in_window
    res.acked, res.acked_spans, res.failed = out.ok_requests, out.ok_spans, out.failed_requests
    res.delivered = t.sink.spans()
    res.dropped = dropped_in_pipeline(metrics)
    res.lost = res.acked_spans * scenario.fanout - res.dropped * scenario.fanout - res.delivered
    res.generator_cpu_seconds = out.cpu_seconds
    res.lag_p99_ms = loadgen.percentile(out.lags, 0.99) * 1000
    res.lag_max_ms = max(out.lags, default=float("nan")) * 1000
    res.p50_ms = loadgen.percentile(out.latencies, 0.50) * 1000
    res.p99_ms = loadgen.percentile(out.latencies, 0.99) * 1000
    if out.errors:
        res.reason = "refused: " + ", ".join(f"{k} x{v}" for k, v in out.errors.items())
