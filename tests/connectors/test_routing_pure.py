"""The routing connector's pure part: config checks with the Collector's messages, first-match and
match-all routing in every context, default pipelines, error modes, the pass-through fast path, and
splits that lose and duplicate nothing."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from gateway.config.decode import Errors, decode
from pipelines import otlp
from pipelines.batch import Batch, RequestContext
from pipelines.connectors.routing import Config, RouteConfig, Routed, Router
from pipelines.errors import PermanentError
from pipelines.processors import anyvalue
from tests.processors.build import put_attrs

Spec = list[tuple[dict[str, Any], list[dict[str, Any]]]]  # (resource attributes, items)


def traces(spec: Spec) -> Any:
    """Resources of one scope each; span dicts give name, kind, attrs. Span names must be unique."""
    req = ExportTraceServiceRequest()
    for n, (res_attrs, spans) in enumerate(spec):
        rs = req.resource_spans.add(schema_url=f"https://schema/{n}")
        put_attrs(rs.resource.attributes, res_attrs)
        ss = rs.scope_spans.add()
        ss.scope.name = f"scope-{n}"
        for s in spans:
            span = ss.spans.add(name=s["name"], kind=s.get("kind", 1))
            span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
            put_attrs(span.attributes, s.get("attrs", {}))
    return req


def logs(spec: Spec) -> Any:
    req = ExportLogsServiceRequest()
    for res_attrs, records in spec:
        rl = req.resource_logs.add()
        put_attrs(rl.resource.attributes, res_attrs)
        sl = rl.scope_logs.add()
        for r in records:
            rec = sl.log_records.add(severity_number=r.get("severity", 9), event_name=r["name"])
            rec.body.CopyFrom(anyvalue.from_raw(r.get("body", "")))
    return req


def metrics(spec: Spec) -> Any:
    """Items are metrics: {"name", "points": [point attributes, ...]} (a monotonic cumulative sum)."""
    req = ExportMetricsServiceRequest()
    for res_attrs, items in spec:
        rm = req.resource_metrics.add()
        put_attrs(rm.resource.attributes, res_attrs)
        sm = rm.scope_metrics.add()
        for m in items:
            metric = sm.metrics.add(name=m["name"], unit="1")
            metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            metric.sum.is_monotonic = True
            for i, attrs in enumerate(m["points"]):
                dp = metric.sum.data_points.add(as_int=i)
                put_attrs(dp.attributes, attrs)
    return req


def from_bytes(signal: str, req: Any, context: RequestContext | None = None) -> Batch:
    data = req.SerializeToString()
    return Batch(signal, data, otlp.count_items(signal, req), context or RequestContext())  # type: ignore[arg-type]


def route(cfg: Config, batch: Batch) -> Routed:
    return Router(cfg, batch.signal).route(batch)


def table(*routes: tuple[str, tuple[str, ...]] | RouteConfig, **kw: Any) -> Config:
    entries = tuple(r if isinstance(r, RouteConfig) else RouteConfig(condition=r[0], pipelines=r[1]) for r in routes)
    return Config(table=entries, **kw)


def names(batch: Batch) -> list[str]:
    """Span names, log event names, or `metric:point-index` per data point, in order."""
    msg = batch.message()
    if batch.signal == "traces":
        return [s.name for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
    if batch.signal == "logs":
        return [r.event_name for rl in msg.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    return [f"{m.name}:{dp.as_int}" for rm in msg.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics for dp in m.sum.data_points]


def delivered(out: Routed) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for pipelines, batch in out.parts:
        assert batch.items == len(names(batch))
        for p in pipelines:
            assert p not in got, f"{p} appears twice"
            got[p] = names(batch)
    return got


# ---------------------------------------------------------------- config

def test_defaults_are_the_collectors_at_v0_161() -> None:
    cfg = Config()
    assert cfg.error_mode == "ignore" and cfg.match_once is True and cfg.default_pipelines == ()
    assert RouteConfig().context == ""


@pytest.mark.parametrize(("route_cfg", "messages"), [
    (RouteConfig(pipelines=("traces/a",)), ["invalid route: no condition or statement provided"]),
    (RouteConfig(statement="route()", condition="true", pipelines=("traces/a",)),
     ["invalid route: both condition and statement provided"]),
    (RouteConfig(condition="true"), ["invalid route: no pipelines defined"]),
    (RouteConfig(statement='route() where request["a"] == "b"', context="request", pipelines=("traces/a",)),
     ["\"request\" context requires a 'condition'"]),
    (RouteConfig(condition='attributes["a"] == "b"', pipelines=("traces/a",)), []),
])
def test_route_validate(route_cfg: RouteConfig, messages: list[str]) -> None:
    assert route_cfg.validate() == messages


def test_config_validate_names_each_entry() -> None:
    assert Config().validate() == ["invalid routing table: the routing table is empty"]
    cfg = Config(table=(
        RouteConfig(condition='attributes["a"] == "b"', pipelines=("traces/a",)),
        RouteConfig(condition='attributes["a"] = "b"', pipelines=("traces/a",)),
        RouteConfig(statement='route() where Foo(attributes["a"])', pipelines=("traces/a",)),
        RouteConfig(pipelines=("traces/a",)),  # its own validate reports it
    ))
    assert cfg.validate() == [
        "table[1]::condition: unexpected '=' at col 17, expected a comparison operator after attributes[\"a\"]",
        'table[2]::statement: unknown function "Foo" at col 15',
    ]


def test_check_pipelines_uses_the_collectors_wording() -> None:
    cfg = table(("true", ("traces/a", "traces/x")), default_pipelines=("traces/y",))
    assert cfg.check_pipelines(frozenset({"traces/a", "traces/y"})) == [
        'table[0]::pipelines: pipeline not found: missing consumer: "traces/x"']
    assert cfg.check_pipelines(frozenset({"traces/a", "traces/x"})) == [
        'default_pipelines: pipeline not found: missing consumer: "traces/y"']


def test_check_signal() -> None:
    cfg = Config(table=(
        RouteConfig(condition='name == "x"', context="span", pipelines=("p",)),
        RouteConfig(condition='log.body == "x"', pipelines=("p",)),
        RouteConfig(condition='request["a"] == "b"', context="request", pipelines=("p",)),
        RouteConfig(condition='attributes["a"] == "b"', pipelines=("p",)),
    ))
    assert cfg.check_signal("traces") == ['table[1]::condition (inferred context): "log" is not valid in a traces '
                                          "pipeline; valid: resource, span, request"]
    assert cfg.check_signal("logs") == [
        'table[0]::context: "span" is not valid in a logs pipeline; valid: resource, log, request']
    assert len(cfg.check_signal("metrics")) == 2


def test_router_refuses_an_invalid_config() -> None:
    with pytest.raises(ValueError, match="invalid route: no pipelines defined"):
        Router(Config(table=(RouteConfig(condition="true"),)), "traces")


def test_decoded_from_yaml_data_with_match_once_and_unknown_keys_refused() -> None:
    errors = Errors()
    raw = {"default_pipelines": ["traces/d"], "match_once": False, "error_mode": "propagate",
           "table": [{"condition": 'attributes["a"] == "b"', "pipelines": ["traces/a"]},
                     {"context": "request", "condition": 'request["x"] == "y"', "pipelines": ["traces/b"]}]}
    cfg = decode(Config, raw, "connectors::routing", errors)
    assert not errors, errors.lines
    assert cfg == Config(table=(RouteConfig(condition='attributes["a"] == "b"', pipelines=("traces/a",)),
                                RouteConfig(condition='request["x"] == "y"', context="request",
                                            pipelines=("traces/b",))),
                         default_pipelines=("traces/d",), error_mode="propagate", match_once=False)
    bad = Errors()
    decode(Config, {"table": [{"condition": "true", "pipelines": ["p"], "action": "copy"}]}, "routing", bad)
    assert any("action" in line for line in bad.lines), bad.lines


# ---------------------------------------------------------------- resource context and the fast path

SERVICES: Spec = [({"service.name": "cart", "env": "prod"}, [{"name": "c1"}, {"name": "c2"}]),
            ({"service.name": "auth", "env": "dev"}, [{"name": "a1"}]),
            ({"service.name": "cart", "env": "dev"}, [{"name": "c3"}]),
            ({"service.name": "web"}, [{"name": "w1"}, {"name": "w2"}, {"name": "w3"}])]


def test_resource_routing_groups_resources_and_copies_them_whole() -> None:
    cfg = table(('attributes["service.name"] == "cart"', ("traces/cart",)),
                ('resource.attributes["env"] == "dev"', ("traces/dev",)), default_pipelines=("traces/other",))
    out = route(cfg, from_bytes("traces", traces(SERVICES)))
    assert delivered(out) == {"traces/cart": ["c1", "c2", "c3"], "traces/dev": ["a1"],
                              "traces/other": ["w1", "w2", "w3"]}
    cart = out.parts[0][1].message().resource_spans
    assert [rs.schema_url for rs in cart] == ["https://schema/0", "https://schema/2"]
    assert out.errors == [] and out.unrouted == 0


def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = otlp.parse

    def parse(signal: str, data: bytes) -> Any:
        calls.append(signal)
        return real(signal, data)

    monkeypatch.setattr(otlp, "parse", parse)
    return calls


def test_fast_path_passes_the_batch_on_unchanged_after_one_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    parses = counting_parses(monkeypatch)
    batch = from_bytes("traces", traces(SERVICES))
    data = batch.data()
    cfg = table(('attributes["service.name"] != "nobody"', ("traces/all", "traces/copy")),
                default_pipelines=("traces/d",))
    out = route(cfg, batch)
    assert len(out.parts) == 1
    pipelines, part = out.parts[0]
    assert pipelines == ("traces/all", "traces/copy") and part is batch and part.data() is data
    assert parses == ["traces"]


def test_fast_path_to_the_defaults_and_to_nowhere() -> None:
    batch = from_bytes("traces", traces(SERVICES))
    out = route(table(('attributes["service.name"] == "none"', ("traces/a",)), default_pipelines=("traces/d",)), batch)
    assert out.parts == [(("traces/d",), batch)] and out.unrouted == 0
    dropped = route(table(('attributes["service.name"] == "none"', ("traces/a",))), batch)
    assert dropped.parts == [] and dropped.unrouted == batch.items == 7


def test_route_statement_without_where_takes_everything() -> None:
    batch = from_bytes("traces", traces(SERVICES))
    cfg = Config(table=(RouteConfig(statement="route()", pipelines=("traces/all",)),
                        RouteConfig(condition="true", pipelines=("traces/never",))))
    assert route(cfg, batch).parts == [(("traces/all",), batch)]


def test_partial_unrouted_counts_items_of_dropped_resources() -> None:
    out = route(table(('attributes["env"] == "prod"', ("traces/prod",))), from_bytes("traces", traces(SERVICES)))
    assert delivered(out) == {"traces/prod": ["c1", "c2"]} and out.unrouted == 5


# ---------------------------------------------------------------- match_once

OVERLAP: Spec = [({"env": "prod", "region": "east"}, [{"name": "pe"}]),
           ({"env": "prod", "region": "west"}, [{"name": "pw"}]),
           ({"env": "dev", "region": "east"}, [{"name": "de"}]),
           ({"env": "test"}, [{"name": "t"}])]


def overlap_config(match_once: bool) -> Config:
    return table(('attributes["env"] == "prod"', ("traces/prod",)),
                 ('attributes["region"] == "east"', ("traces/east",)),
                 default_pipelines=("traces/default",), match_once=match_once)


def test_match_once_true_takes_the_first_matching_route_only() -> None:
    out = route(overlap_config(True), from_bytes("traces", traces(OVERLAP)))
    assert delivered(out) == {"traces/prod": ["pe", "pw"], "traces/east": ["de"], "traces/default": ["t"]}


def test_match_once_false_gives_each_resource_to_every_matching_route() -> None:
    out = route(overlap_config(False), from_bytes("traces", traces(OVERLAP)))
    assert delivered(out) == {"traces/prod": ["pe", "pw"], "traces/east": ["pe", "de"], "traces/default": ["t"]}


def test_pipelines_with_the_same_items_share_one_part_in_config_order() -> None:
    cfg = table(('attributes["env"] == "prod"', ("traces/b", "traces/a")),
                ('attributes["env"] == "dev"', ("traces/c",)), default_pipelines=("traces/a",))
    out = route(cfg, from_bytes("traces", traces(OVERLAP)))
    assert [p for p, _ in out.parts] == [("traces/b",), ("traces/a",), ("traces/c",)]
    assert delivered(out) == {"traces/b": ["pe", "pw"], "traces/a": ["pe", "pw", "t"], "traces/c": ["de"]}
    same = route(table(('attributes["env"] == "prod"', ("traces/b", "traces/a")), match_once=False),
                 from_bytes("traces", traces(OVERLAP)))
    assert [p for p, _ in same.parts] == [("traces/b", "traces/a")]


def test_duplicate_routes_are_ignored_with_the_collectors_warning() -> None:
    cfg = table(('attributes["env"] == "prod"', ("traces/a",)), ('attributes["env"] == "prod"', ("traces/b",)))
    router = Router(cfg, "traces")
    assert len(router.routes) == 1
    assert router.warnings == ["Statement 'attributes[\"env\"] == \"prod\"' already exists in the routing table, "
                               "the route with target pipeline(s) 'traces/b' will be ignored."]


# ---------------------------------------------------------------- item contexts

def test_span_context_splits_spans_under_copies_of_their_resource_and_scope() -> None:
    spec: Spec = [({"service.name": "cart"}, [{"name": "s1", "kind": 2}, {"name": "c1", "kind": 3},
                                              {"name": "s2", "kind": 2}]),
                  ({"service.name": "auth"}, [{"name": "c2", "kind": 3}])]
    cfg = table(("span.kind == SPAN_KIND_SERVER", ("traces/server",)), default_pipelines=("traces/rest",))
    out = route(cfg, from_bytes("traces", traces(spec)))
    assert delivered(out) == {"traces/server": ["s1", "s2"], "traces/rest": ["c1", "c2"]}
    rest = out.parts[1][1].message()
    assert [(rs.resource.attributes[0].value.string_value, rs.schema_url, rs.scope_spans[0].scope.name)
            for rs in rest.resource_spans] == [("cart", "https://schema/0", "scope-0"),
                                               ("auth", "https://schema/1", "scope-1")]
    assert out.parts[0][1].context is out.parts[1][1].context


def test_mixed_contexts_take_in_table_order_from_what_is_left() -> None:
    spec: Spec = [({"tier": "gold"}, [{"name": "g-err", "attrs": {"error": True}}, {"name": "g-ok"}]),
                  ({"tier": "free"}, [{"name": "f-err", "attrs": {"error": True}}, {"name": "f-ok"}])]
    cfg = table(('span.attributes["error"] == true', ("traces/errors",)),
                ('attributes["tier"] == "gold"', ("traces/gold",)))
    out = route(cfg, from_bytes("traces", traces(spec)))
    assert delivered(out) == {"traces/errors": ["g-err", "f-err"], "traces/gold": ["g-ok"]}
    assert out.unrouted == 1


def test_log_context_and_log_resource_routing() -> None:
    spec = [({"service.name": "cart"}, [{"name": "dbg", "severity": 5}, {"name": "err", "severity": 17}]),
            ({"service.name": "auth"}, [{"name": "warn", "severity": 13}, {"name": "fatal", "severity": 21}])]
    cfg = table(("log.severity_number >= SEVERITY_NUMBER_ERROR", ("logs/important",)),
                ('attributes["service.name"] == "cart"', ("logs/cart",)), default_pipelines=("logs/cheap",))
    out = route(cfg, from_bytes("logs", logs(spec)))
    assert delivered(out) == {"logs/important": ["err", "fatal"], "logs/cart": ["dbg"], "logs/cheap": ["warn"]}
    by_resource = route(table(('attributes["service.name"] == "auth"', ("logs/auth",)), default_pipelines=("logs/d",)),
                        from_bytes("logs", logs(spec)))
    assert delivered(by_resource) == {"logs/auth": ["warn", "fatal"], "logs/d": ["dbg", "err"]}


METRICS: Spec = [({"service.name": "cart"}, [{"name": "req", "points": [{"route": "/a"}, {"route": "/b"}]},
                                       {"name": "mem", "points": [{}]}]),
           ({"service.name": "auth"}, [{"name": "req", "points": [{"route": "/b"}]}])]


def test_metrics_resource_metric_and_datapoint_contexts() -> None:
    cart = table(('attributes["service.name"] == "cart"', ("metrics/cart",)), default_pipelines=("metrics/d",))
    by_resource = route(cart, from_bytes("metrics", metrics(METRICS)))
    assert delivered(by_resource) == {"metrics/cart": ["req:0", "req:1", "mem:0"], "metrics/d": ["req:0"]}
    by_metric = route(table(('metric.name == "mem"', ("metrics/mem",)), default_pipelines=("metrics/d",)),
                      from_bytes("metrics", metrics(METRICS)))
    assert delivered(by_metric) == {"metrics/mem": ["mem:0"], "metrics/d": ["req:0", "req:1", "req:0"]}
    by_point = route(table(('datapoint.attributes["route"] == "/b"', ("metrics/b",))),
                     from_bytes("metrics", metrics(METRICS)))
    assert delivered(by_point) == {"metrics/b": ["req:1", "req:0"]} and by_point.unrouted == 2
    first = by_point.parts[0][1].message().resource_metrics[0].scope_metrics[0].metrics[0]
    assert (first.name, first.unit, first.sum.is_monotonic, first.sum.aggregation_temporality) == ("req", "1", True, 2)


# ---------------------------------------------------------------- request context

def test_request_routes_decide_for_the_whole_request_without_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    parses = counting_parses(monkeypatch)
    cfg = Config(table=(RouteConfig(condition='request["X-Tenant"] == "acme"', context="request",
                                    pipelines=("logs/acme",)),
                        RouteConfig(condition='request["auth.tenant"] == "ecorp"', context="request",
                                    pipelines=("logs/ecorp",))),
                 default_pipelines=("logs/other",))
    router = Router(cfg, "logs")
    req = logs([({}, [{"name": "r"}])])
    for ctx, want in [(RequestContext(None, {"x-tenant": ("acme",)}), "logs/acme"),
                      (RequestContext("ecorp", {}), "logs/ecorp"),
                      (RequestContext("acme", {"x-tenant": ("ecorp",)}), "logs/other")]:
        batch = from_bytes("logs", req, ctx)
        assert router.route(batch).parts == [((want,), batch)]
    assert parses == []


def test_request_route_then_resource_routes() -> None:
    cfg = Config(table=(RouteConfig(condition='request["x-debug"] == "1"', context="request",
                                    pipelines=("traces/debug",)),
                        RouteConfig(condition='attributes["env"] == "prod"', pipelines=("traces/prod",))))
    spec = traces(OVERLAP)
    assert delivered(route(cfg, from_bytes("traces", spec, RequestContext(None, {"x-debug": ("1",)})))) == {
        "traces/debug": ["pe", "pw", "de", "t"]}
    assert delivered(route(cfg, from_bytes("traces", spec))) == {"traces/prod": ["pe", "pw"]}


# ---------------------------------------------------------------- error modes

# A log body indexed as a map: an evaluation error on records whose body is text.
ERROR_SPEC: Spec = [({"service.name": "svc"}, [{"name": "map-err", "body": {"level": "error"}},
                                         {"name": "text", "body": "plain"},
                                         {"name": "map-info", "body": {"level": "info"}}])]


def error_config(mode: str, match_once: bool = True) -> Config:
    return table(('log.body["level"] == "error"', ("logs/errors",)), ('log.event_name == "text"', ("logs/text",)),
                 default_pipelines=("logs/d",), error_mode=mode, match_once=match_once)


def test_error_mode_propagate_refuses_the_request() -> None:
    with pytest.raises(PermanentError, match=r"table\[0\]: type Str does not support string indexing"):
        route(error_config("propagate"), from_bytes("logs", logs(ERROR_SPEC)))


@pytest.mark.parametrize(("mode", "errors"), [("ignore", ["table[0]: type Str does not support string indexing"]),
                                              ("silent", [])])
def test_error_modes_ignore_and_silent_treat_the_error_as_no_match(mode: str, errors: list[str]) -> None:
    out = route(error_config(mode), from_bytes("logs", logs(ERROR_SPEC)))
    assert delivered(out) == {"logs/errors": ["map-err"], "logs/text": ["text"], "logs/d": ["map-info"]}
    assert out.errors == errors


def test_match_all_sends_errored_items_to_the_defaults_too() -> None:
    out = route(error_config("ignore", match_once=False), from_bytes("logs", logs(ERROR_SPEC)))
    assert delivered(out) == {"logs/errors": ["map-err"], "logs/text": ["text"], "logs/d": ["text", "map-info"]}


# ---------------------------------------------------------------- split correctness, at random

def expected(cfg: Config, items: list[tuple[dict[str, Any], dict[str, Any]]],
             matches: list[Callable[[dict[str, Any], dict[str, Any]], bool]]) -> dict[str, list[str]]:
    """What each pipeline should get, computed directly from the table's meaning."""
    want: dict[str, list[str]] = {}
    for res, span in items:
        hits = [r for r, m in zip(cfg.table, matches, strict=True) if m(res, span)]
        chosen = hits[:1] if cfg.match_once else hits
        targets = {p for r in chosen for p in r.pipelines} or set(cfg.default_pipelines)
        for p in targets:
            want.setdefault(p, []).append(span["name"])
    return want


