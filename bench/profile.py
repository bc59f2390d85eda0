"""Reads py-spy's collapsed stacks (`--format raw`) into the few lines a reader needs: where the
samples land (self), which frames hold them (inclusive), and (`parts`) the share of each part of the
gateway's work, which the bench turns into microseconds of CPU per request."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def _frame(f: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"; drop line numbers so a function is one row.
    name, _, where = f.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def summary(path: Path, top: int = 25) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples", "self %   function"]
    lines += [f"{100 * c / total:6.1f}   {f}" for f, c in self_c.most_common(top)]
    lines += ["", "incl %   function"]
    lines += [f"{100 * c / total:6.1f}   {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines)


# A sample's part: the first rule (in this order) that one of its frames matches, looking from the
# innermost frame outwards; a rule is (part, function name prefix or "", file path fragment).
_PARTS: tuple[tuple[str, str, str], ...] = (
    ("start-up (not per request)", "", "importlib"),
    ("start-up (not per request)", "load_files", ""),
    ("socket send (syscall)", "_SelectorSocketTransport.write", ""),
    ("socket send (syscall)", "_SelectorSocketTransport._write_ready", ""),
    ("socket recv (syscall)", "_SelectorSocketTransport._read_ready__data_received", ""),
    ("epoll wait (syscall)", "EpollSelector.select", ""),
    ("own metrics (prometheus_client)", "", "prometheus_client/"),
    ("OTLP validation (otlp.check: upb views)", "", "pipelines/otlp.py"),
    ("OTLP validation (otlp.check: upb views)", "", "pipelines/schema_views.py"),
    ("OTLP/JSON decoding", "", "pipelines/otlp_json.py"),
    ("processors", "", "pipelines/processors/"),
    ("processors", "", "pipelines/ottl"),
    ("processors", "", "gateway/processors/"),
    ("HPACK", "", "gateway/transport/hpack"),
    ("HTTP/2 + gRPC framing (server)", "", "gateway/transport/grpc_server.py"),
    ("HTTP/2 + gRPC framing (server)", "", "gateway/transport/h2_request.py"),
    ("HTTP/2 + gRPC framing (server)", "", "gateway/transport/frames.py"),
    ("HTTP/1.1 (aiohttp and our guard)", "", "aiohttp/"),
    ("HTTP/1.1 (aiohttp and our guard)", "", "gateway/transport/http_guard.py"),
    ("HTTP/1.1 (our fast lane)", "", "gateway/transport/http_fast.py"),
    ("HTTP/1.1 (aiohttp and our guard)", "", "multidict/"),
    ("HTTP/1.1 (aiohttp and our guard)", "", "yarl/"),
    ("export: queue, batching, gRPC client", "", "gateway/exporters/"),
    ("export: queue, batching, gRPC client", "", "gateway/queue/"),
    ("export: queue, batching, gRPC client", "", "gateway/transport/grpc_client.py"),
    ("receive and hand-off (ingest, join, fan-out)", "", "gateway/receivers/"),
    ("receive and hand-off (ingest, join, fan-out)", "", "gateway/join.py"),
    ("receive and hand-off (ingest, join, fan-out)", "", "gateway/fanout.py"),
    ("receive and hand-off (ingest, join, fan-out)", "", "gateway/graph.py"),
    ("receive and hand-off (ingest, join, fan-out)", "", "pipelines/batch.py"),
    ("event loop (callbacks, tasks, timers)", "", "asyncio/"),
    ("event loop (callbacks, tasks, timers)", "", "selectors.py"),
)
_STARTUP = _PARTS[0][0]


def _part(frames: list[str]) -> str:
    for part, func, where in _PARTS[:2]:  # start-up anywhere in the stack
        if any(f.startswith(func) and where in f for f in frames):
            return part
    for f in reversed(frames):
        for part, func, where in _PARTS[2:]:
            if f.startswith(func) and where in f:
                return part
    return "other"


def parts(path: Path) -> list[tuple[str, float]]:
    """Each part's share of the samples taken after start-up, largest first (shares sum to 1)."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames:
            counts[_part(frames)] += int(n)
    counts.pop(_STARTUP, None)
    total = sum(counts.values())
    return [(p, c / total) for p, c in counts.most_common()] if total else []


def per_request(path: Path, cpu_seconds: float, requests: int) -> str:
    """The CPU a request costs, split by part: each part's share of the profile times the measured CPU
    per request (the profile also holds the drain after the load, which the CPU figure holds too)."""
    if requests <= 0:
        return f"{path}: no requests"
    us = cpu_seconds / requests * 1e6
    lines = [f"{path}: {us:.1f} us of CPU per request ({requests:,} requests, {cpu_seconds:.2f} CPU-s)",
             "   us/req   share   part"]
    lines += [f"{share * us:9.1f}  {100 * share:5.1f}%   {part}" for part, share in parts(path)]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
