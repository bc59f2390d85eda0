"""bench/RESULTS.md (the table, the command, the machine) and bench/results.png (spans per
CPU-second per scenario, gateway beside the Collector)."""

from __future__ import annotations

import json
import math
import os
import platform
import textwrap
from collections.abc import Sequence
from pathlib import Path

from bench.runner import RunResult
from bench.scenarios import SCENARIOS

MIB = 1024 * 1024


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import google.protobuf
    import grpc
    from google.protobuf.internal import api_implementation

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "protobuf": f"{google.protobuf.__version__} ({api_implementation.Type()})",
        "grpcio": grpc.__version__,
    }


def _label(r: RunResult) -> str:
    if r.target == "collector":
        return "otelcol-ref"
    return "gateway" if r.workers == 1 else f"gateway x{r.workers} workers"


def _fmt(x: float, unit: str = "", digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def _collector_for(results: Sequence[RunResult], scenario: str) -> RunResult | None:
    for r in results:
        if r.scenario == scenario and r.target == "collector" and r.status == "ok":
            return r
    return None


def table(results: Sequence[RunResult]) -> str:
    head = ("| scenario | target | spans/s accepted | spans/s delivered | CPU-s per 1M spans | spans per CPU-s "
            "| vs Collector | RSS per process, steady / peak (MiB) | p50 / p99 latency (ms) | lost |")
    rows = [head, "|" + "---|" * 10]
    for r in results:
        name = f"{r.scenario}: {SCENARIOS[r.scenario].title}"
        if r.status != "ok":
            rows.append(f"| {name} | {_label(r)} | {r.status}: {r.reason} |  |  |  |  |  |  |  |")
            continue
        col = _collector_for(results, r.scenario)
        ratio = "1.00" if r.target == "collector" else (
            f"**{r.spans_per_cpu_s / col.spans_per_cpu_s:.2f}x**" if col and col.spans_per_cpu_s else "-")
        lost = str(r.lost) + ("" if r.lost == 0 else " (!)")
        rows.append(
            f"| {name} | {_label(r)} | {_fmt(r.accepted_per_s)} | {_fmt(r.delivered_per_s)} "
            f"| {_fmt(r.cpu_per_million, digits=2)} | {_fmt(r.spans_per_cpu_s)} | {ratio} "
            f"| {_fmt(r.steady_rss_process / MIB, digits=1)} / {_fmt(r.peak_rss_process / MIB, digits=1)}"
            f"{'' if r.processes <= 1 else f' ({r.processes} procs, {r.peak_rss_total / MIB:.0f} total)'} "
            f"| {_fmt(r.p50_ms, digits=2)} / {_fmt(r.p99_ms, digits=2)} | {lost} |"
        )
    return "\n".join(rows)


def notes(results: Sequence[RunResult]) -> list[str]:
    out = []
    for r in results:
        if r.status == "ok" and r.reason:
            out.append(f"- {r.scenario} / {_label(r)}: {r.reason}")
        if r.status == "ok" and r.dropped:
            out.append(f"- {r.scenario} / {_label(r)}: {r.dropped:,} spans sampled out by the pipeline "
                       "(not lost: counted from the target's own metrics)")
    return out


def write(results: Sequence[RunResult], out_dir: Path, command: str, load_desc: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    m = machine()
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"protobuf {m['protobuf']}, grpcio {m['grpcio']}.",
        "",
        f"Load: {load_desc}.",
        "",
        "CPU is user+system seconds of the target and all its child processes (from /proc), from the moment "
        "it is healthy until delivery has drained; spans per CPU-second = accepted spans / those seconds. "
        "Latency is the round trip a request takes at the load generator (the gateway answers once its "
        "pipelines hold the request). Lost = accepted x fan-out - sampled out - delivered at the sink. "
        "The load generator and the counting sink run in their own processes on the same 2 cores, so "
        "throughput (spans/s) is bounded by them too; spans per CPU-second is the comparable figure. "
        "RSS is the largest process's: steady is the median of the samples (every 0.25 s) over the second "
        "half of the load, peak the largest sample.",
        "",
        table(results),
        "",
    ]
    extra = notes(results)
    if extra:
        lines += ["Notes:", "", *extra, ""]
    lines += ["![spans per CPU-second](results.png)", ""]
    path = out_dir / "RESULTS.md"
    path.write_text("\n".join(lines))
    (out_dir / "results.json").write_text(json.dumps([r.as_dict() for r in results], indent=1) + "\n")
    plot(results, out_dir / "results.png")
    return path


def plot(results: Sequence[RunResult], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scenarios = list(dict.fromkeys(r.scenario for r in results))
    labels = list(dict.fromkeys(_label(r) for r in results))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(scenarios)), 4.5))
    for i, label in enumerate(labels):
        xs, ys = [], []
        for j, s in enumerate(scenarios):
            for r in results:
                if r.scenario == s and _label(r) == label and r.status == "ok":
                    xs.append(j + i * width)
                    ys.append(r.spans_per_cpu_s / 1000)
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(scenarios))])
    ax.set_xticklabels([f"{s}\n" + textwrap.fill(SCENARIOS[s].title, 22) for s in scenarios], fontsize=7)
    ax.set_ylabel("thousand spans per CPU-second")
    ax.set_title("Spans forwarded per CPU-second (higher is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
