"""healthcheckv2's pure parts: the Collector's aggregation rules and response shape, the status state
machine, and the running config with every secret redacted."""

from __future__ import annotations

import json

from gateway.component import InstanceID, StatusEvent
from gateway.config.load import load_text
from gateway.config.view import REDACTED, config_view
from gateway.extensions.health_status import Rules, aggregate, scope, to_json
from gateway.status import StatusHub

OTLP = InstanceID("receiver", "otlp", frozenset({"traces", "logs"}))
BATCH = InstanceID("processor", "batch", frozenset({"traces"}))
A = InstanceID("exporter", "otlp/a", frozenset({"traces"}))
B = InstanceID("exporter", "otlp/b", frozenset({"logs"}))
EXT = InstanceID("extension", "healthcheckv2")


def _tree(statuses: dict[InstanceID, StatusEvent], rules: Rules | None = None) -> dict[str, str]:
    tree = aggregate(statuses, rules or Rules(), 1000.0)
    return {"": tree.status, **{k: c.status for k, c in tree.components.items()}}


def test_aggregation_follows_the_collectors_precedence() -> None:
    ok = StatusEvent("StatusOK", None, 1.0)
    statuses = {OTLP: ok, BATCH: ok, A: ok, B: ok, EXT: ok}
    assert _tree(statuses) == {"": "StatusOK", "extensions": "StatusOK", "pipeline:traces": "StatusOK",
                               "pipeline:logs": "StatusOK"}
    statuses[A] = StatusEvent("StatusRecoverableError", "down", 5.0)
    statuses[B] = StatusEvent("StatusPermanentError", "refused", 6.0)
    assert _tree(statuses)[""] == "StatusPermanentError"  # by default a permanent error comes first
    only_recoverable = Rules(True, include_permanent=False, include_recoverable=True)
    assert _tree(statuses, only_recoverable)[""] == "StatusRecoverableError"
    assert _tree({**statuses, BATCH: StatusEvent("StatusStarting", None, 7.0)})["pipeline:traces"] == "StatusStarting"
    assert _tree({**statuses, BATCH: StatusEvent("StatusStopped", None, 7.0)})["pipeline:traces"] == "StatusStopping"
    assert _tree({**statuses, OTLP: StatusEvent("StatusFatalError", "x", 7.0)})[""] == "StatusFatalError"


def test_an_error_aggregate_keeps_when_the_failure_began_and_recovery_duration_counts_from_it() -> None:
    statuses = {A: StatusEvent("StatusRecoverableError", "first", 10.0),
                B: StatusEvent("StatusRecoverableError", "later", 50.0), EXT: StatusEvent("StatusOK", None, 60.0)}
    rules = Rules(True, include_recoverable=True, recovery_duration=30.0)
    tree = aggregate(statuses, rules, 0.0)
    assert (tree.status, tree.error, tree.timestamp) == ("StatusRecoverableError", "first", 10.0)
    assert rules.healthy(tree, 39.0) and not rules.healthy(tree, 41.0)
    assert rules.http_code(tree, 39.0) == 200 and rules.http_code(tree, 41.0) == 500
    assert rules.serving(tree, 39.0) and not rules.serving(tree, 41.0)
    # Errors are shown, but make nothing unhealthy, unless component_health includes them.
    assert Rules().healthy(tree, 1e9) and Rules().http_code(tree, 1e9) == 200
    permanent = aggregate({A: StatusEvent("StatusPermanentError", "no", 1.0)}, Rules(), 0.0)
    assert Rules(True, include_permanent=True).http_code(permanent, 2.0) == 500
    assert not Rules(True, include_permanent=True).serving(permanent, 2.0)


def test_json_shape_concise_and_verbose() -> None:
    statuses = {A: StatusEvent("StatusRecoverableError", "down", 10.0), EXT: StatusEvent("StatusOK", None, 5.0)}
    tree = aggregate(statuses, Rules(), 0.0)
    concise = to_json(tree, Rules(), 20.0, False, 1.0)
    assert concise == {"start_time": "1970-01-01T00:00:01Z", "healthy": True, "status": "StatusRecoverableError",
                       "error": "down", "status_time": "1970-01-01T00:00:10Z"}
    verbose = to_json(tree, Rules(), 20.0, True, 1.0)
    assert verbose["components"]["pipeline:traces"] == {
        "healthy": True, "status": "StatusRecoverableError", "error": "down", "status_time": "1970-01-01T00:00:10Z",
        "components": {"exporter:otlp/a": {"healthy": True, "status": "StatusRecoverableError", "error": "down",
                                           "status_time": "1970-01-01T00:00:10Z"}}}
    assert scope(tree, "traces") is tree.components["pipeline:traces"]
    assert scope(tree, "extensions") is tree.components["extensions"] and scope(tree, "logs") is None


