"""bench/RESULTS.md, bench/results.json and bench/results.png.

RESULTS.md has two sections, one per load, each with the command, commit and machine that made it:
the closed-loop grid (`python -m bench run`: spans per CPU-second by scenario and request size,
gateway beside the Collector, and the ratio) and the fixed-rate many-connections load (`python -m
bench rate`: CPU share at a fixed offered rate). Each command rewrites its own part of
results.json and keeps the other's, then renders RESULTS.md from both. results.png plots the grid.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.runner import REPO, RateResult, RunResult
from bench.scenarios import SCENARIOS

MIB = 1024 * 1024
GRID, RATE = "grid", "rate"


def machine() -> str:
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

    return (f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"protobuf {google.protobuf.__version__} ({api_implementation.Type()}), grpcio {grpc.__version__}")


def commit() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def _label(r: RunResult | RateResult) -> str:
    if r.target == "collector":
        return "otelcol-ref"
    return "gateway" if r.workers == 1 else f"gateway x{r.workers} workers"


def _fmt(x: float | None, unit: str = "", digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def _rss(steady: int, peak: int) -> str:
    return f"{_fmt(steady / MIB, digits=1)} / {_fmt(peak / MIB, digits=1)}"


def _lost(n: int) -> str:
    return str(n) + ("" if n == 0 else " (!)")


def _collector_for(results: Sequence[RunResult], scenario: str, spans: int) -> RunResult | None:
    for r in results:
        if r.scenario == scenario and r.spans == spans and r.target == "collector" and r.status == "ok":
            return r
    return None


def _ratio(r: RunResult, results: Sequence[RunResult]) -> float | None:
    col = _collector_for(results, r.scenario, r.spans)
    if r.status != "ok" or col is None or not col.spans_per_cpu_s:
        return None
    return r.spans_per_cpu_s / col.spans_per_cpu_s


def _rows(runs: Sequence[RunResult]) -> Iterator[tuple[int, RunResult | None, RunResult | None]]:
    """(request size, gateway run, Collector run) for each size and gateway worker count in a scenario."""
    for spans in dict.fromkeys(r.spans for r in runs):
        col = next((r for r in runs if r.spans == spans and r.target == "collector"), None)
        gws: list[RunResult | None] = [r for r in runs if r.spans == spans and r.target == "gateway"]
        for gw in gws or [None]:
            yield spans, gw, col


def _cell(r: RunResult | None) -> tuple[str, str, str]:
    """(spans per CPU-s, RSS, lost) of one side of a row."""
    if r is None:
        return "not run", "-", "-"
    if r.status != "ok":
        return r.status, "-", "-"
    return _fmt(r.spans_per_cpu_s), _rss(r.steady_rss_process, r.peak_rss_process), _lost(r.lost)


def side_by_side(results: Sequence[RunResult]) -> str:
    """One table per scenario, a row per request size (and gateway worker count): the gateway's
    spans per CPU-second beside the Collector's, the ratio, RSS and lost."""
    out: list[str] = []
    for key in dict.fromkeys(r.scenario for r in results):
        runs = [r for r in results if r.scenario == key]
        out += [f"#### {key}: {SCENARIOS[key].title}", "",
                "| spans/request | gateway | gateway spans per CPU-s | otelcol-ref spans per CPU-s "
                "| gateway / Collector | RSS steady / peak (MiB), gateway | RSS steady / peak (MiB), otelcol-ref "
                "| lost, gateway / otelcol-ref |",
                "|" + "---|" * 8]
        for spans, gw, col in _rows(runs):
            g, c = _cell(gw), _cell(col)
            ratio = _ratio(gw, results) if gw is not None else None
            out.append(f"| {spans} | {_label(gw) if gw else '-'} | {g[0]} | {c[0]} "
                       f"| {'-' if ratio is None else f'**{ratio:.2f}x**'} | {g[1]} | {c[1]} | {g[2]} / {c[2]} |")
        out.append("")
        if any(r.pending_source for r in runs):
            out += pending_memory(runs)
    return "\n".join(out)


def _pending(r: RunResult | None) -> tuple[str, str, str]:
    """(bytes per pending span, pending spans and how they were counted, RSS before -> steady)."""
    if r is None or r.status != "ok" or not r.pending_source:
        return ("not run" if r is None else r.status), "-", "-"
    if r.pending_source == "metrics":
        how = f"{r.pending_traces:,.0f} traces x {r.spans_per_trace:.1f}"
    else:
        how = f"estimate: {r.accepted_per_s:,.0f}/s x decision_wait"
    return (_fmt(r.bytes_per_pending_span), f"{_fmt(r.pending_spans)} ({how})",
            f"{_fmt(r.rss_before_process / MIB, digits=1)} → {_fmt(r.steady_rss_process / MIB, digits=1)}")


