"""oidc against an identity provider the test runs on loopback (tests/auth/idp.py): the discovery
document and JWKS fetched over TLS trusting `issuer_ca_path`, keys rotated, and every bad token
(expired, not yet valid, wrong audience, wrong issuer, wrong key, `alg: none`, HMAC, garbage, huge)
refused with 401 / UNAUTHENTICATED while the SDKs' good tokens reach the backend with their identity."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import AuthError
from gateway.component import Settings
from gateway.extensions import oidc
from gateway.extensions.oidc import Config, OidcAuth
from gateway.telemetry import Telemetry
from pipelines.errors import RetryableError
from tests.auth.idp import Idp
from tests.auth.support import gateway_config, grpc_status, http_status, send_spans
from tests.e2e.support import Certs
from tests.harness import Ports, Sink, running


@pytest.fixture
def idp() -> Iterator[Idp]:
    provider = Idp()
    yield provider
    provider.stop()


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_oidc_through_a_running_gateway(ports: Ports, sink: Sink, certs: Certs) -> None:
    idp = Idp(tls=(certs.server_cert, certs.server_key))
    try:
        exporters = f"""  otlp:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}"""
        extensions = f"""  oidc:
    issuer_url: "{idp.issuer}"
    issuer_ca_path: "{certs.ca}"
    audience: gateway
    groups_claim: groups"""
        cfg = gateway_config(ports, exporters, "[otlp]", extensions, "oidc", "auth: {authenticator: oidc}",
                             processors="[attributes/who, batch]")
        cfg = cfg.replace("processors:\n", "processors:\n  attributes/who:\n    actions:\n"
                          "      - {key: who, from_context: auth.subject, action: upsert}\n"
                          "      - {key: groups, from_context: auth.membership, action: upsert}\n", 1)
        with running(cfg, ports) as gw:
            assert idp.jwks_fetches == 1  # at start
            stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            bad = {
                "expired": idp.token(lifetime=-120),
                "not yet valid": idp.token(nbf=int(time.time()) + 600),
                "wrong audience": idp.token(audience="someone-else"),
                "wrong issuer": idp.token(iss="https://evil.example.com"),
                "wrong key": idp.token(key=stranger),
                "alg none": _b64({"alg": "none", "kid": "key-1"}) + "." + _b64(
                    {"iss": idp.issuer, "aud": "gateway", "sub": "x", "exp": 4102444800}) + ".",
                "hmac with the public key": jwt.encode({"iss": idp.issuer, "aud": "gateway", "sub": "x",
                                                        "exp": 4102444800}, "not-a-key-of-the-issuer-but-32-bytes-long",
                                                       algorithm="HS256", headers={"kid": "key-1"}),
                "no expiry": idp.token(exp=None),
                "garbage": "abc.def.ghi",
            }
            expected = {
                "expired": "failed to verify token: Signature has expired",
                "not yet valid": "failed to verify token: The token is not yet valid (nbf)",
                "wrong audience": "failed to verify token: Audience doesn't match",
                "wrong issuer": "failed to verify token: Invalid issuer",
                "wrong key": "failed to verify token: Signature verification failed",
                "alg none": "failed to verify token: unsupported signing algorithm",
                "hmac with the public key": "failed to verify token: unsupported signing algorithm",
                "garbage": "failed to verify token: malformed token",
            }
            for name, token in bad.items():
                code, details = grpc_status(ports, f"Bearer {token}")
                assert code == grpc.StatusCode.UNAUTHENTICATED, name
                assert token not in details
                if name in expected:
                    assert details == expected[name], name
                assert http_status(ports, f"Bearer {token}")[0] == 401, name
            assert grpc_status(ports, None) == (grpc.StatusCode.UNAUTHENTICATED, "missing authorization header")
            assert grpc_status(ports, "Basic abc")[1] == "invalid authorization header format"
            assert http_status(ports, "Bearer " + "a" * 40_000)[0] == 401
            refused = gw.metric("otelcol_gateway_receiver_failed_requests_total", reason="unauthenticated")
            assert refused == 2 * len(bad) + 3
            assert gw.health() == 200

            good = idp.token(sub="svc-a", groups=["dev", "ops"])
            send_spans(ports, "grpc", ["g-1"], {"authorization": f"Bearer {good}"})
            send_spans(ports, "http", ["h-1"], {"Authorization": f"Bearer {good}"})
            # The provider rotates its key: a token with the new key id makes the JWKS be fetched again.
            fetches = idp.jwks_fetches
            old = good
            idp.rotate("key-2")
            send_spans(ports, "grpc", ["rotated"], {"authorization": f"Bearer {idp.token(sub='svc-b')}"})
            spans = sink.wait_spans(3)
            assert idp.jwks_fetches > fetches
            whos = {span.name: {kv.key: kv.value.string_value for kv in span.attributes} for _, _, span in spans}
            assert whos["g-1"]["who"] == whos["h-1"]["who"] == "svc-a" and whos["g-1"]["groups"] == "dev;ops"
            assert whos["rotated"]["who"] == "svc-b"
            # The old key left the JWKS: its tokens are refused now. A key id the issuer never had,
            # first seen after the rotation's fetch, is answered retryable until a fetch answers without it;
            # neither makes another fetch so soon after the rotation's.
            fetches = idp.jwks_fetches
            assert grpc_status(ports, f"Bearer {old}") == (
                grpc.StatusCode.UNAUTHENTICATED,
                "failed to verify token: no key of the issuer matches the token's key id")
            unknown = idp.token(kid="key-404", key=stranger)
            assert grpc_status(ports, f"Bearer {unknown}")[0] == grpc.StatusCode.UNAVAILABLE
            assert http_status(ports, f"Bearer {unknown}")[0] == 503
            assert idp.jwks_fetches == fetches
            assert gw.metric("otelcol_receiver_accepted_spans_total") == 3
            assert good not in gw.stderr()
            assert gw.stop() == 0
    finally:
        idp.stop()


def test_attribute_username_claim_groups_claim_and_ignore_audience(idp: Idp) -> None:
    config = Config(issuer_url=idp.issuer, ignore_audience=True, attribute="X-Id-Token", username_claim="email",
                    groups_claim="team")

    async def scenario() -> None:
        auth = OidcAuth(Settings("oidc", config, Telemetry(), None))  # type: ignore[arg-type]
        await auth.start()
        try:
            token = idp.token(audience="anything", email="a@example.com", team="sre")
            identity = await auth.identify({"x-id-token": f"Bearer {token}"})
            assert identity.attributes == {"subject": ("a@example.com",), "membership": ("sre",)}
            with pytest.raises(AuthError, match="missing X-Id-Token header"):
                await auth.identify({"authorization": f"Bearer {token}"})
            with pytest.raises(AuthError, match="failed to get subject from claims"):
                await auth.identify({"x-id-token": f"Bearer {idp.token()}"})
        finally:
            await auth.shutdown()

    asyncio.run(scenario())


def test_a_provider_down_at_start_answers_tokens_retryable_until_it_answers(idp: Idp) -> None:
    async def scenario() -> None:
        auth = OidcAuth(Settings("oidc", Config(issuer_url=idp.issuer + "/nowhere", audience="gateway"),
                                 Telemetry(), None))  # type: ignore[arg-type]
        await auth.start()
        try:
            with pytest.raises(RetryableError, match="not been fetched since"):
                await auth.identify({"authorization": f"Bearer {idp.token()}"})
        finally:
            await auth.shutdown()

    asyncio.run(scenario())


def test_made_up_key_ids_make_at_most_one_fetch_per_interval(idp: Idp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oidc, "MISSED_KIDS", 8)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = [1000.0]
    auth = OidcAuth(Settings("oidc", Config(issuer_url=idp.issuer, audience="gateway"), Telemetry(),
                             None), clock=lambda: now[0])  # type: ignore[arg-type]

    def header(kid: str) -> dict[str, str]:
        return {"authorization": f"Bearer {idp.token(kid=kid, key=stranger)}"}

    async def refused(kid: str) -> None:
        with pytest.raises(AuthError, match="no key of the issuer matches"):
            await auth.identify(header(kid))

    async def not_yet(kid: str) -> None:
        with pytest.raises(RetryableError, match="not been fetched since"):
            await auth.identify(header(kid))

    async def scenario() -> None:
        await auth.start()
        try:
            assert idp.jwks_fetches == 1  # at start
            # A made-up key id every 0.2 s, then 40 at once: one fetch for the first interval. Only the
            # first is known missing after it; the others came after it started: retry later.
            await refused("random-0")
            for i in range(1, 24):
                now[0] += 0.2
                await not_yet(f"random-{i}")
            await asyncio.gather(*(not_yet(f"burst-{i}") for i in range(40)))
            assert idp.jwks_fetches == 2
            await refused("random-0")  # known missing: no fetch
            now[0] += oidc.UNKNOWN_KID_INTERVAL
            await asyncio.gather(*(refused(f"later-{i}") for i in range(40)))
            assert idp.jwks_fetches == 3
            # Remembered misses are bounded, the least recently seen dropped first.
            assert list(auth._missed) == [f"later-{i}" for i in range(32, 40)]
            assert len(auth._unseen) <= 8
            # A key the issuer rotated in is still taken, at the next interval.
            idp.rotate("key-2")
            now[0] += oidc.UNKNOWN_KID_INTERVAL
            identity = await auth.identify({"authorization": f"Bearer {idp.token(sub='svc-b')}"})
            assert identity.attributes["subject"] == ("svc-b",)
            assert idp.jwks_fetches == 4
        finally:
            await auth.shutdown()

    asyncio.run(scenario())


def test_made_up_key_ids_using_every_fetch_cannot_make_a_rotated_key_refused_for_good(idp: Idp) -> None:
    """An attacker sends a made-up key id as each fetch becomes possible; a token signed with a key the
    issuer rotated in just after a fetch is answered retryable, never 401, and taken once a fetch that
    started after it was first seen has answered (the attacker's own, here)."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = [1000.0]
    auth = OidcAuth(Settings("oidc", Config(issuer_url=idp.issuer, audience="gateway"), Telemetry(),
                             None), clock=lambda: now[0])  # type: ignore[arg-type]

    async def attack(i: int) -> None:
        with pytest.raises(AuthError, match="no key of the issuer matches"):
            await auth.identify({"authorization": f"Bearer {idp.token(kid=f'made-up-{i}', key=stranger)}"})

    async def scenario() -> None:
        await auth.start()
        try:
            await attack(0)  # uses the fetch of this interval
            idp.rotate("key-2")
            good = {"authorization": f"Bearer {idp.token(sub='svc-b')}"}
            now[0] += 1.0
            for _ in range(3):  # the client retries within the interval: still not 401
                with pytest.raises(RetryableError) as raised:
                    await auth.identify(good)
                assert raised.value.delay == pytest.approx(oidc.UNKNOWN_KID_INTERVAL - 1.0)
            assert idp.jwks_fetches == 2
            now[0] += oidc.UNKNOWN_KID_INTERVAL
            await attack(1)  # the attacker is first again and uses the next fetch
            identity = await auth.identify(good)  # that fetch started after key-2 was first seen
            assert identity.attributes["subject"] == ("svc-b",) and idp.jwks_fetches == 3
        finally:
            await auth.shutdown()

    asyncio.run(scenario())
