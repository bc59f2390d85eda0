"""basicauth: the hashes htpasswd writes, hostile Authorization headers, inline over file, the file
re-read when it changes, and a running gateway answering the SDKs 401 / UNAUTHENTICATED or taking their spans."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path

import bcrypt
import grpc
import pytest
from passlib import hash as ph

from gateway.auth import AuthError
from gateway.component import Settings
from gateway.extensions import basicauth
from gateway.extensions.basicauth import BasicAuthServer, Config, HtpasswdConfig, decode_basic, verify
from gateway.receivers.ingest import WIRE_CODES, Ingest
from gateway.telemetry import Telemetry
from gateway.transport.grpc_status import Status
from pipelines.errors import RetryableError
from tests.auth.support import gateway_config, grpc_status, http_status, send_spans
from tests.harness import Ports, Sink, running


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def server(**htpasswd: str) -> BasicAuthServer:
    cfg = Config(htpasswd=HtpasswdConfig(**htpasswd))
    return BasicAuthServer(Settings("basicauth", cfg, Telemetry(), None))  # type: ignore[arg-type]


@pytest.mark.parametrize("hashed", [
    bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode(),                    # htpasswd -B ($2b$)
    bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1),  # Apache's $2y$
    ph.ldap_sha1.hash("s3cret"),                                             # htpasswd -s {SHA}
    ph.ldap_salted_sha1.hash("s3cret"),                                      # {SSHA}
    ph.apr_md5_crypt.hash("s3cret"),                                         # htpasswd -m $apr1$
    ph.md5_crypt.hash("s3cret"),                                             # $1$
    ph.sha256_crypt.using(rounds=1000).hash("s3cret"),                             # htpasswd -2 $5$
    ph.sha512_crypt.using(rounds=1000).hash("s3cret"),                             # htpasswd -5 $6$
    "s3cret",                                                                # plaintext, the Collector's inline
], ids=["bcrypt-2b", "bcrypt-2y", "sha", "ssha", "apr1", "md5", "sha256", "sha512", "plain"])  # salts vary
def test_htpasswd_schemes(hashed: str) -> None:
    assert verify("s3cret", hashed)
    assert not verify("s3cret!", hashed)
    a = server(inline=f"alice:{hashed}\n")
    assert asyncio.run(a.identify({"authorization": basic("alice", "s3cret")})).attributes == {"username": ("alice",)}
    with pytest.raises(AuthError, match=r"^invalid credentials$"):
        asyncio.run(a.identify({"authorization": basic("alice", "wrong")}))


@pytest.mark.parametrize(("value", "message"), [
    (None, "no basic auth provided"),
    ("", "no basic auth provided"),
    ("Bearer abc", "invalid authorization scheme prefix"),
    ("Basic !!!not-base64!!!", "invalid authorization format"),
    ("Basic " + base64.b64encode(b"no-colon").decode(), "invalid authorization format"),
    ("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "invalid authorization format"),
    ("Basic " + "A" * 100_000, "invalid authorization format"),
    (basic("nobody", "s3cret"), "invalid credentials"),
])
def test_hostile_or_wrong_headers_are_refused_with_the_collectors_messages(value: str | None, message: str) -> None:
    a = server(inline="alice:s3cret\n")
    headers = {"authorization": value} if value is not None else {}
    with pytest.raises(AuthError) as exc:
        asyncio.run(a.identify(headers))
    assert str(exc.value) == message


def test_decode_basic_keeps_colons_in_the_password() -> None:
    assert decode_basic(basic("u", "a:b:c")) == ("u", "a:b:c")
    assert decode_basic("basic " + base64.b64encode(b"u:p").decode()) == ("u", "p")


def test_htpasswd_file_and_inline_inline_wins_and_the_file_is_reread(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(basicauth, "FILE_CHECK_INTERVAL", 0.01)
    path = tmp_path / ".htpasswd"
    path.write_text(f"alice:{ph.ldap_sha1.hash('from-file')}\nbob:{ph.apr_md5_crypt.hash('bob-pw')}\n")

    async def scenario() -> None:
        a = server(file=str(path), inline="alice:from-inline\n")
        await a.start()
        try:
            assert await a.identify({"authorization": basic("alice", "from-inline")})
            with pytest.raises(AuthError):
                await a.identify({"authorization": basic("alice", "from-file")})
            assert await a.identify({"authorization": basic("bob", "bob-pw")})
            path.write_text(f"carol:{ph.sha512_crypt.using(rounds=1000).hash('carol-pw')}\n")
            for _ in range(500):  # the watcher re-reads it within a few checks
                if "carol" in a._users:
                    break
                await asyncio.sleep(0.01)
            assert await a.identify({"authorization": basic("carol", "carol-pw")})
            with pytest.raises(AuthError):  # bob left the file: his remembered success is forgotten
                await a.identify({"authorization": basic("bob", "bob-pw")})
        finally:
            await a.shutdown()

    asyncio.run(scenario())


def test_an_unknown_user_is_checked_against_a_hash_of_the_same_scheme_and_cost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[tuple[str, str, str]] = []
    real_verify = basicauth.verify

    def spy(password: str, hashed: str) -> bool:
        checked.append((threading.current_thread().name, password, hashed))
        return real_verify(password, hashed)

    monkeypatch.setattr(basicauth, "verify", spy)
    known = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$", 1)
    a = server(inline=f"alice:{known}\nbob:plain-pw\n")

    async def scenario() -> None:
        with pytest.raises(AuthError, match=r"^invalid credentials$"):
            await a.identify({"authorization": basic("alice", "wrong")})
        for user in ("nobody", "mallory"):
            with pytest.raises(AuthError, match=r"^invalid credentials$"):
                await a.identify({"authorization": basic(user, "s3cret")})
        await a.shutdown()

    asyncio.run(scenario())
    assert [password for _, password, _ in checked] == ["wrong", "s3cret", "s3cret"]
    assert all(thread.startswith("basicauth-hash") for thread, _, _ in checked), "on the extension's own threads"
    dummies = {hashed for _, _, hashed in checked[1:]}
    assert len(dummies) == 1 and known not in dummies, "one dummy hash, not a user's"
    dummy = dummies.pop()
    assert ph.bcrypt.from_string(dummy).rounds == ph.bcrypt.from_string(known).rounds == 5


def test_password_checks_run_on_a_bounded_executor_and_past_it_are_refused_as_retryable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(password: str, hashed: str) -> bool:
        release.wait(30)
        return False

    monkeypatch.setattr(basicauth, "verify", stuck)
    monkeypatch.setattr(basicauth, "HASH_WAITING", 3)
    a = server(inline=f"alice:{ph.md5_crypt.hash('s3cret')}\n")

    async def scenario() -> None:
        capacity = basicauth.HASH_THREADS + basicauth.HASH_WAITING
        held = [asyncio.ensure_future(a.identify({"authorization": basic("alice", f"pw-{i}")}))
                for i in range(capacity)]
        await asyncio.sleep(0)
        with pytest.raises(RetryableError, match="too many password checks waiting") as refused:
            await a.identify({"authorization": basic("alice", "one-more")})
        assert refused.value.delay == basicauth.BUSY_RETRY_AFTER
        assert a.busy_refusals == 1
        # Through a receiver's Ingest: 503 / UNAVAILABLE with a retry delay, counted as unavailable.
        telemetry = Telemetry()
        ingest = Ingest("otlp", "http", "traces", None, telemetry, a, False)  # type: ignore[arg-type]
        _, result = await ingest.authenticate({"authorization": basic("alice", "another")})
        assert result is not None and result.outcome == "unavailable" and result.retry_after == 1.0
        assert WIRE_CODES[result.outcome] == (Status.UNAVAILABLE, 503)
        assert sum(sample.value for metric in telemetry.registry.collect() for sample in metric.samples
                   if sample.name == "otelcol_gateway_receiver_failed_requests_total"
                   and sample.labels.get("reason") == "unavailable") == 1
        release.set()
        for task in held:
            with pytest.raises(AuthError):
                await task
        for _ in range(100):  # the threads report their checks done
            if a._hasher.checks == 0:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(AuthError, match="invalid credentials"):  # room again: checked, not refused
            await a.identify({"authorization": basic("alice", "again")})
        await a.shutdown()

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_unknown_users_have_a_budget_of_their_own_and_never_starve_the_users_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Made-up user names fill their own budget (one running, `UNKNOWN_WAITING` waiting); past it they
    are refused at once with 401, and a known user's check still runs meanwhile."""
    release = threading.Event()
    real_verify = basicauth.verify
    threads: list[str] = []

    def stuck_unless_known(password: str, hashed: str) -> bool:
        threads.append(threading.current_thread().name)
        if password != "s3cret":
            release.wait(30)
        return real_verify(password, hashed)

    monkeypatch.setattr(basicauth, "verify", stuck_unless_known)
    a = server(inline=f"alice:{ph.md5_crypt.hash('s3cret')}\n")

    async def scenario() -> None:
        budget = basicauth.UNKNOWN_THREADS + basicauth.UNKNOWN_WAITING
        held = [asyncio.ensure_future(a.identify({"authorization": basic(f"nobody-{i}", "guess")}))
                for i in range(budget)]
        for _ in range(500):  # the dummy hash is made, then every check is submitted
            if a._unknown.checks == budget:
                break
            await asyncio.sleep(0.01)
        assert a._unknown.checks == budget and a._hasher.checks == 0
        for i in range(100):  # past the budget: 401 at once, never retryable, nothing submitted
            with pytest.raises(AuthError, match=r"^invalid credentials$"):
                await a.identify({"authorization": basic(f"more-{i}", "guess")})
        assert a.unknown_refusals == 100 and a.busy_refusals == 0 and a._unknown.checks == budget
        identity = await a.identify({"authorization": basic("alice", "s3cret")})  # not starved
        assert identity.attributes["username"] == ("alice",)
        release.set()
        for task in held:
            with pytest.raises(AuthError, match=r"^invalid credentials$"):
                await task
        await a.shutdown()

    try:
        asyncio.run(scenario())
    finally:
        release.set()
    assert "basicauth-hash_0" in threads and "basicauth-hash-unknown_0" in threads


