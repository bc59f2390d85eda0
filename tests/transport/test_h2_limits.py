"""The server's limits and connection lifecycle (`ServerLimits`, grpc-go's keepalive semantics), each
tripped on purpose over a hand-driven connection; and the otlp receiver's keys that set them."""

from __future__ import annotations

import socket
import struct

import pytest

from gateway.config.decode import Errors, decode
from gateway.receivers.otlp_config import GrpcConfig
from gateway.transport.h2 import (
    ACK,
    ENHANCE_YOUR_CALM,
    MAX_STREAM_ID,
    NO_ERROR,
    PING,
    REFUSED_STREAM,
    S_MAX_CONCURRENT_STREAMS,
    S_MAX_FRAME_SIZE,
    SETTINGS,
    frame,
)
from gateway.transport.h2_lifecycle import ServerLimits
from tests.transport.test_grpc_server import SLOW, TIMEOUT, Conn, Serve, handlers_done, open_conn, still_serves


def settings_of(c: Conn) -> dict[int, int]:
    f = c.next_frame(lambda f: f.kind == SETTINGS and not f.flags & ACK)
    return {k: v for k, v in struct.iter_unpack(">HI", f.payload)}


def test_defaults_advertise_100_streams_and_1_mib_frames(serve: Serve) -> None:
    c = open_conn(serve())
    got = settings_of(c)
    assert got[S_MAX_CONCURRENT_STREAMS] == 100
    assert got[S_MAX_FRAME_SIZE] == 1 << 20  # Go's net/http2 server default, not 16 MiB


def test_max_concurrent_streams_0_means_100_never_unlimited() -> None:
    assert GrpcConfig(max_concurrent_streams=0).limits().max_concurrent_streams == 100
    assert GrpcConfig(max_concurrent_streams=7).limits().max_concurrent_streams == 7


def test_keepalive_keys_decode_to_limits() -> None:
    raw = {"endpoint": "127.0.0.1:4317", "read_buffer_size": 65536, "write_buffer_size": 131072,
           "keepalive": {"server_parameters": {"max_connection_idle": "11s", "max_connection_age": "12s",
                                               "max_connection_age_grace": "13s", "time": "14s", "timeout": "15s"},
                         "enforcement_policy": {"min_time": "16s", "permit_without_stream": True}}}
    errors = Errors()
    cfg = decode(GrpcConfig, raw, "grpc", errors)
    assert cfg is not None and errors.lines == []
    limits = cfg.limits()
    assert (limits.max_connection_idle, limits.max_connection_age, limits.max_connection_age_grace,
            limits.keepalive_time, limits.keepalive_timeout, limits.min_ping_interval) == (11, 12, 13, 14, 15, 16)
    assert limits.permit_without_stream and limits.read_size == 65536 and limits.write_high_water == 131072
    defaults = GrpcConfig().limits()
    assert defaults == ServerLimits(read_size=524288, write_high_water=64 * 1024)


def test_write_buffer_size_is_the_write_high_water_mark(serve: Serve) -> None:
    served = serve(limits=ServerLimits(write_high_water=12345))
    c = open_conn(served)
    settings_of(c)

    async def high() -> list[int]:
        return [conn.transport.get_write_buffer_limits()[1] for conn in served.server.connections
                if conn.transport is not None]

    assert served.lt.run(high()) == [12345]


def test_read_buffer_size_is_what_one_read_asks_the_socket_for(serve: Serve) -> None:
    served = serve(limits=ServerLimits(read_size=4096))
    c = open_conn(served)
    settings_of(c)

    async def sizes() -> list[int]:
        return [conn.transport.max_size for conn in served.server.connections  # type: ignore[attr-defined]
                if conn.transport is not None]

    assert served.lt.run(sizes()) == [4096]


def test_extra_stream_is_refused(serve: Serve) -> None:
    served = serve(limits=ServerLimits(max_concurrent_streams=2))
    c = open_conn(served)
    c.send(c.request(1, b"a", path=SLOW), c.request(3, b"b", path=SLOW), c.request(5, b"c", path=SLOW))
    assert c.response(5).reset == REFUSED_STREAM
    served.app.let_go()
    assert c.response(1).message == b"slow:a" and c.response(3).message == b"slow:b"


def test_max_connections_closes_the_extra_connection_at_once(serve: Serve) -> None:
    served = serve(limits=ServerLimits(max_connections=2))
    first, second = open_conn(served), open_conn(served)
    settings_of(first), settings_of(second)
    third = open_conn(served)
    assert third.closed()
    assert served.server.refused_connections == 1
    assert first.alive()


def test_preface_never_finished_is_closed_after_connection_timeout(serve: Serve) -> None:
    served = serve(limits=ServerLimits(connection_timeout=0.2))
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT)
    sock.sendall(b"PRI * HTTP/2.0\r\n")  # half a preface, then nothing
    c = Conn(served.port, sock=sock, preface=False)
    served.conns.append(c)
    assert c.closed()


