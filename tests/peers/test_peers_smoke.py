"""The reference peers themselves work: otelcol-ref (OTLP in -> file exporter) receives what
hatchet-engine-sim (Go SDK) and kestra-sim (Java SDK) say they exported.

Each test skips with the reason and the build command when a peer is not built (.ci/peers.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers import (
    OTLP_TO_FILES_CONFIG,
    otelcol,
    read_otlp_json_lines,
    require_peer,
    run_hatchet_sim,
    run_kestra_sim,
    trace_ids_in_file,
    wait_for,
)

pytestmark = pytest.mark.peers


def _resource_attrs(path: Path) -> list[dict[str, str]]:
    out = []
    for req in read_otlp_json_lines(path):
        for rs in req.get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue", "") for a in rs.get("resource", {}).get("attributes", [])}
            out.append(attrs)
    return out


def test_hatchet_sim_spans_reach_otelcol_ref() -> None:
    require_peer("otelcol-ref")
    require_peer("hatchet-engine-sim")
    with otelcol(OTLP_TO_FILES_CONFIG) as col:
        res = run_hatchet_sim(
            col.grpc_endpoint,
            insecure=True,
            spans=6,
            service_name="hatchet-engine",
            env={"K8S_POD_NAME": "engine-0", "K8S_POD_NAMESPACE": "hatchet"},
        )
        assert res.ok, res.describe()
        sampled = set(res.report["sampled_trace_ids"])
        assert len(sampled) == 3
        assert set(res.report["exported_trace_ids"]) == sampled
        traces = col.workdir / "traces.json"
        wait_for(lambda: sampled <= trace_ids_in_file(traces), what="hatchet spans in the file exporter output")
        attrs = _resource_attrs(traces)
        assert attrs
        assert attrs[0]["service.name"] == "hatchet-engine"
        assert attrs[0]["library.language"] == "go"
        assert attrs[0]["k8s.pod.name"] == "engine-0"
        assert attrs[0]["k8s.namespace.name"] == "hatchet"
        names = {
            span["name"]
            for req in read_otlp_json_lines(traces)
            for rs in req["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        }
        assert names and all(n.startswith("hatchet.run/") for n in names)


def test_hatchet_sim_ratio_zero_samples_nothing() -> None:
    require_peer("hatchet-engine-sim")
    # nothing sampled => nothing exported, and that is success; the port is never dialled
    res = run_hatchet_sim("127.0.0.1:9", insecure=True, ratio=0.0, spans=4)
    assert res.ok, res.describe()
    assert res.report["sampled_trace_ids"] == []
    assert len(res.report["trace_ids"]) == 2


def test_hatchet_sim_reports_export_failure() -> None:
    require_peer("hatchet-engine-sim")
    res = run_hatchet_sim("127.0.0.1:9", insecure=True, spans=2, export_timeout="1s")
    assert res.returncode != 0
    assert res.report["ok"] is False
    assert res.report["exported_trace_ids"] == []
    assert res.report["errors"]


def test_kestra_sim_traces_metrics_logs_reach_otelcol_ref() -> None:
    require_peer("otelcol-ref")
    require_peer("kestra-sim")
    with otelcol(OTLP_TO_FILES_CONFIG) as col:
        res = run_kestra_sim(f"http://{col.grpc_endpoint}", col.http_url, traces=2)
        assert res.ok, res.describe()
        sent = set(res.report["trace_ids"])
        assert len(sent) == 2
        wait_for(lambda: sent <= trace_ids_in_file(col.workdir / "traces.json"), what="kestra spans")

        def metric_names() -> set[str]:
            return {
                m["name"]
                for req in read_otlp_json_lines(col.workdir / "metrics.json")
                for rm in req.get("resourceMetrics", [])
                for sm in rm.get("scopeMetrics", [])
                for m in sm.get("metrics", [])
            }

        def log_bodies() -> list[str]:
            return [
                lr.get("body", {}).get("stringValue", "")
                for req in read_otlp_json_lines(col.workdir / "logs.json")
                for rl in req.get("resourceLogs", [])
                for sl in rl.get("scopeLogs", [])
                for lr in sl.get("logRecords", [])
            ]

        wait_for(lambda: set(res.report["metric_names"]) <= metric_names(), what="kestra metrics")
        wait_for(lambda: set(res.report["log_bodies"]) <= set(log_bodies()), what="kestra logs")


def test_kestra_sim_reports_export_failure() -> None:
    require_peer("kestra-sim")
    res = run_kestra_sim("http://127.0.0.1:9", "http://127.0.0.1:9", traces=1, export_timeout="1s")
    assert res.returncode != 0
    assert res.report["ok"] is False
    assert res.report["errors"]
