"""No secret of any authenticator appears in `validate`'s output, in the gateway's logs, in its
/metrics, or in the answers to clients it refuses: a config holding every kind of credential, refused
for a mistake elsewhere and for mistakes in the credential blocks themselves, and then run, with a
client presenting a wrong token and then one whose token is close to a right one."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc

from tests.auth.support import gateway_config, send_spans
from tests.harness import Ports, Sink, running, wait_until

SECRETS = ("srv-token-s3cr3t", "client-tok-9f8e7d", "b@sic-pa55word", "oauth-cl1ent-secret",
           "htpasswd-plain-pw", "wrong-token-zz99")


def _extensions(token_url: str) -> str:
    return f"""  bearertokenauth/in: {{token: srv-token-s3cr3t}}
  bearertokenauth/out: {{token: client-tok-9f8e7d}}
  basicauth/out:
    client_auth: {{username: someone, password: "b@sic-pa55word"}}
  basicauth/in:
    htpasswd: {{inline: "alice:htpasswd-plain-pw"}}
  oauth2client:
    client_id: the-client
    client_secret: oauth-cl1ent-secret
    token_url: "{token_url}"
"""


def _exporters(sink: Sink) -> str:
    return f"""  otlp/bearer:
    endpoint: "127.0.0.1:{sink.grpc_port}"
    tls: {{insecure: true}}
    auth: {{authenticator: bearertokenauth/out}}
  otlphttp/basic:
    endpoint: "http://127.0.0.1:{sink.http_port}"
    auth: {{authenticator: basicauth/out}}"""


def _validate(path: Path) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "gateway", "validate", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_validate_never_prints_a_secret(tmp_path: Path, ports: Ports) -> None:
    sink = Sink()
    ids = "bearertokenauth/in, bearertokenauth/out, basicauth/out, basicauth/in, oauth2client"
    good = gateway_config(ports, _exporters(sink), "[otlp/bearer, otlphttp/basic]",
                          _extensions("https://127.0.0.1:1/token"), ids,
                          "auth: {authenticator: bearertokenauth/in}")
    variants = {
        # A mistake elsewhere: the whole config is refused, its secrets never printed.
        "elsewhere": good.replace("batch: {timeout: 20ms}", "batch: {timeout: 20ms, nope: 1}"),
        # Mistakes inside the credential blocks.
        "bad_bearer": good.replace("bearertokenauth/in: {token: srv-token-s3cr3t}",
                                   "bearertokenauth/in: {token: srv-token-s3cr3t, scheme: [x]}"),
        "bad_oauth": good.replace("client_id: the-client", "client_id: the-client\n    timeout: soon"),
        "bad_basic": good.replace('client_auth: {username: someone, password: "b@sic-pa55word"}',
                                  'client_auth: {username: [someone], password: "b@sic-pa55word"}'),
    }
    for name, text in variants.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        rc, out = _validate(path)
        assert rc != 0, f"{name}: validate accepted it:\n{out}"
        assert _leaks(out) == [], f"{name}: validate printed a secret:\n{out}"


def test_logs_metrics_and_refusals_never_carry_a_secret(ports: Ports) -> None:
    sink = Sink().start()
    try:
        cfg = gateway_config(ports, _exporters(sink), "[otlp/bearer, otlphttp/basic]",
                             _extensions("https://127.0.0.1:1/token").split("  oauth2client:")[0],
                             "bearertokenauth/in, bearertokenauth/out, basicauth/out, basicauth/in",
                             "auth: {authenticator: bearertokenauth/in}")
        with running(cfg, ports) as gw:
            refusal = ""
            try:
                send_spans(ports, "grpc", ["denied"], {"authorization": "Bearer wrong-token-zz99"})
            except grpc.RpcError as exc:  # the SDK may log rather than raise; either way it is refused
                refusal = str(exc)
            req = urllib.request.Request(f"http://127.0.0.1:{ports.http}/v1/traces", data=b"", method="POST",
                                         headers={"Authorization": "Bearer srv-token-s3cr3tX",
                                                  "Content-Type": "application/x-protobuf"})
            try:
                urllib.request.urlopen(req, timeout=10)
                body = ""
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
                body = exc.read().decode(errors="replace")
            wait_until(lambda: gw.metric("otelcol_gateway_receiver_failed_requests_total") >= 2, 10,
                       "both refusals to be counted")
            send_spans(ports, "grpc", ["allowed"], {"authorization": "Bearer srv-token-s3cr3t"})
            sink.wait_spans(2)  # one per exporter: the credentials went out, to the backend only
            with urllib.request.urlopen(f"http://127.0.0.1:{ports.metrics}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            assert gw.stop() == 0
            for where, text in (("refusal", refusal), ("http body", body), ("metrics", metrics),
                                ("stderr", gw.stderr()), ("stdout", gw.stdout())):
                assert _leaks(text) == [], f"{where} carries a secret: {_leaks(text)}"
    finally:
        sink.stop()