def pending_memory(runs: Sequence[RunResult]) -> list[str]:
    """Memory per pending span of a tail-sampling scenario, a row per request size (and gateway
    worker count): each side's RSS grown under the load over the spans it held undecided."""
    out = ["Memory per pending span: (steady RSS - the same process's RSS before the load) / spans pending a "
           "decision. Pending spans are the traces pending (new trace ids less decisions, from each side's own "
           "counters, the median of a scrape a second over the second half of the load) x the payload's spans "
           "per trace, or where a side has no counters, an estimate: accepted spans/s x decision_wait.", "",
           "| spans/request | gateway | bytes of RSS per pending span, gateway | otelcol-ref "
           "| otelcol-ref / gateway | pending spans, gateway | pending spans, otelcol-ref "
           "| RSS before → steady (MiB), gateway | otelcol-ref |",
           "|" + "---|" * 9]
    for spans, gw, col in _rows(runs):
        g, c = _pending(gw), _pending(col)
        ratio = "-"
        if gw is not None and col is not None and gw.pending_source and col.pending_source \
                and gw.bytes_per_pending_span > 0 and not math.isnan(col.bytes_per_pending_span):
            ratio = f"**{col.bytes_per_pending_span / gw.bytes_per_pending_span:.2f}x**"
        out.append(f"| {spans} | {_label(gw) if gw else '-'} | {g[0]} | {c[0]} | {ratio} | {g[1]} | {c[1]} "
                   f"| {g[2]} | {c[2]} |")
    return [*out, ""]


def table(results: Sequence[RunResult]) -> str:
    """Every closed-loop run, every figure."""
    head = ("| scenario | spans/request | target | spans/s accepted | spans/s delivered | CPU-s per 1M spans "
            "| spans per CPU-s | vs Collector | RSS per process, steady / peak (MiB) | p50 / p99 latency (ms) | lost |")
    rows = [head, "|" + "---|" * 11]
    for r in results:
        name = f"{r.scenario}: {SCENARIOS[r.scenario].title}"
        if r.status != "ok":
            rows.append(f"| {name} | {r.spans} | {_label(r)} | {r.status}: {r.reason} |  |  |  |  |  |  |  |")
            continue
        ratio = _ratio(r, results)
        shown = "1.00" if r.target == "collector" else ("-" if ratio is None else f"**{ratio:.2f}x**")
        procs = "" if r.processes <= 1 else f" ({r.processes} procs, {r.peak_rss_total / MIB:.0f} total)"
        rows.append(
            f"| {name} | {r.spans} | {_label(r)} | {_fmt(r.accepted_per_s)} | {_fmt(r.delivered_per_s)} "
            f"| {_fmt(r.cpu_per_million, digits=2)} | {_fmt(r.spans_per_cpu_s)} | {shown} "
            f"| {_rss(r.steady_rss_process, r.peak_rss_process)}{procs} "
            f"| {_fmt(r.p50_ms, digits=2)} / {_fmt(r.p99_ms, digits=2)} | {_lost(r.lost)} |"
        )
    return "\n".join(rows)


def notes(results: Sequence[RunResult | RateResult]) -> list[str]:
    out = []
    for r in results:
        where = f"{r.scenario} / {r.spans} spans / {_label(r)}"
        if r.status == "ok" and r.reason:
            out.append(f"- {where}: {r.reason}")
        if r.status == "ok" and r.dropped:
            out.append(f"- {where}: {r.dropped:,} spans sampled out by the pipeline "
                       "(not lost: counted from the target's own metrics)")
        if isinstance(r, RateResult) and r.behind:
            out.append(f"- {where}: the generator fell behind (achieved {r.achieved_per_s:,.0f} of "
                       f"{r.offered_per_s:,.0f} requests/s offered, send lag p99 {r.lag_p99_ms:.0f} ms): the CPU "
                       "share is for the lower rate")
    return out


