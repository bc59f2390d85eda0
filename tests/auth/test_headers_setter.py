"""headers_setter: each action, each value source, and the metadata keys it asks the exporter to keep."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.component import Settings
from gateway.extensions.headers_setter import Config, HeaderConfig, HeadersSetter
from gateway.telemetry import Telemetry
from pipelines.batch import RequestContext


def setter(*headers: dict[str, Any]) -> HeadersSetter:
    config = Config(headers=tuple(HeaderConfig(**h) for h in headers))
    assert config.validate() == []
    return HeadersSetter(Settings("headers_setter", config, Telemetry(), None))  # type: ignore[arg-type]


def applied(s: HeadersSetter, start: dict[str, str], context: RequestContext) -> dict[str, str]:
    headers = dict(start)
    asyncio.run(s.apply(headers, context))
    return headers


CONTEXT = RequestContext("team-a", {"x-tenant": ("acme",), "x-multi": ("a", "b")},
                         {"username": ("alice",), "membership": ("dev", "ops")})


def test_action_insert_update_upsert_delete() -> None:
    s = setter({"key": "A", "action": "insert", "value": "new"}, {"key": "B", "action": "update", "value": "new"},
               {"key": "C", "action": "upsert", "value": "new"}, {"key": "D", "action": "delete"},
               {"key": "E", "action": "update", "value": "new"})
    out = applied(s, {"a": "old", "b": "old", "c": "old", "d": "old"}, CONTEXT)
    assert out == {"a": "old", "b": "new", "c": "new"}  # insert keeps, update changes, E absent stays absent
    assert applied(s, {}, CONTEXT) == {"a": "new", "c": "new"}


def test_value_from_context_from_attribute_and_default_value() -> None:
    s = setter({"key": "X-Scope-OrgID", "from_context": "X-Tenant"},
               {"key": "X-Multi", "from_context": "x-multi"},
               {"key": "X-User", "from_context": "auth.username"},
               {"key": "X-Tenant-Of-Token", "from_attribute": "tenant"},
               {"key": "X-Groups", "from_attribute": "membership"},
               {"key": "X-Absent", "from_context": "nothing", "default_value": "fallback"},
               {"key": "X-Absent-No-Default", "from_attribute": "nothing"})
    assert applied(s, {}, CONTEXT) == {
        "x-scope-orgid": "acme", "x-multi": "a;b", "x-user": "alice", "x-tenant-of-token": "team-a",
        "x-groups": '["dev", "ops"]', "x-absent": "fallback"}
    # Only request metadata keys are kept with the queued request: the identity always is.
    assert s.context_keys() == ("x-tenant", "x-multi", "nothing")


def test_config_problems_name_the_header() -> None:
    config = Config(headers=(HeaderConfig(key="A"), HeaderConfig(value="v"),
                             HeaderConfig(key="B", value="v", from_attribute="x"),
                             HeaderConfig(key="C", value="v", default_value="d"),
                             HeaderConfig(key="D", action="delete", value="v")))
    assert config.validate() == [
        "headers[0]: missing header source, must be 'from_context', 'from_attribute' or 'value'",
        "headers[1]: missing header name",
        "headers[2]: invalid header source, must be one of 'from_context', 'from_attribute' or 'value'",
        "headers[3]: default_value applies to from_context and from_attribute only",
        "headers[4]: a delete action takes no value",
    ]
