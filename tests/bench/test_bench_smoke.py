"""The benchmark in smoke mode: the closed-loop grid over two request sizes (about two seconds of
load per run) and the fixed-rate load with 20 connections for two seconds, both into one directory.
They run end to end, lose nothing and write one report with both sections. Numbers are not
asserted: performance is measured by `python -m bench run` and `python -m bench rate`.

The Collector side runs when otelcol-ref is built and is reported as skipped otherwise; the
skipping itself and the report's merging of the two sections are also checked without processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.loadgen import LoadSpec
from bench.payload import PayloadSpec
from bench.rateload import RateSpec
from bench.runner import TAP_ENV, RateResult, RunResult, run_one, run_rate
from bench.scenarios import SCENARIOS
from tests.harness import REPO
from tests.peers import peer_path

HAVE_COLLECTOR = peer_path("otelcol-ref") is not None
SIZES = (10, 50)
CONNECTIONS = 20


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=240)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, subprocess.CompletedProcess[str]]]:
    out = tmp_path_factory.mktemp("bench")
    common = ["--scenarios", "a", "--targets", "gateway,collector", "--out", str(out)]
    grid = _bench("run", "--smoke", "--spans", ",".join(map(str, SIZES)), *common)
    rate = _bench("rate", "--smoke", "--connections", str(CONNECTIONS), "--duration", "2", *common)
    return out, {"run": grid, "rate": rate}


def _runs(out: Path, part: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads((out / "results.json").read_text())[part]["runs"]
    return runs


def _check_collector_skipped(r: dict[str, Any]) -> None:
    assert r["status"] == "skipped" and "otelcol-ref" in r["reason"], r


def test_grid_runs_every_size_and_reports_it(smoke: tuple[Path, dict[str, subprocess.CompletedProcess[str]]]) -> None:
    out, procs = smoke
    proc = procs["run"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _runs(out, "grid")
    assert [(r["spans"], r["target"]) for r in runs] == [(s, t) for s in SIZES for t in ("gateway", "collector")]
    for r in runs:
        if r["target"] == "collector" and not HAVE_COLLECTOR:
            _check_collector_skipped(r)
            continue
        assert r["status"] == "ok", r
        assert r["accepted"] > 0 and r["lost"] == 0, r
        assert r["delivered"] == r["accepted"], r  # scenario a: no sampler, no fan-out
        assert r["accepted"] % r["spans"] == 0, r
        assert r["cpu_seconds"] > 0 and r["peak_rss_process"] > 0 and r["steady_rss_process"] > 0, r
    md = (out / "RESULTS.md").read_text()
    assert "python -m bench run --smoke --spans 10,50" in md
    assert "Load: 10, 50 spans/request" in md
    assert "#### a: passthrough (batch)" in md
    for spans in SIZES:
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {spans} | gateway |"))
        assert ("x** |" in row) == HAVE_COLLECTOR, row  # the ratio, when there is a Collector to compare with
        assert row.endswith(" | 0 / 0 |" if HAVE_COLLECTOR else " | 0 / - |"), row
        assert f"| a: passthrough (batch) | {spans} | gateway |" in md
        if not HAVE_COLLECTOR:
            assert f"| a: passthrough (batch) | {spans} | otelcol-ref | skipped:" in md
    pytest.importorskip("matplotlib")
    assert (out / "results.png").stat().st_size > 10_000


def test_rate_load_holds_the_connections_and_delivers_every_acked_span(
        smoke: tuple[Path, dict[str, subprocess.CompletedProcess[str]]]) -> None:
    out, procs = smoke
    proc = procs["rate"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _runs(out, "rate")
    assert [r["target"] for r in runs] == ["gateway", "collector"]
    for r in runs:
        if r["target"] == "collector" and not HAVE_COLLECTOR:
            _check_collector_skipped(r)
            continue
        assert r["status"] == "ok", r
        assert r["connected"] == CONNECTIONS and r["established"] == CONNECTIONS, r
        assert r["offered_per_s"] == CONNECTIONS and r["achieved_per_s"] > 0, r
        # Every connection sent in the 0.5 s warm-up and the 2 s window: at least 2 each, about 2.5.
        assert 2 * CONNECTIONS <= r["sent"] <= 3 * CONNECTIONS + 2, r
        assert r["acked"] == r["sent"] and r["failed"] == 0, r
        assert r["acked_spans"] == 10 * r["acked"], r
        assert r["delivered"] == r["acked_spans"] and r["lost"] == 0, r
        assert 1.9 <= r["window_seconds"] <= 3.0, r
        assert r["cpu_seconds"] > 0 and 0 < r["cpu_share"] < 2, r
        assert r["peak_rss_process"] >= r["steady_rss_process"] > 0, r
    md = (out / "RESULTS.md").read_text()
    # Both loads in one report: the rate command kept the grid's section.
    assert "#### a: passthrough (batch)" in md and "python -m bench run --smoke" in md
    assert "python -m bench rate --smoke --connections 20 --duration 2" in md
    assert f"| a: passthrough (batch) | gateway | {CONNECTIONS} ({CONNECTIONS}) | 20 / " in md
    if not HAVE_COLLECTOR:
        assert "| a: passthrough (batch) | otelcol-ref | skipped:" in md


def test_collector_is_skipped_cleanly_without_otelcol_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTELGW_PEERS_DIR", str(tmp_path / "no-peers"))
    grid = run_one(SCENARIOS["a"], "collector", LoadSpec("", payload=PayloadSpec(10)))
    rate = run_rate(SCENARIOS["a"], "collector", RateSpec(connections=5))
    for r in (grid, rate):
        assert r.status == "skipped" and "otelcol-ref not built" in r.reason
    report.write_grid([grid], tmp_path, "python -m bench run", "test")
    report.write_rate([rate], tmp_path, "python -m bench rate", "test")
    md = (tmp_path / "RESULTS.md").read_text()
    assert "| 10 | - | not run | skipped | - |" in md
    assert "| a: passthrough (batch) | 10 | otelcol-ref | skipped: otelcol-ref not built" in md
    assert "| a: passthrough (batch) | otelcol-ref | skipped: otelcol-ref not built" in md


def test_each_command_keeps_the_other_commands_section(tmp_path: Path) -> None:
    # A results.json from before the fixed-rate load (a bare list) still renders as the grid.
    legacy = RunResult("a", "gateway", accepted=1000, delivered=1000, cpu_seconds=0.01, load_seconds=1.0)
    legacy_dict = legacy.as_dict()
    del legacy_dict["spans"]  # older runs did not record it: they were 512-span runs
    (tmp_path / "results.json").write_text(json.dumps([legacy_dict]))
    (tmp_path / "RESULTS.md").write_text("Command: `python -m bench run --duration 10`\n\nLoad: 512 spans/request.\n")
    rate = RateResult("a", "gateway", spans=10, connections=4, rate=1.0, connected=4, window_seconds=2.0,
                      cpu_seconds=0.5, sent=10, sent_in_window=8, acked=10, acked_spans=100, delivered=100)
    report.write_rate([rate], tmp_path, "python -m bench rate --connections 4", "four connections")
    md = (tmp_path / "RESULTS.md").read_text()
    assert "Command: `python -m bench run --duration 10`" in md
    assert "| 512 | gateway | 100,000 | not run |" in md
    assert "| a: passthrough (batch) | gateway | 4 (0) | 4 / 4 | **25.0%** /" in md
    report.write_grid([RunResult("b", "gateway", spans=50, accepted=500, cpu_seconds=0.001)], tmp_path,
                      "python -m bench run --scenarios b", "fifty")
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["scenario"] for r in data["grid"]["runs"]] == ["b"]
    assert data["rate"]["command"] == "python -m bench rate --connections 4"
    md = (tmp_path / "RESULTS.md").read_text()
    assert "#### b: seeds" in md and "| a: passthrough (batch) | gateway | 4 (0) |" in md


@pytest.mark.parametrize(("connections", "senders", "shares"), [
    (1000, 0, [250, 250, 250, 250]), (20, 0, [20]), (1001, 0, [251, 250, 250, 250]), (3, 8, [1, 1, 1]),
    (600, 0, [200, 200, 200]),
])
def test_connections_are_shared_over_sender_processes(connections: int, senders: int, shares: list[int]) -> None:
    assert RateSpec(connections=connections, senders=senders).shares() == shares


def test_a_tap_stays_open_through_a_run_and_reads_its_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench run --tap COMPONENT`: the gateway's admin endpoint on a free port, a tap open on the component
    at its default rate while the load runs, its line count in the run's notes."""
    monkeypatch.setenv(TAP_ENV, "receiver:otlp")
    load = LoadSpec("", "grpc", 4, 2, 2.0, PayloadSpec(10, pool=4))
    r = run_one(SCENARIOS["a"], "gateway", load)
    assert r.status == "ok" and r.lost == 0, r
    lines = r.reason.rpartition("tap open on receiver:otlp: ")[2]
    assert lines.endswith(" lines") and int(lines.split()[0]) > 0, r.reason
    monkeypatch.setenv(TAP_ENV, "exporter:nope")
    r = run_one(SCENARIOS["a"], "gateway", load)
    assert "tap refused: HTTP 404" in r.reason, r.reason
