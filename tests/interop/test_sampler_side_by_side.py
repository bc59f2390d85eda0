"""Side by side: the same spans through the reference Collector's probabilistic_sampler and through
the gateway's, with the same mode, seed and percentage, keep the same traces, and (in the
proportional and equalizing modes, which record the threshold they applied) the same tracestate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import peers
from tests.harness import Ports, Sink, running
from tests.interop._support import file_requests, gateway_config, make_traces, needs, send

pytestmark = [pytest.mark.peers, needs("processors", "probabilistic_sampler")]

TRACES = 400


def _collector(sampler: dict[str, Any]) -> str:
    doc = {
        "extensions": {"health_check": {"endpoint": "{{health_endpoint}}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "{{grpc_endpoint}}"}}}},
        "processors": {"probabilistic_sampler": sampler},
        "exporters": {"file": {"path": "{{workdir}}/traces.json", "flush_interval": "100ms"}},
        "service": {"extensions": ["health_check"], "pipelines": {"traces": {
            "receivers": ["otlp"], "processors": ["probabilistic_sampler"], "exporters": ["file"]}}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _kept(requests: list[Any]) -> dict[bytes, str]:
    """span_id -> tracestate of every span kept."""
    return {span.span_id: span.trace_state for req in requests for rs in req.resource_spans
            for ss in rs.scope_spans for span in ss.spans}


SAMPLERS = [
    pytest.param({"sampling_percentage": 30, "hash_seed": 22, "mode": "hash_seed"}, id="hash_seed-30-seed22"),
    pytest.param({"sampling_percentage": 12.5, "hash_seed": 4242}, id="default-mode-12.5-seed4242"),
    pytest.param({"sampling_percentage": 25, "mode": "proportional"}, id="proportional-25"),
    pytest.param({"sampling_percentage": 50, "mode": "equalizing"}, id="equalizing-50"),
]


def _side_by_side(sampler: dict[str, Any], ports: Ports, sink: Sink) -> tuple[dict[bytes, str], dict[bytes, str]]:
    """(collector, gateway): span_id -> tracestate of every span each kept, from the same input."""
    sent = make_traces(TRACES, 2, seed=99)
    # A quarter of the traces arrive with an OpenTelemetry tracestate carrying a threshold and an
    # explicit randomness (which the proportional and equalizing modes must honour), a quarter with
    # another vendor's entry only, the rest with none.
    for i, span in enumerate(sent.resource_spans[0].scope_spans[0].spans):
        trace = i // 2
        if trace % 4 == 1:
            span.trace_state = "ot=th:c;rv:" + span.trace_id[-7:].hex()
        elif trace % 4 == 2:
            span.trace_state = "vendor=x"
    gw_cfg = gateway_config(
        ports, {"otlp/backend": {"endpoint": f"127.0.0.1:{sink.grpc_port}", "tls": {"insecure": True}}},
        processors={"probabilistic_sampler": sampler},
        pipelines={"traces": {"receivers": ["otlp"], "processors": ["probabilistic_sampler", "batch"],
                              "exporters": ["otlp/backend"]}},
    )
    with running(gw_cfg, ports) as gw, peers.otelcol(_collector(sampler)) as col:
        send(col.grpc_endpoint, "traces", sent)
        send(f"127.0.0.1:{ports.grpc}", "traces", sent)
        path = Path(col.workdir) / "traces.json"
        peers.wait_for(lambda: gw.metric("otelcol_exporter_sent_spans_total") + gw.metric(
            "otelcol_processor_dropped_spans_total") >= 2 * TRACES, 20, "the gateway to sample every span")
        last = -1

        def settled() -> bool:
            # The Collector took the request synchronously; its file is complete once it stops growing.
            nonlocal last
            n = len(_kept(file_requests(path, "traces")))
            done, last = n == last and n > 0, n
            return done

        peers.wait_for(settled, 20, "the Collector's file to settle")
        return _kept(file_requests(path, "traces")), _kept([r.request for r in sink.requests("traces")])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_traces_kept_as_the_collector(sampler: dict[str, Any], ports: Ports, sink: Sink) -> None:
    theirs, ours = _side_by_side(sampler, ports, sink)
    assert 0 < len(ours) < 2 * TRACES
    only_theirs = sorted(k.hex() for k in set(theirs) - set(ours))
    only_ours = sorted(k.hex() for k in set(ours) - set(theirs))
    assert not only_theirs and not only_ours, \
        f"kept differently: collector only {only_theirs[:5]}, gateway only {only_ours[:5]}"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_tracestate_written_as_the_collector(sampler: dict[str, Any], ports: Ports, sink: Sink) -> None:
    theirs, ours = _side_by_side(sampler, ports, sink)
    differing = {k.hex(): (theirs[k], ours.get(k)) for k in theirs if theirs[k] != ours.get(k)}
    assert not differing, f"tracestate differs (collector, gateway): {list(differing.items())[:5]}"
