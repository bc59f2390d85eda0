"""Runs one scenario against one target (the gateway or otelcol-ref) and measures it.

The CPU window opens once the target is healthy and closes when delivery has drained, so it holds
exactly the work of forwarding the load; CPU is read from /proc for the target and all its
children. Spans lost = accepted x fan-out - dropped by processors (sampler) x fan-out - delivered.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen, procstat
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


@dataclass
class RunResult:
    scenario: str
    target: Target
    workers: int = 1
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
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
    exit_code: int | None = None

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
                 spans_per_cpu_s=self.spans_per_cpu_s, cpu_per_million=self.cpu_per_million)
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
        return int(_total(m, "otelcol_gateway_pipeline_incoming_items_total")
                   - _total(m, "otelcol_gateway_pipeline_outgoing_items_total"))
    if "otelcol_processor_incoming_items_total" in m:
        by_proc: dict[str, float] = {}
        for lab, v in m["otelcol_processor_incoming_items_total"]:
            by_proc[lab.get("processor", "")] = by_proc.get(lab.get("processor", ""), 0) + v
        for lab, v in m.get("otelcol_processor_outgoing_items_total", []):
            by_proc[lab.get("processor", "")] = by_proc.get(lab.get("processor", ""), 0) - v
        return int(sum(by_proc.values()))
    return int(_total(m, "otelcol_processor_probabilistic_sampler_count_traces_sampled_total", sampled="false"))


def _validate(config: Path) -> str | None:
    proc = subprocess.run([sys.executable, "-m", "gateway", "validate", "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("invalid config")]
    return "; ".join(lines[:3]) or f"validate exited {proc.returncode}"


def _start(target: Target, config: Path, workdir: Path, profile: Path | None) -> subprocess.Popen[bytes]:
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
        cmd = [str(binary), "--config", str(config)]
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


def run_one(scenario: Scenario, target: Target, load: loadgen.LoadSpec, workers: int = 1,
            keep: bool = False, profile: Path | None = None) -> RunResult:
    res = RunResult(scenario.key, target, workers)
    if target == "collector" and collector_binary() is None:
        res.status, res.reason = "skipped", "otelcol-ref not built (bash .ci/peers.sh)"
        return res
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.key}-{target}-"))
    (workdir / "storage").mkdir()
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    try:
        with CountingSink() as sink:
            config = workdir / "config.yaml"
            config.write_text(scenario.config(target, ports, sink.port, str(workdir), workers))
            if target == "gateway":
                problem = _validate(config)
                if problem:
                    res.status, res.reason = "skipped", f"gateway cannot run this config yet: {problem}"
                    return res
            proc = _start(target, config, workdir, profile if target == "gateway" else None)
            try:
                return _measure(res, scenario, proc, ports, sink, load, workdir)
            finally:
                res.exit_code = _stop(proc, profile is not None and target == "gateway")
                if res.status == "ok" and res.exit_code != 0:
                    res.reason = f"exit code {res.exit_code} at shutdown"
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _measure(res: RunResult, scenario: Scenario, proc: subprocess.Popen[bytes], ports: Ports,
             sink: CountingSink, load: loadgen.LoadSpec, workdir: Path) -> RunResult:
    deadline = time.monotonic() + 60
    while _http_status(f"http://127.0.0.1:{ports.health}/") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            res.status, res.reason = "failed", f"not healthy (exit {proc.poll()}): {_tail(workdir)}"
            return res
        time.sleep(0.05)
    port = ports.grpc if scenario.transport == "grpc" else ports.http
    spec = loadgen.LoadSpec(f"127.0.0.1:{port}", scenario.transport, load.concurrency, load.connections,
                            load.duration, load.payload)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        before = procstat.sample(proc.pid)
        pending = pool.apply_async(loadgen.run, (spec,))
        peak_total, peak_proc, nproc = before.rss_bytes, before.max_rss_bytes, before.processes
        started = time.monotonic()
        steady: list[int] = []  # samples once half the load's time has passed
        while not pending.ready():
            s = procstat.sample(proc.pid)
            peak_total, peak_proc = max(peak_total, s.rss_bytes), max(peak_proc, s.max_rss_bytes)
            nproc = max(nproc, s.processes)
            if time.monotonic() - started >= load.duration / 2:
                steady.append(s.max_rss_bytes)
            pending.wait(0.25)
        out: loadgen.LoadResult = pending.get()
    # Drained: the sink's count has not moved for longer than the batch timeout, twice over.
    last, still_since = sink.spans(), time.monotonic()
    drain_deadline = time.monotonic() + 60
    while time.monotonic() - still_since < 1.0 and time.monotonic() < drain_deadline:
        time.sleep(0.05)
        now = sink.spans()
        if now != last:
            last, still_since = now, time.monotonic()
    after = procstat.sample(proc.pid)
    metrics = _metrics(ports.metrics)
    res.accepted = out.ok_spans
    res.refused_requests = out.failed_requests
    res.delivered = sink.spans()
    res.dropped = dropped_in_pipeline(metrics)
    res.lost = res.accepted * scenario.fanout - res.dropped * scenario.fanout - res.delivered
    res.load_seconds = out.elapsed
    res.cpu_seconds = after.cpu_seconds - before.cpu_seconds
    res.peak_rss_total, res.peak_rss_process, res.processes = peak_total, peak_proc, nproc
    res.steady_rss_process = int(statistics.median(steady)) if steady else peak_proc
    res.p50_ms = loadgen.percentile(out.latencies, 0.50) * 1000
    res.p99_ms = loadgen.percentile(out.latencies, 0.99) * 1000
    if out.errors:
        res.reason = "refused: " + ", ".join(f"{k} x{v}" for k, v in out.errors.items())
    return res