@pytest.mark.parametrize("match_once", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_random_splits_deliver_every_span_exactly_where_it_belongs(seed: int, match_once: bool) -> None:
    rng = random.Random(seed)
    spec: Spec = []
    for r in range(rng.randint(1, 6)):
        spans = [{"name": f"r{r}s{i}", "kind": rng.randint(1, 3), "attrs": {"n": rng.randint(0, 4)}}
                 for i in range(rng.randint(0, 5))]
        spec.append(({"team": rng.choice(["a", "b", "c"])}, spans))
    cfg = table(('resource.attributes["team"] == "a"', ("traces/a", "traces/all")),
                ("span.kind == SPAN_KIND_SERVER", ("traces/server",)),
                ('span.attributes["n"] >= 3 or resource.attributes["team"] == "c"', ("traces/hi", "traces/all")),
                default_pipelines=("traces/d",) if seed % 2 else (), match_once=match_once)
    matches: list[Callable[[dict[str, Any], dict[str, Any]], bool]] = [
        lambda res, s: res["team"] == "a", lambda res, s: s["kind"] == 2,
        lambda res, s: s["attrs"]["n"] >= 3 or res["team"] == "c"]
    items = [(res, s) for res, spans in spec for s in spans]
    out = route(cfg, from_bytes("traces", traces(spec)))
    want = expected(cfg, items, matches)
    assert delivered(out) == want
    routed = Counter(n for names_ in want.values() for n in names_)
    assert out.unrouted == sum(1 for _, s in items if s["name"] not in routed)


def test_ignore_reports_each_distinct_error_once_per_request() -> None:
    spec: Spec = [({"service.name": "svc"}, [{"name": f"t{i}", "body": f"text {i}"} for i in range(50)])]
    out = route(error_config("ignore"), from_bytes("logs", logs(spec)))
    assert out.errors == ["table[0]: type Str does not support string indexing"]
    assert delivered(out) == {"logs/d": [f"t{i}" for i in range(50)]}
