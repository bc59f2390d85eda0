"""The `pprof` extension: a CPU profile of the process that `go tool pprof` reads and that shows the function a
test kept busy, `save_to_file` at shutdown, `endpoint`, Go's answers for `seconds` and unknown profiles, and
`validate` on the extensions block public configs carry."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.component import Settings
from gateway.config.load import ConfigError, load_text
from gateway.extensions.pprof import FACTORY, Config, seconds
from gateway.telemetry import Telemetry
from tests.e2e.support import HttpAnswer, http_request
from tests.harness import free_ports

GO = shutil.which("go")


def busy_pprof_test_function(stop: threading.Event) -> int:
    n = 0
    while not stop.is_set():
        n += sum(i * i for i in range(200))
    return n


def _run(config: Config, body: Callable[[int], Awaitable[Any]], worker: int | None = None) -> Any:
    async def run() -> Any:
        ext = FACTORY.create(Settings("pprof", config, Telemetry(), None, worker=worker))  # type: ignore[arg-type]
        await ext.start()
        try:
            assert ext.port is not None
            return await body(ext.port)
        finally:
            await ext.shutdown()

    return asyncio.run(run())


def _get(port: int, path: str) -> Awaitable[HttpAnswer]:
    return asyncio.to_thread(http_request, port, method="GET", path=path)


def _busy_while(work: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        stop = threading.Event()
        busy = threading.Thread(target=busy_pprof_test_function, args=(stop,), name="busy")
        busy.start()
        try:
            return await work()
        finally:
            stop.set()
            busy.join()

    return run


def _top(profile: Path) -> str:
    proc = subprocess.run([GO or "go", "tool", "pprof", "-top", str(profile)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(GO is None, reason="needs `go tool pprof`")
def test_profile_reads_with_go_tool_pprof_and_shows_the_busy_function(tmp_path: Path) -> None:
    (port,) = free_ports(1)

    async def body(port: int) -> HttpAnswer:
        return await _busy_while(lambda: _get(port, "/debug/pprof/profile?seconds=1"))()

    answer = _run(Config(endpoint=f"127.0.0.1:{port}"), body, worker=3)
    assert answer.status == 200 and answer.content_type == "application/octet-stream"
    assert answer.headers["content-disposition"] == 'attachment; filename="profile"'
    assert answer.headers["x-gateway-worker"].startswith("3 (pid ")
    gzip.decompress(answer.body)
    (tmp_path / "profile.pb.gz").write_bytes(answer.body)
    top = _top(tmp_path / "profile.pb.gz")
    assert "Type: cpu" in top and "worker 3" in top
    assert "busy_pprof_test_function" in top
    duration = float(top.split("Duration: ")[1].split("s")[0])
    assert 0.9 <= duration < 3


@pytest.mark.skipif(GO is None, reason="needs `go tool pprof`")
def test_save_to_file_writes_a_profile_of_the_run_at_shutdown(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    path = tmp_path / "cpu.pprof"

    async def body(port: int) -> None:
        async def work() -> None:
            await asyncio.sleep(0.5)
        await _busy_while(work)()
        assert not path.exists()

    _run(Config(endpoint=f"127.0.0.1:{port}", save_to_file=str(path)), body)
    assert "busy_pprof_test_function" in _top(path)


def test_endpoint_is_where_it_listens() -> None:
    port, other = free_ports(2)

    async def body(port: int) -> tuple[HttpAnswer, HttpAnswer, HttpAnswer]:
        index, unknown, cmdline = [await _get(port, p) for p in
                                   ("/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline")]
        with pytest.raises(ConnectionRefusedError):
            await _get(other, "/debug/pprof/")
        return index, unknown, cmdline

    index, unknown, cmdline = _run(replace(Config(), endpoint=f"127.0.0.1:{port}"), body)
    assert index.status == 200 and b"profile" in index.body
    assert (unknown.status, unknown.body) == (404, b"Unknown profile\n")  # as Go answers a name it lacks
    assert cmdline.status == 200 and cmdline.body


def test_seconds_as_go_reads_them_and_one_profile_at_a_time() -> None:
    assert [seconds(s) for s in ("2", "", "abc", "0", "-1", "1.5")] == [2, 30, 30, 30, 30, 30]
    (port,) = free_ports(1)

    async def body(port: int) -> tuple[HttpAnswer, HttpAnswer]:
        first = asyncio.ensure_future(_get(port, "/debug/pprof/profile?seconds=1"))
        await asyncio.sleep(0.3)
        second = await _get(port, "/debug/pprof/profile?seconds=1")
        return await first, second

    started = time.monotonic()
    first, second = _run(Config(endpoint=f"127.0.0.1:{port}"), body)
    assert first.status == 200 and time.monotonic() - started >= 1
    assert second.status == 500 and b"cpu profiling already in use" in second.body


PUBLIC = """
receivers: {otlp: {protocols: {grpc: {}, http: {}}}}
exporters: {debug: {}}
extensions: {health_check: {}, zpages: {}, pprof: {endpoint: 0.0.0.0:1777}}
service:
  extensions: [health_check, zpages, pprof]
  pipelines: {traces: {receivers: [otlp], exporters: [debug]}}
"""


def test_validate_accepts_the_public_configs_debugging_extensions(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PUBLIC)
    assert main(["validate", "--config", str(path)]) == 0
    for key in ("block_profile_fraction", "mutex_profile_fraction"):
        load_text(PUBLIC.replace("pprof: {", f"pprof: {{{key}: 0, "), env={})
        with pytest.raises(ConfigError, match=rf"extensions::pprof::{key}: .*Python has no"):
            load_text(PUBLIC.replace("pprof: {", f"pprof: {{{key}: 5, "), env={})


def test_each_worker_saves_its_own_file() -> None:
    from gateway.workers import worker_config

    config = load_text(PUBLIC.replace("pprof: {", "pprof: {save_to_file: /tmp/run/cpu.pprof, "), env={}).config
    assert [worker_config(config, i).extensions["pprof"].save_to_file for i in (1, 2)] == [
        "/tmp/run/cpu.worker-1.pprof", "/tmp/run/cpu.worker-2.pprof"]
