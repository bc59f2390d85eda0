"""The counting downstream: an OTLP/gRPC trace server in its own process that counts spans and
requests into shared memory. It parses each request with upb against a counting view of the schema
(a span is opaque bytes there, so upb skips its content) and sums the lengths of the span lists:
no Python object is built per span, and the sink stays cheap next to the process it measures."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from bench.loadgen import TRACES_PATH


def _counting_view() -> Any:
    """ExportTraceServiceRequest with each span as opaque bytes (field numbers as OTLP's)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="bench_count.proto", package="bench.count", syntax="proto3")
    scope = fd.message_type.add(name="ScopeSpans")
    scope.field.add(name="spans", number=2, label=f.LABEL_REPEATED, type=f.TYPE_BYTES)
    for name, field_name, number, child in (
                                            ("ResourceSpans", "scope_spans", 2, "ScopeSpans"),
                                            ("Request", "resource_spans", 1, "ResourceSpans")):
        m = fd.message_type.add(name=name)
        m.field.add(name=field_name, number=number, label=f.LABEL_REPEATED, type=f.TYPE_MESSAGE,
                    type_name=f".bench.count.{child}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bench.count.Request"))


def _serve(port_out: Synchronized[int], spans: Synchronized[int], requests: Synchronized[int]) -> None:
    import grpc

    ok = b""  # an empty ExportTraceServiceResponse
    parse = _counting_view().FromString

    async def export(request: bytes, context: Any) -> bytes:
        n = 0
        for rs in parse(request).resource_spans:
            for ss in rs.scope_spans:
                n += len(ss.spans)
        # One writer process: the lock only orders us against readers.
        spans.value += n
        requests.value += 1
        return ok

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        _, method = TRACES_PATH.rsplit("/", 1)
        service = TRACES_PATH[1:].rsplit("/", 1)[0]
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(export)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        for host in ("127.0.0.2", "127.0.0.3"):  # three endpoints on one port, for the load-balancing scenario
            server.add_insecure_port(f"{host}:{port}")
        port_out.value = port
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(None)

    asyncio.run(main())


class CountingSink:
    """`with CountingSink() as sink:` a server on 127.0.0.1:`sink.port`; `sink.spans()` so far."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._port: Synchronized[int] = ctx.Value("i", 0)
        self._spans: Synchronized[int] = ctx.Value("q", 0)
        self._requests: Synchronized[int] = ctx.Value("q", 0)
        self._proc = ctx.Process(target=_serve, args=(self._port, self._spans, self._requests), daemon=True)
        self.port = 0

    def __enter__(self) -> CountingSink:
        self._proc.start()
        import time

        deadline = time.monotonic() + 20
        while not self._port.value:
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the counting sink did not start")
            time.sleep(0.01)
        self.port = self._port.value
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()

    def spans(self) -> int:
        return int(self._spans.value)

    def requests(self) -> int:
        return int(self._requests.value)

    def reset(self) -> None:
        with self._spans.get_lock():
            self._spans.value = 0
        with self._requests.get_lock():
            self._requests.value = 0