def test_header_block_never_finished_is_closed_after_connection_timeout(serve: Serve) -> None:
    served = serve(limits=ServerLimits(connection_timeout=0.2))
    c = open_conn(served)
    c.send(frame(1, 0, 1, c.block()))  # HEADERS without END_HEADERS, and no CONTINUATION ever
    assert c.closed()


def test_max_connection_idle_sends_goaway_and_closes(serve: Serve) -> None:
    served = serve(limits=ServerLimits(max_connection_idle=0.2))
    c = open_conn(served)
    c.send(c.request(1, b"one"))
    assert c.response(1).message == b"one"
    assert c.goaway() == (1, NO_ERROR)
    assert c.closed()


def test_max_connection_age_two_step_goaway_then_grace(serve: Serve) -> None:
    served = serve(limits=ServerLimits(max_connection_age=0.2, max_connection_age_grace=0.3))
    c = open_conn(served)
    c.send(c.request(1, b"held", path=SLOW))
    served.app.wait_started()
    assert c.goaway() == (MAX_STREAM_ID, NO_ERROR)
    ping = c.next_frame(lambda f: f.kind == PING and not f.flags & ACK)
    c.send(c.request(3, b"in flight before the GOAWAY arrived", path=SLOW))  # still taken
    served.app.wait_started()
    c.send(frame(PING, ACK, 0, ping.payload))
    assert c.goaway() == (3, NO_ERROR)
    assert c.closed()  # the grace ran out before the handlers finished


def test_max_connection_age_lets_a_finished_connection_close(serve: Serve) -> None:
    served = serve(limits=ServerLimits(max_connection_age=0.2))
    c = open_conn(served)
    c.send(c.request(1, b"one"))
    assert c.response(1).message == b"one"
    assert c.goaway() == (MAX_STREAM_ID, NO_ERROR)
    ping = c.next_frame(lambda f: f.kind == PING and not f.flags & ACK)
    c.send(frame(PING, ACK, 0, ping.payload))
    assert c.goaway() == (1, NO_ERROR)
    assert c.closed()


def test_keepalive_ping_then_close_when_unanswered(serve: Serve) -> None:
    served = serve(limits=ServerLimits(keepalive_time=0.2, keepalive_timeout=0.2))
    c = open_conn(served)
    ping = c.next_frame(lambda f: f.kind == PING and not f.flags & ACK)
    c.send(frame(PING, ACK, 0, ping.payload))  # answered: the connection lives on, and is pinged again
    c.next_frame(lambda f: f.kind == PING and not f.flags & ACK)
    assert c.closed()  # the second went unanswered


@pytest.mark.parametrize("permit", [False, True])
def test_pings_too_often_are_enhance_your_calm_too_many_pings(serve: Serve, permit: bool) -> None:
    served = serve(limits=ServerLimits(min_ping_interval=60, permit_without_stream=permit))
    c = open_conn(served)
    for i in range(3):  # the first is free; two strikes are forgiven
        c.send(frame(PING, 0, 0, b"ping%04d" % i))
        c.next_frame(lambda f: f.kind == PING and f.flags & ACK == ACK)
    c.send(frame(PING, 0, 0, b"one more"))
    f = c.next_frame(lambda f: f.kind == 7)
    assert struct.unpack(">I", f.payload[4:8])[0] == ENHANCE_YOUR_CALM and f.payload[8:] == b"too_many_pings"
    assert c.closed()
    still_serves(served)


def test_pings_are_forgiven_when_the_server_sends_data(serve: Serve) -> None:
    served = serve(limits=ServerLimits(min_ping_interval=60))
    c = open_conn(served)
    for i in range(10):
        c.send(frame(PING, 0, 0, b"ping%04d" % i), c.request(2 * i + 1, b"x"))
        assert c.response(2 * i + 1).message == b"x"
        assert c.next_frame(lambda f: f.kind == PING and f.flags & ACK == ACK).payload == b"ping%04d" % i
    assert c.alive()
    served.lt.run(handlers_done(served.server))


@pytest.mark.parametrize("permit", [False, True])
def test_permit_without_stream_decides_whether_pings_with_no_stream_are_strikes(serve: Serve, permit: bool) -> None:
    """With no minimum interval, only grpc-go's idle rule can make a PING a strike: one with no stream
    open, within 2 h of the last, unless `permit_without_stream`."""
    served = serve(limits=ServerLimits(min_ping_interval=0.0, permit_without_stream=permit))
    c = open_conn(served)
    for i in range(3):  # the first is free; two strikes are forgiven
        c.send(frame(PING, 0, 0, b"idle%04d" % i))
        c.next_frame(lambda f: f.kind == PING and f.flags & ACK == ACK)
    c.send(frame(PING, 0, 0, b"idle-one"))
    if permit:
        f = c.next_frame(lambda f: f.kind == PING and f.flags & ACK == ACK)
        assert f.payload == b"idle-one"  # answered: no strike, no GOAWAY
    else:
        f = c.next_frame(lambda f: f.kind == 7)
        assert struct.unpack(">I", f.payload[4:8])[0] == ENHANCE_YOUR_CALM and f.payload[8:] == b"too_many_pings"
        assert c.closed()
