"""`python -m gateway validate` and the `otel-gateway` console script: exit 0 when valid, 1 listing
every problem; several `--config` files merge in order, as the Collector's do."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.harness import REPO, free_port

VALID = """
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:4317"}}}}
exporters: {debug: }
service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
"""
INVALID = """
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:4317"}}}}
processors: {batch: {timout: 1s}}
exporters: {otlp/tempo: {}}
service: {pipelines: {traces: {receivers: [otlp], processors: [batch], exporters: [otlp/tempo, x]}}}
"""
INVALID_LINES = [
    "  processors::batch: unknown key 'timout'",
    "  exporters::otlp/tempo: missing endpoint",
    "  service::pipelines::traces: references exporter 'x' which is not configured",
]
CONSOLE_SCRIPT = Path(sys.executable).parent / "otel-gateway"


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _commands() -> list[list[str]]:
    return [[sys.executable, "-m", "gateway"], [str(CONSOLE_SCRIPT)]]


@pytest.mark.parametrize("command", _commands(), ids=["python-m", "console-script"])
def test_validate_valid_config_exits_0(command: list[str], tmp_path: Path) -> None:
    path = _write(tmp_path, "ok.yaml", VALID)
    proc = subprocess.run([*command, "validate", "--config", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: configuration is valid\n"


@pytest.mark.parametrize("command", _commands(), ids=["python-m", "console-script"])
def test_validate_lists_every_problem_and_exits_1(command: list[str], tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", INVALID)
    proc = subprocess.run([*command, "validate", "--config", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"invalid configuration {path}:", *INVALID_LINES]
    assert proc.stdout == ""


def test_validate_does_not_bind_ports(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = _write(tmp_path, "ok.yaml", VALID.replace("4317", str(port)))
        assert main(["validate", "--config", path]) == 0


def test_shipped_config_is_the_default_and_valid(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out == "config.yaml: configuration is valid\n"


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.yaml")
    assert main(["validate", "--config", path]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"invalid configuration {path}:",
        f"  cannot read config file {path!r}: No such file or directory",
    ]


def test_several_configs_merge_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _write(tmp_path, "base.yaml", INVALID)
    fix = _write(tmp_path, "fix.yaml", """
processors: {batch: {timeout: 1s}}
exporters: {otlp/tempo: {endpoint: "tempo:4317"}}
service: {pipelines: {traces: {exporters: [otlp/tempo]}}}
""")
    assert main(["validate", "--config", base, "--config", fix]) == 1
    # Mappings merge key by key: `timout` from the first file is still there.
    assert capsys.readouterr().err.splitlines()[1:] == ["  processors::batch: unknown key 'timout'"]
    fix2 = _write(tmp_path, "fix2.yaml", "processors: {batch: }\n")
    assert main(["validate", "--config", base, "--config", fix, "--config", fix2]) == 1
    capsys.readouterr()
    replaced = _write(tmp_path, "replace.yaml", INVALID.replace("{timout: 1s}", "{}"))
    assert main(["validate", "--config", replaced, "--config", fix]) == 0
    assert capsys.readouterr().out == f"{replaced} + {fix}: configuration is valid\n"


def test_deprecated_logging_name_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "old.yaml", VALID.replace("debug", "logging"))
    assert main(["validate", "--config", path]) == 0
    assert capsys.readouterr().err == "warning: exporters::logging: 'logging' is a deprecated name, use 'debug'\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("otel-gateway ")


def test_run_with_invalid_config_exits_1_without_serving(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", INVALID)
    proc = subprocess.run([sys.executable, "-m", "gateway", "--config", path], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1:] == INVALID_LINES


def test_run_with_a_port_in_use_exits_1_and_closes_what_started(tmp_path: Path) -> None:
    """The gRPC side of the receiver binds, the HTTP side cannot: the gateway says why, exits 1, and the
    listener it did open is closed, not left to the garbage collector at exit."""
    grpc_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        path = _write(tmp_path, "busy.yaml", f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
      http: {{endpoint: "127.0.0.1:{http_port}"}}
exporters: {{debug: }}
service:
  pipelines: {{traces: {{receivers: [otlp], exporters: [debug]}}}}
  telemetry: {{metrics: {{level: none}}}}
""")
        proc = subprocess.run([sys.executable, "-m", "gateway", "--config", path], capture_output=True, text=True,
                              timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert "gateway failed to start" in proc.stderr and "address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr and "never awaited" not in proc.stderr