def test_the_hub_keeps_the_collectors_transitions() -> None:
    hub = StatusHub()
    hub.replace([A])
    seen: list[str] = []
    stop = hub.watch(lambda: seen.append(hub.statuses()[A].status))
    report = hub.reporter("exporter", "otlp/a").report
    report(StatusEvent("StatusOK"))  # before starting: not a transition
    assert seen == []
    for status in ("StatusStarting", "StatusOK", "StatusRecoverableError"):
        report(StatusEvent(status))
    began = hub.statuses()[A].timestamp
    report(StatusEvent("StatusRecoverableError"))  # again: keeps when it began
    assert hub.statuses()[A].timestamp == began
    report(StatusEvent("StatusPermanentError"))
    report(StatusEvent("StatusOK"))  # a permanent error stays until the component stops
    assert seen == ["StatusStarting", "StatusOK", "StatusRecoverableError", "StatusPermanentError"]
    report(StatusEvent("StatusStopping"))
    stop()
    report(StatusEvent("StatusStopped"))
    assert seen[-1] == "StatusStopping" and hub.statuses()[A].status == "StatusStopped"
    hub.replace([B])  # a reload: what is gone is gone
    assert list(hub.statuses()) == []


SECRETS = ("bearer-secret-1", "bearer-secret-2", "alice:$apr1$x$y", "basic-pass", "oauth-secret", "assertion-9",
           "hdr-secret", "setter-secret", "env-secret", "url-pass")


def test_the_config_view_redacts_every_secret() -> None:
    text = """
receivers: {otlp: {protocols: {grpc: {auth: {authenticator: bearertokenauth/server}}}}}
exporters:
  otlp:
    endpoint: collector:4317
    headers: {x-api-key: hdr-secret, authorization: "${env:TOKEN}"}
    auth: {authenticator: oauth2client}
  otlphttp:
    endpoint: https://user:url-pass@backend:4318
    auth: {authenticator: basicauth/client}
  otlp/setter:
    endpoint: collector:4317
    auth: {authenticator: headers_setter}
extensions:
  bearertokenauth/server: {tokens: [bearer-secret-1, {token: bearer-secret-2, tenant: t}]}
  basicauth/server: {htpasswd: {inline: "alice:$apr1$x$y"}}
  basicauth/client: {client_auth: {username: bob, password: basic-pass}}
  oauth2client: {client_id: me, client_secret: oauth-secret, token_url: "https://idp/token",
                 endpoint_params: {client_assertion: assertion-9}}
  headers_setter: {headers: [{key: x-scope-token, value: setter-secret}]}
service:
  extensions: [bearertokenauth/server, basicauth/server, basicauth/client, oauth2client, headers_setter]
  pipelines: {traces: {receivers: [otlp], exporters: [otlp, otlphttp, otlp/setter]}}
"""
    view = config_view(load_text(text, env={"TOKEN": "Bearer env-secret"}).config)
    dumped = json.dumps(view)
    assert [s for s in SECRETS if s in dumped] == []
    assert view["exporters"]["otlp"]["headers"] == {"x-api-key": REDACTED, "authorization": REDACTED}
    assert view["exporters"]["otlphttp"]["endpoint"] == f"https://{REDACTED}@backend:4318"
    assert view["extensions"]["bearertokenauth/server"]["tokens"] == REDACTED
    assert view["extensions"]["basicauth/server"]["htpasswd"]["inline"] == REDACTED
    assert view["extensions"]["basicauth/client"]["client_auth"] == {
        "username": "bob", "password": REDACTED, "username_file": None, "password_file": None,
        "aws_secrets_manager": None}
    assert view["extensions"]["oauth2client"]["client_id"] == "me"
    assert view["extensions"]["headers_setter"]["headers"][0]["key"] == "x-scope-token"
    # What is not a secret stays readable, defaults and durations included.
    assert view["exporters"]["otlp"]["retry_on_failure"]["initial_interval"] == "5s"
    assert view["service"]["pipelines"]["traces"]["exporters"] == ["otlp", "otlphttp", "otlp/setter"]
