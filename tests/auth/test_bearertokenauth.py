"""bearertokenauth: tokens, tenants, header and scheme, constant-time comparison against every token,
messages that never echo a credential, and file reloading including a Kubernetes ConfigMap swap."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.auth import AuthError
from gateway.component import Settings
from gateway.config.decode import Errors, decode
from gateway.extensions.bearertokenauth import BearerTokenAuth, Config, parse_token_file
from gateway.telemetry import Telemetry


def auth(**kw: Any) -> BearerTokenAuth:
    return BearerTokenAuth(Settings("bearertokenauth", Config(**kw), Telemetry(), None))  # type: ignore[arg-type]


def test_token_and_scheme() -> None:
    a = auth(token="s3cret")
    assert a.authenticate({"authorization": "Bearer s3cret"}) is None
    for headers in ({}, {"authorization": ""}, {"authorization": "Basic s3cret"}, {"authorization": "Bearer nope"},
                    {"authorization": "bearer s3cret"}, {"authorization": "Bearer s3cret "}):
        with pytest.raises(AuthError) as exc:
            a.authenticate(headers)
        assert "s3cret" not in str(exc.value) and "nope" not in str(exc.value)


def test_tokens_with_tenants_custom_header_and_no_scheme() -> None:
    a = auth(tokens=({"token": "ta", "tenant": "team-a"}, {"token": "tb", "tenant": "team-b"}, "plain"),
             header="X-Api-Key", scheme="")
    assert a.authenticate({"x-api-key": "ta"}) == "team-a"
    assert a.authenticate({"x-api-key": "tb"}) == "team-b"
    assert a.authenticate({"x-api-key": "plain"}) is None
    with pytest.raises(AuthError, match="missing or empty X-Api-Key header"):
        a.authenticate({"authorization": "ta"})


def test_every_token_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.extensions.bearertokenauth as mod

    calls: list[bytes] = []
    real = mod.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return real(a, b)

    monkeypatch.setattr(mod.hmac, "compare_digest", spy)
    a = auth(tokens=("one", "two", "three"))
    assert a.authenticate({"authorization": "Bearer one"}) is None
    assert calls == [b"one", b"two", b"three"]


def test_non_ascii_token_is_refused_not_crashing() -> None:
    with pytest.raises(AuthError):
        auth(token="abc").authenticate({"authorization": "Bearer ä"})


@pytest.mark.parametrize(("body", "message"), [
    ({}, "no bearer token provided"),
    ({"token": "a", "tokens": ["b"]}, "either tokens or token should be provided, not both"),
    ({"tokens": [{"token": "a", "team": "x"}]}, "tokens[0]: unknown key 'team'"),
    ({"tokens": [{"tenant": "x"}]}, "tokens[0]: missing token"),
    ({"tokens": [5]}, "tokens[0]: want a token string or a mapping with token and tenant, got int"),
])
def test_config_errors(body: dict[str, Any], message: str) -> None:
    errors = Errors()
    decode(Config, body, "extensions::bearertokenauth", errors)
    assert errors.lines == [f"extensions::bearertokenauth: {message}"]


def test_token_file_format() -> None:
    assert parse_token_file("a\n\n# comment\nb team-b\n  c   team-c  \n") == [
        (b"a", None), (b"b", "team-b"), (b"c", "team-c")]


def test_file_reload_on_change_and_configmap_symlink_swap(tmp_path: Path) -> None:
    # The Kubernetes layout: token -> ..data/token, ..data -> ..<timestamp> (swapped atomically).
    def publish(version: str, text: str) -> None:
        d = tmp_path / f"..{version}"
        d.mkdir()
        (d / "token").write_text(text)
        tmp_link = tmp_path / "..data_tmp"
        tmp_link.symlink_to(d.name)
        os.replace(tmp_link, tmp_path / "..data")

    publish("v1", "old-token team-a\n")
    (tmp_path / "token").symlink_to("..data/token")

    async def scenario() -> None:
        a = auth(filename=str(tmp_path / "token"), reload_interval=0.01)
        await a.start()
        try:
            assert a.authenticate({"authorization": "Bearer old-token"}) == "team-a"
            publish("v2", "new-token team-b\n")
            for _ in range(500):
                try:
                    if a.authenticate({"authorization": "Bearer new-token"}) == "team-b":
                        break
                except AuthError:
                    await asyncio.sleep(0.01)
            assert a.authenticate({"authorization": "Bearer new-token"}) == "team-b"
            with pytest.raises(AuthError):
                a.authenticate({"authorization": "Bearer old-token"})
            # a plain rewrite of the file is seen too
            target = tmp_path / "..v2" / "token"
            target.write_text("third\nfourth-token-longer team-c\n")
            assert a.reload() or a.authenticate({"authorization": "Bearer third"}) is None
            assert a.authenticate({"authorization": "Bearer fourth-token-longer"}) == "team-c"
            # a file that disappears keeps the tokens read before
            os.remove(tmp_path / "token")
            assert a.reload() is False
            assert a.authenticate({"authorization": "Bearer third"}) is None
        finally:
            await a.shutdown()

    asyncio.run(scenario())


def test_unreadable_file_refuses_everything_until_it_appears(tmp_path: Path) -> None:
    async def scenario() -> None:
        a = auth(filename=str(tmp_path / "missing"), token="ignored", reload_interval=0.01)
        await a.start()
        try:
            with pytest.raises(AuthError):
                a.authenticate({"authorization": "Bearer ignored"})
            (tmp_path / "missing").write_text("late\n")
            assert a.reload()
            assert a.authenticate({"authorization": "Bearer late"}) is None
        finally:
            await a.shutdown()

    asyncio.run(scenario())


@pytest.mark.parametrize(("reload_interval", "seen"), [(0.02, True), (60.0, False)])
def test_reload_interval_is_how_often_the_file_is_checked(tmp_path: Path, reload_interval: float,
                                                          seen: bool) -> None:
    path = tmp_path / "tokens"
    path.write_text("first\n")

    async def scenario() -> bool:
        a = auth(filename=str(path), reload_interval=reload_interval)
        await a.start()
        try:
            path.write_text("second-token\n")
            await asyncio.sleep(0.5)
            try:
                return a.authenticate({"authorization": "Bearer second-token"}) is None
            except AuthError:
                return False
        finally:
            await a.shutdown()

    assert asyncio.run(scenario()) is seen
