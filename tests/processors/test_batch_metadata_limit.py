"""The batch processor's `metadata_keys` and `metadata_cardinality_limit` through a running gateway:
batches never mix values of a metadata key, and a request bringing one combination more than the limit
is refused permanently (400) and never delivered, while known combinations keep flowing."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.delivery.configs import exporter
from tests.delivery.load import request
from tests.harness import Ports, Sink, basic_config, running, wait_until


def _post(port: int, names: list[str], tenant: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=request(names).SerializeToString(),
                                 method="POST", headers={"Content-Type": "application/x-protobuf",
                                                         "X-Tenant": tenant})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_metadata_cardinality_limit_refuses_the_combination_past_the_limit(ports: Ports, sink: Sink) -> None:
    cfg = basic_config(ports, exporter("a", sink), "[otlp/a]",
                       processors="batch: {timeout: 50ms, metadata_keys: [X-Tenant], metadata_cardinality_limit: 2}")
    cfg = cfg.replace(f'http: {{endpoint: "127.0.0.1:{ports.http}"}}',
                      f'http: {{endpoint: "127.0.0.1:{ports.http}", include_metadata: true}}')
    with running(cfg, ports) as gw:
        assert _post(ports.http, ["a1", "a2"], "acme") == 200
        assert _post(ports.http, ["b1"], "beta") == 200
        assert _post(ports.http, ["c1"], "gamma") == 400, "a third combination passes the limit of 2"
        assert _post(ports.http, ["a3"], "acme") == 200, "known combinations keep flowing"
        wait_until(lambda: sink.span_count() == 4, 10, "the accepted spans")
        by_request = [sorted(s.name for rs in r.request.resource_spans for ss in rs.scope_spans for s in ss.spans)
                      for r in sink.requests("traces")]
        names = sorted(n for r in by_request for n in r)
        assert names == ["a1", "a2", "a3", "b1"]
        # Batches never mix values of X-Tenant.
        assert all({n[0] for n in r} in ({"a"}, {"b"}) for r in by_request)
        assert gw.metric("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp/a") == 1


def test_without_a_limit_every_combination_is_taken(ports: Ports, sink: Sink) -> None:
    cfg = basic_config(ports, exporter("a", sink), "[otlp/a]",
                       processors="batch: {timeout: 50ms, metadata_keys: [X-Tenant], metadata_cardinality_limit: 0}")
    cfg = cfg.replace(f'http: {{endpoint: "127.0.0.1:{ports.http}"}}',
                      f'http: {{endpoint: "127.0.0.1:{ports.http}", include_metadata: true}}')
    with running(cfg, ports):
        for i in range(5):
            assert _post(ports.http, [f"t{i}"], f"tenant-{i}") == 200
        wait_until(lambda: sink.span_count() == 5, 10, "every span")
