"""`gateway.retry_state`: an exporter's retries as the admin endpoint shows them, the last error without
secrets, and several workers' states merged; `RetrySender` keeping it."""

from __future__ import annotations

import asyncio

import pytest

from gateway.exporters.retry import RetryConfig, RetrySender
from gateway.retry_state import ERROR_CHARS, RetryState, merge, short_error
from pipelines.batch import Batch
from pipelines.errors import RetryableError


def test_short_error_keeps_no_secrets() -> None:
    cases = {
        "cannot connect to https://user:s3cret@backend:4318/v1/traces?api_key=abc": "s3cret",
        "401 from backend: Authorization: Bearer eyJhbGciOi.xyz refused": "eyJhbGciOi",
        "refused, headers {'x-honeycomb-team': 'hc-key-123'}": "hc-key-123",
        "token=tok-456 was refused": "tok-456",
        "api-key: k-789 invalid": "k-789",
    }
    for message, secret in cases.items():
        short = short_error(RetryableError(message))
        assert secret not in short, short
    assert short_error("a\nb   c") == "a b c"
    assert len(short_error("x" * 1000)) == ERROR_CHARS


def test_the_sender_keeps_the_state_and_a_success_clears_it() -> None:
    async def run() -> None:
        state = RetryState()
        sender = RetrySender("otlp", RetryConfig(initial_interval=0.01, max_interval=0.01), asyncio.Event(),
                             state=state)
        calls = 0
        seen: list[dict[str, object]] = []

        async def push(batch: Batch) -> None:
            nonlocal calls
            calls += 1
            seen.append(state.view())
            if calls < 3:
                raise RetryableError("UNAVAILABLE: backend down")

        await sender.send(push, Batch("traces", b"", 1))
        # Each attempt after the first began after a failed one had waited: its wait is over by then.
        assert [(v["failures"], v["waiting"]) for v in seen] == [(0, 0), (1, 0), (2, 0)]
        assert seen[2]["last_error"] == "UNAVAILABLE: backend down"
        assert state.view()["failures"] == 0 and state.view()["last_error"] == "" and state.view()["next_in"] is None

    asyncio.run(run())


def test_a_waiting_send_shows_when_it_is_due() -> None:
    now = [100.0]
    state = RetryState(lambda: now[0])
    state.failed(RetryableError("UNAVAILABLE"))
    one, two = state.waiting(2.0), state.waiting(0.5)
    now[0] += 0.25
    view = state.view()
    assert view["waiting"] == 2 and view["next_in"] == 0.25 and view["failures"] == 1
    state.woke(two)
    assert state.view()["next_in"] == 1.75
    state.woke(one)
    assert state.view()["waiting"] == 0 and state.view()["next_in"] is None


def test_workers_states_merge() -> None:
    a = {"waiting": 2, "next_in": 3.0, "failures": 4, "last_error": "old", "last_error_at": 10.0}
    b = {"waiting": 1, "next_in": 1.0, "failures": 2, "last_error": "new", "last_error_at": 20.0}
    idle = {"waiting": 0, "next_in": None, "failures": 0, "last_error": "", "last_error_at": 0.0}
    assert merge([a, b, idle]) == {"waiting": 3, "next_in": 1.0, "failures": 4, "last_error": "new",
                                   "last_error_at": 20.0}
    assert merge([idle, idle]) == idle


@pytest.mark.parametrize("text", [
    "Authorization: Api-Token dt0c01.SECRET", "{'Authorization': 'Splunk SECRET'}", "access_token=SECRET&x=1",
    '{"access_token": "SECRET"}', "client_secret=SECRET", "db_password=SECRET", "apitoken=SECRET",
    'password: "my SECRET pass"', "Cookie: session=SECRET", "Bearer abc:SECRET", "https://user:p@SECRET@host/x",
    "https://h/x;jsessionid=SECRET", "https://h/v1/traces?api_key=SECRET", "x-api-key: SECRET",
])
def test_short_error_redacts_whole_values_of_every_secret_shape(text: str) -> None:
    """Schemes other than Bearer/Basic, compound names (access_token, client_secret), values with spaces,
    cookies, a raw @ in a URL's password, ;params: the whole value goes (review findings)."""
    assert "SECRET" not in short_error(text), short_error(text)


def test_short_error_keeps_plain_errors() -> None:
    for text in ("HTTP 503: service unavailable, retry later", "connection refused to 127.0.0.1:4317"):
        assert short_error(text) == text