def rate_table(results: Sequence[RateResult]) -> str:
    head = ("| scenario | target | connections (held by the target) | requests/s offered / achieved "
            "| CPU share, mean / busiest 1 s (% of one core) | Collector CPU / gateway CPU | CPU-s per 1M spans "
            "| RSS per process, steady / peak (MiB) | requests sent / acked | spans delivered | lost "
            "| p50 / p99 latency (ms) | generator: CPU share, send lag p99 (ms) |")
    rows = [head, "|" + "---|" * 13]
    for r in results:
        name = f"{r.scenario}: {SCENARIOS[r.scenario].title}"
        if r.status != "ok":
            rows.append(f"| {name} | {_label(r)} | {r.status}: {r.reason} |" + "  |" * 10)
            continue
        col = next((c for c in results if c.scenario == r.scenario and c.spans == r.spans
                    and c.target == "collector" and c.status == "ok"), None)
        vs = "1.00" if r.target == "collector" else (
            f"**{col.cpu_share / r.cpu_share:.2f}x**" if col is not None and r.cpu_share else "-")
        rows.append(
            f"| {name} | {_label(r)} | {r.connected:,} ({r.established:,}) "
            f"| {_fmt(r.offered_per_s)} / {_fmt(r.achieved_per_s)}{' (!)' if r.behind else ''} "
            f"| **{_fmt(100 * r.cpu_share, '%', 1)}** / {_fmt(100 * r.cpu_share_max, '%', 1)} | {vs} "
            f"| {_fmt(r.cpu_per_million, digits=2)} | {_rss(r.steady_rss_process, r.peak_rss_process)} "
            f"| {r.sent:,} / {r.acked:,} | {r.delivered:,} | {_lost(r.lost)} "
            f"| {_fmt(r.p50_ms, digits=2)} / {_fmt(r.p99_ms, digits=2)} "
            f"| {_fmt(100 * r.generator_share, '%', 0)}, {_fmt(r.lag_p99_ms, digits=1)} |"
        )
    return "\n".join(rows)


