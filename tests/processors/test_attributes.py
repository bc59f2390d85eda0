"""The `attributes` and `resource` processors: every action, the matchers, pass-through of batches
nothing applies to, other signals, and the Collector's config error messages."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest

from gateway.config.decode import Errors, decode
from pipelines.batch import RequestContext
from pipelines.processors.actions import ActionConfig
from pipelines.processors.attributes import AttributesProcessor, Config
from pipelines.processors.matching import AttributeMatch, LibraryMatch, MatchProperties
from pipelines.processors.resource import Config as ResourceConfig
from pipelines.processors.resource import ResourceProcessor
from tests.processors.build import batch_of, log_request, metric_request, span_attrs, span_request


def run(actions: list[dict[str, Any]], attrs: dict[str, Any], ctx: RequestContext | None = None,
        **match: Any) -> dict[str, Any]:
    cfg = Config(actions=tuple(ActionConfig(**a) for a in actions), **match)
    out = AttributesProcessor(cfg, "traces").process(batch_of(span_request([{"attrs": attrs}]), context=ctx))
    assert out is not None
    return span_attrs(out)[0]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- actions

def test_insert_only_when_absent() -> None:
    assert run([{"key": "a", "value": "new", "action": "insert"}], {"a": "old"}) == {"a": "old"}
    assert run([{"key": "b", "value": 5, "action": "INSERT"}], {"a": "old"}) == {"a": "old", "b": 5}


def test_update_only_when_present() -> None:
    assert run([{"key": "b", "value": 1.5, "action": "update"}], {"a": "x"}) == {"a": "x"}
    assert run([{"key": "a", "value": True, "action": "update"}], {"a": "x"}) == {"a": True}


def test_upsert_both_ways() -> None:
    acts = [{"key": "a", "value": "v", "action": "upsert"}]
    assert run(acts, {}) == {"a": "v"}
    assert run(acts, {"a": 1}) == {"a": "v"}


def test_from_attribute_copies_and_missing_source_does_nothing() -> None:
    acts = [{"key": "b", "from_attribute": "a", "action": "upsert"}]
    assert run(acts, {"a": [1, "x"]}) == {"a": [1, "x"], "b": [1, "x"]}
    assert run(acts, {"c": 1}) == {"c": 1}


def test_from_context_metadata_and_tenant() -> None:
    ctx = RequestContext("team-a", {"x-team": ("red", "blue")})
    acts = [{"key": "team", "from_context": "metadata.x-team", "action": "insert"},
            {"key": "tenant", "from_context": "auth.tenant", "action": "insert"},
            {"key": "bare", "from_context": "X-Team", "action": "insert"},
            {"key": "none", "from_context": "metadata.absent", "action": "insert"}]
    assert run(acts, {}, ctx) == {"team": "red;blue", "tenant": "team-a", "bare": "red;blue"}
    assert run(acts[1:2], {}, RequestContext()) == {}


def test_delete_by_key_and_pattern() -> None:
    attrs = {"hatchet.payload": "raw", "hatchet.step_run_id": "1", "http.url": "u"}
    assert run([{"key": "hatchet.payload", "action": "delete"}], attrs) == {"hatchet.step_run_id": "1", "http.url": "u"}
    assert run([{"pattern": "^hatchet\\.", "action": "delete"}], attrs) == {"http.url": "u"}
    # unanchored, like Go's MatchString
    assert run([{"pattern": "url", "action": "delete"}], attrs) == {
        "hatchet.payload": "raw", "hatchet.step_run_id": "1"}


def test_hash_matches_the_collectors_byte_encodings() -> None:
    attrs = {"s": "héllo", "i": -2, "b": True, "f": 1.5, "bytes": b"\x01"}
    got = run([{"pattern": ".*", "action": "hash"}], attrs)
    assert got == {
        "s": sha("héllo".encode()),
        "i": sha(struct.pack("<q", -2)),
        "b": sha(b"\x01"),
        "f": sha(struct.pack("<d", 1.5)),
        "bytes": "",  # types the Collector does not hash become the empty string
    }


def test_extract_named_groups_overrides_targets() -> None:
    acts = [{"key": "http.url", "pattern": "^/api/(?P<version>v\\d+)/(?<resource>\\w+)", "action": "extract"}]
    got = run(acts, {"http.url": "/api/v2/users?x=1", "version": "old"})
    assert got == {"http.url": "/api/v2/users?x=1", "version": "v2", "resource": "users"}
    assert run(acts, {"http.url": 5}) == {"http.url": 5}


@pytest.mark.parametrize(("to", "before", "after"), [
    ("int", "42", 42), ("int", "4.2", "4.2"), ("int", 4.9, 4), ("int", True, 1), ("int", " 1", " 1"),
    ("double", "1e3", 1000.0), ("double", 3, 3.0), ("double", "x", "x"), ("double", False, 0.0),
    ("string", 7, "7"), ("string", 1.0, "1"), ("string", 0.5, "0.5"), ("string", True, "true"),
    ("string", 1e21, "1e+21"), ("string", 1e-7, "1e-7"),
])
def test_convert(to: str, before: Any, after: Any) -> None:
    assert run([{"key": "a", "converted_type": to, "action": "convert"}], {"a": before}) == {"a": after}


def test_actions_apply_in_order() -> None:
    acts = [{"key": "a", "value": "secret", "action": "insert"}, {"key": "a", "action": "hash"},
            {"key": "b", "from_attribute": "a", "action": "insert"}]
    assert run(acts, {}) == {"a": sha(b"secret"), "b": sha(b"secret")}


# ---------------------------------------------------------------- pass-through and copies

def test_unchanged_batch_passes_through_untouched() -> None:
    batch = batch_of(span_request([{"attrs": {"a": 1}}]))
    data = batch.data()
    for actions in ([{"key": "zzz", "action": "delete"}], [{"key": "a", "value": 1, "action": "update"}],
                    [{"key": "a", "value": 2, "action": "insert"}], [{"key": "a", "converted_type": "int",
                                                                        "action": "convert"}]):
        proc = AttributesProcessor(Config(actions=tuple(ActionConfig(**a) for a in actions)), "traces")
        out = proc.process(batch)
        assert out is batch
        assert out.data() is data


def test_changed_batch_is_a_copy_and_the_shared_one_is_untouched() -> None:
    batch = batch_of(span_request([{"attrs": {"a": 1}}]), context=RequestContext("t"))
    proc = AttributesProcessor(Config(actions=(ActionConfig(key="a", action="delete"),)), "traces")
    out = proc.process(batch)
    assert out is not None and out is not batch
    assert span_attrs(out) == [{}] and span_attrs(batch) == [{"a": 1}]
    assert out.context.tenant == "t" and out.items == 1


def test_resource_processor_touches_resources_only() -> None:
    req = span_request([{"attrs": {"k": "span"}}], resource={"service.name": "svc", "k": "res"})
    cfg = ResourceConfig(attributes=(ActionConfig(key="k", action="delete"),
                                     ActionConfig(key="deployment.environment", value="prod", action="upsert")))
    for signal, r in (("traces", req), ("logs", log_request([{"k": "rec"}], {"k": "res"})),
                      ("metrics", metric_request([{"k": "dp"}], {"k": "res"}))):
        out = ResourceProcessor(cfg, signal).process(batch_of(r, signal))
        assert out is not None
        msg = out.message()
        res = getattr(msg, {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}[signal])
        keys = [kv.key for kv in res[0].resource.attributes]
        assert "k" not in keys and "deployment.environment" in keys
    out = ResourceProcessor(cfg, "traces").process(batch_of(req))
    assert out is not None and span_attrs(out) == [{"k": "span"}]
    same = batch_of(span_request([], resource={"deployment.environment": "prod"}))
    assert ResourceProcessor(ResourceConfig(attributes=cfg.attributes[1:]), "traces").process(same) is same


def test_logs_and_metrics_attributes() -> None:
    cfg = Config(actions=(ActionConfig(key="secret", action="delete"),))
    out = AttributesProcessor(cfg, "logs").process(batch_of(log_request([{"secret": 1, "ok": 2}]), "logs"))
    assert out is not None
    assert [kv.key for kv in out.message().resource_logs[0].scope_logs[0].log_records[0].attributes] == ["ok"]
    out = AttributesProcessor(cfg, "metrics").process(batch_of(metric_request([{"secret": 1}, {"x": 1}]), "metrics"))
    assert out is not None
    points = out.message().resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points
    assert [[kv.key for kv in p.attributes] for p in points] == [[], ["x"]]
    with pytest.raises(ValueError, match="services, span_names, and span_kinds are not valid for logs"):
        AttributesProcessor(Config(actions=cfg.actions, include=MatchProperties("strict", services=("a",))), "logs")


# ---------------------------------------------------------------- include / exclude

SPANS = [
    {"name": "GET /a", "kind": 2, "attrs": {"http.method": "GET", "n": 1}},
    {"name": "POST /b", "kind": 3, "attrs": {"http.method": "POST", "n": 2.5}},
    {"name": "db", "kind": 1, "attrs": {}},
]


def marked(include: MatchProperties | None = None, exclude: MatchProperties | None = None,
           resource: dict[str, Any] | None = None, scope: tuple[str, str] = ("lib", "1.0")) -> list[bool]:
    cfg = Config(actions=(ActionConfig(key="hit", value=True, action="insert"),), include=include, exclude=exclude)
    out = AttributesProcessor(cfg, "traces").process(batch_of(span_request(SPANS, resource, scope)))
    assert out is not None
    return ["hit" in a for a in span_attrs(out)]


def test_services_span_names_kinds() -> None:
    assert marked(MatchProperties("strict", services=("svc",))) == [True, True, True]
    assert marked(MatchProperties("strict", services=("other", "svc2"))) == [False] * 3
    assert marked(MatchProperties("strict", services=("<nil-service-name>",)), resource={}) == [True] * 3
    assert marked(MatchProperties("regexp", span_names=("^GET", "db"))) == [True, False, True]
    assert marked(MatchProperties("strict", span_kinds=("SPAN_KIND_SERVER", "SPAN_KIND_INTERNAL"))) == [
        True, False, True]


def test_properties_are_anded_values_ored() -> None:
    mp = MatchProperties("regexp", services=("sv",), span_names=("/",), span_kinds=("CLIENT",))
    assert marked(mp) == [False, True, False]


def test_attributes_all_must_match_and_types_count_in_strict() -> None:
    assert marked(MatchProperties("strict", attributes=(AttributeMatch("http.method", "GET"),))) == [True, False, False]
    assert marked(MatchProperties("strict", attributes=(AttributeMatch("n"),))) == [True, True, False]
    assert marked(MatchProperties("strict", attributes=(AttributeMatch("n", 1), AttributeMatch("http.method")))) == [
        True, False, False]
    assert marked(MatchProperties("strict", attributes=(AttributeMatch("n", "1"),))) == [False, False, False]
    # regexp matches the string form of scalars (doubles in Go's 'f' format)
    assert marked(MatchProperties("regexp", attributes=(AttributeMatch("n", "^2\\.5$"),))) == [False, True, False]


def test_resources_and_libraries() -> None:
    assert marked(MatchProperties("strict", resources=(AttributeMatch("service.name", "svc"),))) == [True] * 3
    assert marked(MatchProperties("strict", resources=(AttributeMatch("env"),))) == [False] * 3
    assert marked(MatchProperties("strict", libraries=(LibraryMatch("lib"),))) == [True] * 3
    assert marked(MatchProperties("strict", libraries=(LibraryMatch("lib", "2.0"),))) == [False] * 3
    assert marked(MatchProperties("strict", libraries=(LibraryMatch("lib", ""),)), scope=("lib", "")) == [True] * 3
    assert marked(MatchProperties("regexp", libraries=(LibraryMatch("l.b", "^1"),))) == [True] * 3


def test_include_then_exclude() -> None:
    inc = MatchProperties("strict", services=("svc",))
    exc = MatchProperties("strict", span_names=("db",))
    assert marked(inc, exc) == [True, True, False]
    assert marked(None, exc) == [True, True, False]
    assert marked(None, MatchProperties("strict", services=("svc",))) == [False] * 3


# ---------------------------------------------------------------- config errors

def errors_of(cls: type, body: dict[str, Any]) -> list[str]:
    errors = Errors()
    decode(cls, body, "processors::attributes/x", errors)
    return errors.lines


P = "processors::attributes/x"


@pytest.mark.parametrize(("body", "message"), [
    ({}, 'missing required field "actions"'),
    ({"actions": [{"action": "insert", "value": 1}]},
     'error creating AttrProc due to missing required field "key" at the 0-th actions'),
    ({"actions": [{"key": "a", "action": "delete"}, {"action": "hash"}]},
     'error creating AttrProc due to missing required field (at least one of "key" and "pattern" have to be used) '
     "at the 1-th actions"),
    ({"actions": [{"key": "a", "action": "insert"}]},
     'error creating AttrProc. Either field "value", "from_attribute" or "from_context" setting must be specified '
     "for 0-th action"),
    ({"actions": [{"key": "a", "action": "upsert", "value": 1, "from_attribute": "b"}]},
     "error creating AttrProc due to multiple value sources being set at the 0-th actions"),
    ({"actions": [{"key": "a", "action": "update", "value": 1, "pattern": "x"}]},
     'error creating AttrProc. Action "update" does not use the "pattern" field. This must not be specified for '
     "0-th action"),
    ({"actions": [{"key": "a", "action": "hash", "value": 1}]},
     'error creating AttrProc. Action "hash" does not use "value" or "from_attribute" field. These must not be '
     "specified for 0-th action"),
    ({"actions": [{"key": "a", "action": "delete", "pattern": "("}]},
     'error creating AttrProc. Field "pattern" has invalid pattern: "(" to be set at the 0-th actions'),
    ({"actions": [{"key": "a", "action": "extract"}]},
     'error creating AttrProc due to missing required field "pattern" for action "extract" at the 0-th action'),
    ({"actions": [{"key": "a", "action": "extract", "pattern": "a+"}]},
     'error creating AttrProc. Field "pattern" contains no named matcher groups at the 0-th actions'),
    ({"actions": [{"key": "a", "action": "extract", "pattern": "(?P<x>a)(b)"}]},
     'error creating AttrProc. Field "pattern" contains at least one unnamed matcher group at the 0-th actions'),
    ({"actions": [{"key": "a", "action": "convert"}]},
     'error creating AttrProc due to missing required field "converted_type" for action "convert" at the 0-th action'),
    ({"actions": [{"key": "a", "action": "convert", "converted_type": "bool"}]},
     'error creating AttrProc due to invalid value "bool" in field "converted_type" for action "convert" at the '
     "0-th action"),
    ({"actions": [{"key": "a", "action": "rename"}]},
     'error creating AttrProc due to unsupported action "rename" at the 0-th actions'),
])
def test_action_config_errors(body: dict[str, Any], message: str) -> None:
    assert errors_of(Config, body) == [f"{P}: {message}"]


ACT = [{"key": "a", "action": "delete"}]


@pytest.mark.parametrize(("include", "message"), [
    ({"match_type": "strict"},
     'at least one of "services", "span_names", "span_kinds", "attributes", "libraries" or "resources" field must '
     "be specified"),
    ({"match_type": "strict", "span_kinds": ["server"]},
     "span_kinds string must match one of the standard span kinds when match_type=strict: [SPAN_KIND_CLIENT "
     "SPAN_KIND_CONSUMER SPAN_KIND_INTERNAL SPAN_KIND_PRODUCER SPAN_KIND_SERVER]"),
    ({"services": ["a"]},
     "error creating service name filters: unrecognized match_type: '', valid types are: [regexp strict]"),
    ({"match_type": "regexp", "attributes": [{"key": "a", "value": 1}]},
     'error creating attribute filters: match_type=regexp for "a" only supports Str, but found Int'),
    ({"match_type": "strict", "resources": [{"value": 1}]},
     "error creating resource filters: can't have empty key in the list of attributes"),
    ({"match_type": "strict", "log_bodies": ["x"]}, "log_bodies should not be specified for trace spans"),
    ({"match_type": "strict", "log_severity_texts": ["x"]},
     "log_severity_texts should not be specified for trace spans"),
])
def test_match_config_errors(include: dict[str, Any], message: str) -> None:
    assert errors_of(Config, {"actions": ACT, "include": include}) == [f"{P}::include: {message}"]


def test_resource_requires_attributes() -> None:
    assert errors_of(ResourceConfig, {}) == [f'{P}: missing required field "attributes"']


def test_keys_written_by_earlier_actions_are_not_taken_as_absent() -> None:
    acts = [{"key": "a", "value": 1, "action": "insert"}, {"key": "a", "value": 2, "action": "insert"},
            {"key": "u", "pattern": "(?P<g>x+)", "action": "extract"}, {"key": "g", "value": "no", "action": "insert"}]
    assert run(acts, {"u": "xx"}) == {"u": "xx", "a": 1, "g": "xx"}


def marked_by(include: dict[str, Any], resource: dict[str, Any] | None = None) -> list[bool]:
    """`marked` with `include` given as YAML data, decoded as the loader does."""
    errors = Errors()
    cfg = decode(Config, {"actions": [{"key": "hit", "value": True, "action": "insert"}], "include": include},
                 P, errors)
    assert cfg is not None and not errors, errors.lines
    out = AttributesProcessor(cfg, "traces").process(batch_of(span_request(SPANS, resource)))
    assert out is not None
    return ["hit" in a for a in span_attrs(out)]


def test_include_keys_as_written_in_yaml() -> None:
    """Each matcher key, spelled as in a config file, selects fewer spans than no `include` (all three)."""
    assert marked(None) == [True, True, True]
    assert marked_by({"match_type": "strict", "span_names": ["db"]}) == [False, False, True]
    assert marked_by({"match_type": "regexp", "span_names": ["^(GET|POST) "]}) == [True, True, False]
    assert marked_by({"match_type": "strict", "services": ["other"]}) == [False, False, False]
    assert marked_by({"match_type": "strict", "span_kinds": ["SPAN_KIND_CLIENT"]}) == [False, True, False]
    assert marked_by({"match_type": "strict", "attributes": [{"key": "n"}]}) == [True, True, False]
    assert marked_by({"match_type": "strict", "attributes": [{"key": "n", "value": 1}]}) == [True, False, False]
    assert marked_by({"match_type": "strict", "resources": [{"key": "env", "value": "prod"}]},
                     {"service.name": "svc", "env": "dev"}) == [False, False, False]
    assert marked_by({"match_type": "strict", "libraries": [{"name": "other"}]}) == [False, False, False]
    assert marked_by({"match_type": "strict", "libraries": [{"name": "lib", "version": "2.0"}]}) == [False] * 3
    assert marked_by({"match_type": "strict", "libraries": [{"name": "lib", "version": "1.0"}]}) == [True] * 3
