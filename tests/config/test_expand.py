"""`${...}` expansion in config values, as the Collector does it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.decode import Errors
from gateway.config.expand import expand
from gateway.config.load import load_text

ENV = {"HOST": "tempo", "PORT": "4317", "EMPTY": "", "KEY": "s3cr$t"}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("${env:HOST}:${env:PORT}", "tempo:4317"),
        ("${HOST}:${PORT}", "tempo:4317"),
        ("${env:MISSING:-localhost}:4317", "localhost:4317"),
        ("${env:HOST:-localhost}", "tempo"),
        ("${env:EMPTY:-fallback}", "fallback"),
        ("${MISSING}", ""),
        ("${env:MISSING:-}", ""),
        ("price: $$5", "price: $5"),
        ("$${env:HOST}", "${env:HOST}"),
        ("$$$${HOST}", "$${HOST}"),
        ("$$${HOST}", "$tempo"),
        ("${env:KEY}", "s3cr$t"),
        ("$HOST stays", "$HOST stays"),
        ("no references", "no references"),
    ],
)
def test_expand_string(text: str, want: str) -> None:
    errors = Errors()
    assert expand(text, ENV, errors) == want
    assert not errors


def test_expand_walks_values_not_keys() -> None:
    errors = Errors()
    data = {"${HOST}": ["${PORT}", {"k": "${env:HOST}"}], "n": 3, "b": True, "none": None}
    assert expand(data, ENV, errors) == {"${HOST}": ["4317", {"k": "tempo"}], "n": 3, "b": True, "none": None}
    assert not errors


def test_file_provider(tmp_path: Path) -> None:
    secret = tmp_path / "key.txt"
    secret.write_text("from-file\n")
    errors = Errors()
    assert expand(f"${{file:{secret}}}", {}, errors) == "from-file"
    assert not errors
    assert expand(f"${{file:{tmp_path / 'nope'}}}", {}, errors) == ""
    assert errors.lines == [f"cannot read ${{file:{tmp_path / 'nope'}}}: No such file or directory"]


def test_expanded_values_are_typed_by_the_field() -> None:
    text = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "${env:HOST}:${env:PORT}", max_recv_msg_size_mib: "${env:MIB:-8}",
             include_metadata: "${TRUE}"}
exporters:
  otlp:
    endpoint: "${env:BACKEND:-tempo:4317}"
    headers: {authorization: "Bearer $${not_a_ref} ${KEY}"}
service: {pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}}
"""
    cfg = load_text(text, env={**ENV, "TRUE": "true"}).config
    grpc = cfg.receivers["otlp"].protocols.grpc
    assert (grpc.endpoint, grpc.max_recv_msg_size_mib, grpc.include_metadata) == ("tempo:4317", 8, True)
    assert cfg.exporters["otlp"].endpoint == "tempo:4317"
    assert cfg.exporters["otlp"].headers == {"authorization": "Bearer ${not_a_ref} s3cr$t"}