def _section(command: str, load_desc: str, runs: Sequence[RunResult | RateResult]) -> dict[str, Any]:
    return {"command": command, "load": load_desc, "machine": machine(), "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "runs": [r.as_dict() for r in runs]}


def _load(out_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((out_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(data, list):  # written before the fixed-rate load: closed-loop runs only
        try:
            md = (out_dir / "RESULTS.md").read_text()
        except OSError:
            md = ""

        def line(name: str) -> str:
            m = re.search(rf"^{name}: `?(.*?)`?\.?$", md, re.MULTILINE)
            return m.group(1) if m else "not recorded"

        return {GRID: {"command": line("Command"), "load": line("Load"), "machine": line("Machine"),
                       "commit": "not recorded", "date": "not recorded", "runs": data}}
    return data if isinstance(data, dict) else {}


_GRID_HOW = (
    "CPU is user+system seconds of the target and all its child processes (from /proc), from the moment it "
    "is healthy until delivery has drained; spans per CPU-second = accepted spans / those seconds, and "
    "gateway / Collector is the ratio of the two (above 1: the gateway does the same work on less CPU). "
    "Latency is the round trip a request takes at the load generator (the gateway answers once its pipelines "
    "hold the request). Lost = accepted x fan-out - sampled out - delivered at the sink. The load generator "
    "and the counting sink run in their own processes on the same cores, so throughput (spans/s) is bounded "
    "by them too; spans per CPU-second is the comparable figure. RSS is the largest process's: steady is the "
    "median of the samples (every 0.25 s) over the second half of the load, peak the largest sample. A tail-sampling "
    "scenario also has the RSS each side needs per span it holds pending a decision (above 1 in otelcol-ref / "
    "gateway: the gateway holds a span in less memory); its traces have 5-50 spans over a few requests, so its "
    "CPU figure is not comparable with the other scenarios'.")

_RATE_HOW = (
    "Each client connection sends one request every period whatever happened to the previous one (open "
    "loop, random phase, jittered), so the target faces the same offered load however fast it is, and the "
    "figure is its CPU share: CPU-seconds of the target and its children / wall-seconds of the measurement "
    "window (after the warm-up), in % of one core (100% = one core busy); the busiest 1 s stretch of the "
    "window beside it. Collector CPU / gateway CPU above 1: the gateway carries the load on less CPU. "
    "Connections are those the generator opened, and in brackets the ESTABLISHED ones on the target's "
    "receiver port mid-window (/proc/net/tcp). Achieved is what the generator sent during the window; (!) "
    "marks a generator that fell behind. Sent / acked / delivered / lost cover the whole run, warm-up "
    "included; lost = acked spans x fan-out - sampled out - delivered. RSS is the largest process's: steady "
    "is the median of the samples over the window, peak the largest sample from the start of the load.")


def _part(title: str, part: dict[str, Any] | None, how: str, body: list[str],
          runs: Sequence[RunResult | RateResult]) -> list[str]:
    """One command's section: its header, how it measures, its tables, its notes."""
    out = [title, ""]
    if part is None:
        return [*out, "Not run into this directory yet.", ""]
    out += [f"Command: `{part['command']}`", "",
            f"Run: {part['date']}, commit {part['commit']}. Machine: {part['machine']}.", "",
            f"Load: {part['load']}.", "", how, "", *body]
    extra = notes(runs)
    return out + (["Notes:", "", *extra, ""] if extra else [])


def render(data: dict[str, Any]) -> str:
    grid, rate = data.get(GRID), data.get(RATE)
    runs = [RunResult.from_dict(d) for d in grid["runs"]] if grid else []
    rruns = [RateResult.from_dict(d) for d in rate["runs"]] if rate else []
    lines = ["# Benchmark results", "",
             "Two loads, each with its own command below: the closed-loop grid (spans per CPU-second by "
             "scenario and request size) and many connections at a fixed rate (CPU share at a fixed offered "
             "load). `bench/README.md` says how to run and read them.", ""]
    lines += _part("## Spans per CPU-second, by request size (`python -m bench run`)", grid, _GRID_HOW,
                   [side_by_side(runs), "#### All runs", "", table(runs), ""], runs)
    if grid:
        lines += ["![spans per CPU-second by request size](results.png)", ""]
    lines += _part("## Many connections at a fixed rate (`python -m bench rate`)", rate, _RATE_HOW,
                   [rate_table(rruns), ""], rruns)
    return "\n".join(lines)


def _write(out_dir: Path, part: str, section: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _load(out_dir)
    data[part] = section
    path = out_dir / "RESULTS.md"
    path.write_text(render(data))
    (out_dir / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    if part == GRID:
        plot([RunResult.from_dict(d) for d in section["runs"]], out_dir / "results.png")
    return path


def write_grid(results: Sequence[RunResult], out_dir: Path, command: str, load_desc: str) -> Path:
    """Replace the closed-loop part of out_dir's results.json, keep the fixed-rate part, render."""
    return _write(out_dir, GRID, _section(command, load_desc, results))


def write_rate(results: Sequence[RateResult], out_dir: Path, command: str, load_desc: str) -> Path:
    """Replace the fixed-rate part of out_dir's results.json, keep the closed-loop part, render."""
    return _write(out_dir, RATE, _section(command, load_desc, results))


def plot(results: Sequence[RunResult], path: Path) -> bool:
    """A panel per scenario; in each, a group of bars per request size, a bar per target, labelled with
    thousand spans per CPU-second and, on the gateway's bars, the ratio to the Collector."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError:
        return False
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        return False
    scenarios = list(dict.fromkeys(r.scenario for r in ok))
    labels = sorted(dict.fromkeys(_label(r) for r in ok), key=lambda s: (s == "otelcol-ref", s))
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    cols = min(3, len(scenarios))
    rows = math.ceil(len(scenarios) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False)
    width = 0.8 / max(1, len(labels))
    for ax, key in zip(axes.flat, scenarios, strict=False):
        sizes = sorted(dict.fromkeys(r.spans for r in ok if r.scenario == key))
        top = 0.0
        for i, label in enumerate(labels):
            for j, spans in enumerate(sizes):
                r = next((r for r in ok if r.scenario == key and r.spans == spans and _label(r) == label), None)
                if r is None:
                    continue
                v = r.spans_per_cpu_s / 1000
                top = max(top, v)
                ratio = _ratio(r, results) if r.target == "gateway" else None
                text = f"{v:.0f}" + ("" if ratio is None else f"\n{ratio:.1f}x")
                bars = ax.bar([j + i * width], [v], width, color=colors[label])
                ax.bar_label(bars, labels=[text], fontsize=7, padding=1)
        ax.set_ylim(0, top * 1.25 or 1)
        ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(sizes))])
        ax.set_xticklabels([str(s) for s in sizes], fontsize=8)
        ax.set_xlabel("spans per request", fontsize=8)
        ax.set_ylabel("thousand spans per CPU-second", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(textwrap.fill(f"{key}: {SCENARIOS[key].title}", 40), fontsize=9)
    for ax in list(axes.flat)[len(scenarios):]:
        ax.set_visible(False)
    handles = [Rectangle((0, 0), 1, 1, color=colors[label]) for label in labels]
    fig.legend(handles, labels, loc="upper right", fontsize=8, ncols=len(labels))
    fig.suptitle("Spans forwarded per CPU-second (higher is better); gateway bars: ratio to the Collector",
                 fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
