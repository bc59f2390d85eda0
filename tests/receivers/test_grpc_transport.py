"""The otlp receiver's gRPC `transport`: `tcp` listens on the endpoint's address of either family,
`tcp4` only on an IPv4 one and `tcp6` only on an IPv6 one, as Go's net.Listen does: an endpoint with
no address of the family asked for cannot be listened on."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.receivers.otlp_config import GrpcConfig
from gateway.receivers.otlp_grpc import GrpcServer


def _families(endpoint: str, transport: str) -> set[socket.AddressFamily]:
    async def run() -> set[socket.AddressFamily]:
        server = GrpcServer(GrpcConfig(endpoint=endpoint, transport=transport), {}, False)  # type: ignore[arg-type]
        await server.start()
        try:
            assert server._server is not None and server._server._server is not None
            return {sock.family for sock in server._server._server.sockets}
        finally:
            await server.shutdown()

    return asyncio.run(run())


def test_tcp_listens_on_either_family() -> None:
    assert _families("127.0.0.1:0", transport="tcp") == {socket.AF_INET}
    assert _families("[::1]:0", transport="tcp") == {socket.AF_INET6}


def test_tcp4_and_tcp6_listen_only_on_their_family() -> None:
    assert _families("127.0.0.1:0", transport="tcp4") == {socket.AF_INET}
    assert _families("[::1]:0", transport="tcp6") == {socket.AF_INET6}
    for endpoint, transport in (("[::1]:0", "tcp4"), ("127.0.0.1:0", "tcp6")):
        with pytest.raises(OSError, match="cannot listen for OTLP/gRPC"):
            _families(endpoint, transport=transport)


def test_read_buffer_size_is_refused_with_tls_where_it_would_do_nothing() -> None:
    from gateway.transport.tls import TLSServerConfig

    tls = TLSServerConfig(cert_pem="c", key_pem="k")
    assert GrpcConfig(tls=tls).validate() == []
    assert GrpcConfig(tls=tls, read_buffer_size=65536).validate() == [
        "read_buffer_size: not supported with tls by this gateway (TLS reads are asyncio's)"]
    assert GrpcConfig(read_buffer_size=65536).validate() == []
