"""gRPC name resolution for our client (grpc/doc/naming.md), as grpc-go does it for the Collector:
`dns:[//server/]host[:port]` is every address DNS gives for `host` (asked of `server`, else of the
system's resolver with its search domains and /etc/hosts); any other target is "passthrough", grpc-go's
default for Dial, handed to the dialer as it is (one connection, to the first address that answers).

Asking a given server needs only A and AAAA over UDP, so the query and its answer are encoded here
(RFC 1035 4.1) rather than with a DNS library.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct
from dataclasses import dataclass

DNS_PORT = 53
QUERY_TIMEOUT = 2.0
_A, _AAAA, _IN = 1, 28, 1
_HEADER = struct.Struct(">HHHHHH")
_RR = struct.Struct(">HHIH")  # type, class, TTL, RDLENGTH

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    authority: str  # host[:port] as the target wrote it: the `:authority` of every call
    dns: bool = False  # every address of `host`, re-resolved; else passthrough
    server: Address | None = None  # the DNS server of `dns://server/...`; None: the system's resolver


def split_host_port(text: str, default_port: int) -> Address:
    """`host:port`, `[v6]:port`, `host` or `[v6]` (the default port); ValueError if the port is not a number."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: want [address]:port")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port and not port.isdigit():
        raise ValueError(f"invalid port {port!r} in {text!r}")
    if not host:
        raise ValueError(f"{text!r}: no host")
    return host, int(port) if port else default_port


def parse_target(target: str, default_port: int) -> Target:
    """A gRPC target; ValueError naming what is wrong with it."""
    if not target.startswith("dns:"):
        return Target(*split_host_port(target, default_port), target)
    rest, server = target[4:], None
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        if not slash:
            raise ValueError(f"{target!r}: want dns://[server]/host:port")
        if authority:
            server = split_host_port(authority, DNS_PORT)
    return Target(*split_host_port(rest, default_port), rest, dns=True, server=server)


async def resolve(target: Target) -> list[Address]:
    """The addresses to connect to, in the order given; an empty list if the name has none."""
    host, port = target.host, target.port
    if not target.dns or _is_ip(host):
        return [(host, port)]
    if target.server is None:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys((str(info[4][0]), port) for info in infos))
    v4, v6 = await asyncio.gather(query(target.server, host, _A), query(target.server, host, _AAAA))
    return [(ip, port) for ip in (*v4, *v6)]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, qid: bytes, done: asyncio.Future[bytes]) -> None:
        self.qid = qid
        self.done = done

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data[:2] == self.qid and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def query(server: Address, name: str, qtype: int) -> list[str]:
    """The A (1) or AAAA (28) addresses `server` answers for `name`; OSError if it fails or refuses."""
    qid = secrets.token_bytes(2)
    labels = b"".join(bytes((len(p),)) + p for p in name.rstrip(".").encode("idna").split(b"."))
    packet = qid + _HEADER.pack(0, 0x0100, 1, 0, 0, 0)[2:] + labels + b"\0" + struct.pack(">HH", qtype, _IN)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Answer(qid, done), remote_addr=server)
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            transport.sendto(packet)
            data = await done
    except TimeoutError:
        raise OSError(f"DNS server {server[0]}:{server[1]} did not answer for {name}") from None
    finally:
        transport.close()
    return _addresses(data, qtype, name)


def _addresses(data: bytes, qtype: int, name: str) -> list[str]:
    try:
        _, flags, questions, answers, _, _ = _HEADER.unpack_from(data)
        rcode = flags & 0xF
        if rcode == 3:  # NXDOMAIN
            return []
        if rcode:
            raise OSError(f"DNS answer for {name}: error code {rcode}")
        pos = _HEADER.size
        for _ in range(questions):
            pos = _skip_name(data, pos) + 4
        out = []
        family, size = (socket.AF_INET, 4) if qtype == _A else (socket.AF_INET6, 16)
        for _ in range(answers):
            pos = _skip_name(data, pos)
            rtype, rclass, _, length = _RR.unpack_from(data, pos)
            pos += _RR.size
            if rtype == qtype and rclass == _IN and length == size:
                out.append(socket.inet_ntop(family, data[pos:pos + size]))
            pos += length
        return out
    except (struct.error, IndexError):
        raise OSError(f"malformed DNS answer for {name}") from None


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return pos + 2
        pos += 1 + length