def test_a_running_gateway_takes_basic_credentials_from_the_sdks_and_refuses_the_rest(
        ports: Ports, sink: Sink, tmp_path: Path) -> None:
    htpasswd = tmp_path / ".htpasswd"
    htpasswd.write_text(f"svc-a:{bcrypt.hashpw(b'pw-a', bcrypt.gensalt(4)).decode()}\n")
    exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}"""
    extensions = f"""  basicauth:
    htpasswd:
      file: "{htpasswd}"
      inline: |
        svc-b:{ph.ldap_sha1.hash('pw-b')}"""
    cfg = gateway_config(ports, exporters, "[otlp]", extensions, "basicauth", "auth: {authenticator: basicauth}")
    cfg = cfg.replace("processors:\n", "processors:\n  attributes/user:\n    actions:\n"
                      "      - {key: user, from_context: auth.username, action: upsert}\n", 1)
    cfg = cfg.replace("processors: [batch]", "processors: [attributes/user, batch]")
    with running(cfg, ports) as gw:
        refusals = [grpc_status(ports, None), grpc_status(ports, basic("svc-a", "wrong")),
                    grpc_status(ports, "Basic %%%")]
        assert [code for code, _ in refusals] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        assert [details for _, details in refusals] == ["no basic auth provided", "invalid credentials",
                                                        "invalid authorization format"]
        status, body = http_status(ports, basic("svc-b", "wrong"))
        assert status == 401 and "wrong" not in body and "invalid credentials" in body
        assert http_status(ports, "Basic " + "A" * 60_000)[0] == 401
        assert gw.metric("otelcol_gateway_receiver_failed_requests_total", reason="unauthenticated") == 5
        assert gw.health() == 200

        send_spans(ports, "grpc", ["a-1", "a-2"], {"authorization": basic("svc-a", "pw-a")})
        send_spans(ports, "http", ["b-1", "b-2"], {"Authorization": basic("svc-b", "pw-b")})
        spans = sink.wait_spans(4)
        users = {span.name: {kv.key: kv.value.string_value for kv in span.attributes}["user"] for _, _, span in spans}
        assert users == {"a-1": "svc-a", "a-2": "svc-a", "b-1": "svc-b", "b-2": "svc-b"}
        assert gw.metric("otelcol_receiver_accepted_spans_total") == 4
        assert "pw-a" not in gw.stderr() and "wrong" not in gw.stderr()
        assert gw.stop() == 0
