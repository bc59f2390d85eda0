"""The counting downstream: an OTLP/gRPC trace server in its own process that counts spans and
requests into shared memory. It parses each request with upb and sums the lengths of the span
lists, so no Python object is built per span."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from bench.loadgen import TRACES_PATH


def _serve(port_out: Synchronized[int], spans: Synchronized[int], requests: Synchronized[int]) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    ok = ExportTraceServiceResponse().SerializeToString()
    parse = ExportTraceServiceRequest.FromString

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
        port_out.value = server.add_insecure_port("127.0.0.1:0")
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
