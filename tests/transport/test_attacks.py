"""Known HTTP/2 attacks against a real gateway subprocess. For each: the abusive connection is ended
(GOAWAY with the code named, or closed) after a bounded amount of sending, the gateway's RSS grows by
at most RSS_BOUND, and a well-behaved client on another connection exports with every span delivered.
A table of the figures is printed at the end (`pytest -s`)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import hpack
import pytest

from gateway.transport.h2 import (
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    RST_STREAM,
    S_INITIAL_WINDOW_SIZE,
    SETTINGS,
    frame,
)
from tests.e2e.support import TRACE_EXPORT, spans_request
from tests.harness import GatewayProcess, Ports, Sink, forward_config, running, wait_until

RSS_BOUND = 16 * 1024 * 1024
HEALTHY_SPANS = 20
CLOSED = -1  # "closed without a GOAWAY" in the table
IDLE_CONNECTIONS = 1000
ROWS: list[str] = []
OPENED: list[Raw] = []  # every abusive connection, for the bytes each attack sent


def rss(gw: GatewayProcess) -> int:
    assert gw.proc is not None
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass
class Gateway:
    gw: GatewayProcess
    sink: Sink
    ports: Ports
    sent: int = 0

    def healthy_export(self) -> tuple[int, int]:
        """A well-behaved client on its own connection: (spans acknowledged, spans delivered so far)."""
        def healthy() -> int:
            return sum(span.name.startswith("healthy-") for _, _, span in self.sink.spans())

        before = healthy()
        acked = self.send_healthy(self.sent)
        self.sent += HEALTHY_SPANS
        wait_until(lambda: healthy() >= before + acked, 15, "the healthy client's spans")
        return acked, healthy() - before

    def send_healthy(self, first: int) -> int:
        """Export HEALTHY_SPANS spans named `healthy-<first + i>`; how many the gateway acknowledged."""
        with grpc.insecure_channel(f"127.0.0.1:{self.ports.grpc}") as ch:
            call = ch.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
            for i in range(HEALTHY_SPANS):
                call(spans_request(1, name=f"healthy-{first + i}").SerializeToString(), timeout=10)
        return HEALTHY_SPANS


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    ports = Ports.free()
    sink = Sink().start()
    cfg = forward_config(ports, sink, "connection_timeout: 1s, max_connections: 1500, "
                         "keepalive: {server_parameters: {max_connection_idle: 2s}}")
    try:
        with running(cfg, ports) as gw:
            yield Gateway(gw, sink, ports)
    finally:
        sink.stop()
        print_table(ROWS)


def print_table(rows: list[str]) -> None:
    if rows:
        print("\n| attack | ended with | bytes sent | RSS growth (bound) | time to close | healthy acked/delivered |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(row)


class Raw:
    """A socket speaking frames: send until the server ends the connection (or `budget` bytes)."""

    def __init__(self, port: int, preface: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sent = 0
        self.inbox = b""
        self.enc = hpack.Encoder()
        OPENED.append(self)
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def block(self, sid: int = 1) -> bytes:
        return bytes(self.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", TRACE_EXPORT),
                                      (":authority", "gw"), ("content-type", "application/grpc"), ("te", "trailers")]))

    def flood(self, chunks: Iterator[bytes], budget: int) -> None:
        for chunk in chunks:
            if self.sent > budget or not self.send(chunk):
                return

    def ending(self, timeout: float = 15.0) -> int:
        """The GOAWAY error code the server ended with (CLOSED: none, just closed); reads to EOF."""
        self.sock.settimeout(timeout)
        code: int | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not got:
                break
            self.inbox += got
            while len(self.inbox) >= 9:
                n = int.from_bytes(self.inbox[:3], "big")
                if len(self.inbox) < 9 + n:
                    break
                if self.inbox[3] == GOAWAY and code is None:
                    code = struct.unpack(">I", self.inbox[13:17])[0]
                self.inbox = self.inbox[9 + n:]
        else:
            raise AssertionError("the server did not end the connection")
        self.sock.close()
        return CLOSED if code is None else code


H2_ENDINGS = {ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM", PROTOCOL_ERROR: "PROTOCOL_ERROR", NO_ERROR: "NO_ERROR",
              COMPRESSION_ERROR: "COMPRESSION_ERROR", CLOSED: "closed"}


def attack(gateway: Gateway, name: str, run: Callable[[], list[int]], allowed: set[int],
           names: dict[int, str] = H2_ENDINGS, rows: list[str] = ROWS) -> None:
    """Run `run` (it returns each abusive connection's ending, named in the table by `names`), then check
    the bound and the healthy client; the figures go to `rows`."""
    rss_before = rss(gateway.gw)
    OPENED.clear()
    started = time.monotonic()
    endings = run()
    took = time.monotonic() - started
    sent = sum(c.sent for c in OPENED)
    growth = rss(gateway.gw) - rss_before
    acked, delivered = gateway.healthy_export()
    ended = ", ".join(sorted({names.get(c, hex(c)) for c in endings}))
    rows.append(f"| {name} | {ended} ({len(endings)} conn.) | {sent / 2**20:.2f} MiB "
                f"| {growth / 2**20:+.1f} MiB (≤ {RSS_BOUND >> 20}) | {took:.2f} s | {acked}/{delivered} |")
    assert set(endings) <= allowed, f"{name}: ended with {endings}"
    assert growth <= RSS_BOUND, f"{name}: RSS grew by {growth}"
    assert delivered == acked == HEALTHY_SPANS
    assert gateway.gw.alive()


def _forever(make: Callable[[int], bytes]) -> Iterator[bytes]:
    i = 0
    while True:
        yield make(i)
        i += 1


def test_rapid_reset(gateway: Gateway) -> None:  # CVE-2023-44487
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        body = frame(DATA, END_STREAM, 0, b"\0\0\0\0\0")

        def one(i: int) -> bytes:
            sid = 2 * i + 1
            return (frame(HEADERS, END_HEADERS, sid, c.block()) + body[:5] + struct.pack(">I", sid) + body[9:]
                    + frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))
        c.flood((b"".join(one(i) for i in range(j, j + 100)) for j in range(0, 100_000, 100)), 8 << 20)
        return [c.ending()]
    attack(gateway, "rapid reset (CVE-2023-44487)", run, {ENHANCE_YOUR_CALM})


def test_continuation_flood(gateway: Gateway) -> None:  # CVE-2023-45288
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        c.send(frame(HEADERS, 0, 1, c.block()))
        c.flood((frame(CONTINUATION, 0, 1, b"") * 1000 for _ in range(1000)), 8 << 20)
        crumbs = Raw(gateway.ports.grpc)
        crumbs.send(frame(HEADERS, 0, 1, crumbs.block()))
        crumbs.flood((frame(CONTINUATION, 0, 1, b"\x00") * 1000 for _ in range(1000)), 8 << 20)
        return [c.ending(), crumbs.ending()]
    attack(gateway, "CONTINUATION flood (CVE-2023-45288)", run, {ENHANCE_YOUR_CALM})


def test_ping_flood(gateway: Gateway) -> None:  # CVE-2019-9512
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        c.flood((frame(PING, 0, 0, b"floodxxx") * 1000 for _ in range(1000)), 8 << 20)
        return [c.ending()]
    attack(gateway, "PING flood (CVE-2019-9512)", run, {ENHANCE_YOUR_CALM})


def test_settings_flood(gateway: Gateway) -> None:  # CVE-2019-9515
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        c.flood((frame(SETTINGS, 0, 0) * 1000 for _ in range(1000)), 8 << 20)
        return [c.ending()]
    attack(gateway, "SETTINGS flood (CVE-2019-9515)", run, {ENHANCE_YOUR_CALM})


def test_rst_stream_flood(gateway: Gateway) -> None:  # CVE-2019-9514
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        c.send(frame(HEADERS, END_HEADERS, 1, c.block()) + frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
        c.flood((frame(RST_STREAM, 0, 1, struct.pack(">I", 8)) * 1000 for _ in range(1000)), 8 << 20)
        return [c.ending()]
    attack(gateway, "RST_STREAM flood (CVE-2019-9514)", run, {ENHANCE_YOUR_CALM})


def test_empty_frame_flood(gateway: Gateway) -> None:  # CVE-2019-9518
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        c.send(frame(HEADERS, END_HEADERS, 1, c.block()))
        c.flood((frame(DATA, 0, 1, b"") * 1000 for _ in range(1000)), 8 << 20)
        return [c.ending()]
    attack(gateway, "empty DATA flood (CVE-2019-9518)", run, {ENHANCE_YOUR_CALM})


def test_one_byte_data_fragmentation(gateway: Gateway) -> None:
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc)
        c.send(frame(HEADERS, END_HEADERS, 1, c.block()) + frame(DATA, 0, 1, b"\0" + struct.pack(">I", 4 << 20)))
        c.flood((frame(DATA, 0, 1, b"x") * 1000 for _ in range(4096)), 8 << 20)
        return [c.ending()]
    attack(gateway, "1-byte DATA fragmentation", run, {ENHANCE_YOUR_CALM})


def test_hpack_bomb_and_oversize_header_list(gateway: Gateway) -> None:
    def run() -> list[int]:
        bomb = Raw(gateway.ports.grpc)
        # One 4 KiB entry in the dynamic table, then a block referring to it thousands of times
        # (one byte each): 4 KiB decoded per byte sent, until the 64 KiB header-list limit.
        big = b"\x40" + bytes([0x05]) + b"x-big" + b"\x7f" + bytes([0x81, 0x1f]) + b"v" * 4000
        bomb.send(frame(HEADERS, END_HEADERS, 1, bomb.block() + big))
        bomb.send(frame(HEADERS, END_HEADERS, 3, bomb.block() + b"\xbe" * 16000))
        oversize = Raw(gateway.ports.grpc)
        literal = hpack.Encoder()
        block = bytes(literal.encode([(f"x-{i}", "v" * 1000) for i in range(100)], huffman=False))
        oversize.send(frame(HEADERS, 0, 1, block[:16000]) + b"".join(
            frame(CONTINUATION, END_HEADERS if i + 16000 >= len(block) else 0, 1, block[i: i + 16000])
            for i in range(16000, len(block), 16000)))
        return [bomb.ending(), oversize.ending()]
    attack(gateway, "HPACK bomb, oversize header list", run, {COMPRESSION_ERROR, PROTOCOL_ERROR})


def test_zero_window_reader_holding_streams(gateway: Gateway) -> None:
    def run() -> list[int]:
        c = Raw(gateway.ports.grpc, preface=False)
        c.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", S_INITIAL_WINDOW_SIZE, 0)))
        body = spans_request(1, name="held").SerializeToString()
        message = b"\0" + struct.pack(">I", len(body)) + body

        def one(i: int) -> bytes:
            sid = 2 * i + 1
            return frame(HEADERS, END_HEADERS, sid, c.block()) + frame(DATA, END_STREAM, sid, message)
        c.flood((b"".join(one(i) for i in range(j, j + 50)) for j in range(0, 20_000, 50)), 16 << 20)
        return [c.ending()]
    attack(gateway, "zero-window reader holding streams", run, {ENHANCE_YOUR_CALM})


def test_slowloris(gateway: Gateway) -> None:
    def run() -> list[int]:
        half_prefaces = [Raw(gateway.ports.grpc, preface=False) for _ in range(50)]
        for c in half_prefaces:
            c.send(PREFACE[:10])
        half_headers = [Raw(gateway.ports.grpc) for _ in range(50)]
        for c in half_headers:
            c.send(frame(HEADERS, 0, 1, c.block()))  # END_HEADERS never comes
        return [c.ending() for c in half_prefaces + half_headers]
    attack(gateway, "slowloris (preface, headers never finished)", run, {CLOSED, NO_ERROR})


def test_a_thousand_idle_connections(gateway: Gateway) -> None:
    def run() -> list[int]:
        conns = [Raw(gateway.ports.grpc) for _ in range(IDLE_CONNECTIONS)]
        return [c.ending() for c in conns]
    attack(gateway, f"{IDLE_CONNECTIONS} idle connections", run, {NO_ERROR})
