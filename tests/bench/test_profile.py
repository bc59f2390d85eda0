"""`bench.profile`: py-spy's collapsed stacks split into parts of the gateway's work, and the CPU a
request costs per part."""

from __future__ import annotations

from pathlib import Path

from bench.profile import parts, per_request

_P = 'process 1:"python -m gateway"'
_LOOP = ("run_forever (asyncio/base_events.py:607);_run_once (asyncio/base_events.py:1922);"
         "Handle._run (asyncio/events.py:80)")


def _write(tmp_path: Path, lines: list[tuple[str, int]]) -> Path:
    path = tmp_path / "a.txt"
    path.write_text("".join(f"{_P};{stack} {n}\n" for stack, n in lines))
    return path


def test_each_sample_goes_to_its_innermost_known_part_and_start_up_is_left_out(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        (f"{_LOOP};_Connection.data_received (gateway/transport/grpc_server.py:290);"
         "_Connection._frames (gateway/transport/grpc_server.py:330)", 30),
        (f"{_LOOP};_Connection._call (gateway/transport/grpc_server.py:712);"
         "export (gateway/receivers/otlp_grpc.py:73);Ingest._push (gateway/receivers/ingest.py:127);"
         "_check_traces (pipelines/otlp.py:227)", 20),
        (f"{_LOOP};_Connection._flush (gateway/transport/grpc_server.py:727);"
         "_SelectorSocketTransport.write (asyncio/selector_events.py:1050)", 40),
        (f"{_LOOP}", 10),
        ("main (gateway/cli.py:48);load_files (gateway/config/load.py:59);"
         "_find_and_load (<frozen importlib._bootstrap>:1176)", 500),
    ])
    got = dict(parts(path))
    assert got == {"socket send (syscall)": 0.4, "HTTP/2 + gRPC framing (server)": 0.3,
                   "OTLP validation (otlp.check: upb views)": 0.2, "event loop (callbacks, tasks, timers)": 0.1}
    text = per_request(path, cpu_seconds=2.0, requests=20_000)
    assert "100.0 us of CPU per request" in text
    assert "     40.0   40.0%   socket send (syscall)" in text.splitlines()


def test_an_empty_profile_has_no_parts(tmp_path: Path) -> None:
    path = _write(tmp_path, [])
    assert parts(path) == []
    assert "no requests" in per_request(path, 1.0, 0)
