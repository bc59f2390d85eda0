"""The benchmark in smoke mode (about two seconds of load): it runs end to end, loses nothing and
writes its report. Numbers are not asserted: performance is measured by `python -m bench run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness import REPO
from tests.peers import peer_path


def test_bench_smoke_runs_and_reports(tmp_path: Path) -> None:
    targets = "gateway,collector" if peer_path("otelcol-ref") else "gateway"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--smoke", "--scenarios", "a", "--targets", targets,
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["target"] for r in results] == targets.split(",")
    for r in results:
        assert r["status"] == "ok", r
        assert r["accepted"] > 0 and r["lost"] == 0, r
        assert r["delivered"] == r["accepted"], r
        assert r["cpu_seconds"] > 0 and r["peak_rss_process"] > 0, r
    report = (tmp_path / "RESULTS.md").read_text()
    assert "python -m bench run --smoke" in report
    assert "| a: passthrough (batch) | gateway |" in report
