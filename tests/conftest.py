from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import Certs, StrictGrpcSink, make_certs
from tests.harness import Ports, Sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def ports() -> Ports:
    return Ports.free()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    """A CA, and server and client certificates it signed, for tests of TLS and mutual TLS."""
    yield make_certs(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def backends() -> Iterator[list[StrictGrpcSink]]:
    """Three gRPC trace backends on one port, at 127.0.0.1 to 127.0.0.3 (as the pods behind a name)."""
    first = StrictGrpcSink()
    started = [first]
    try:
        started += [StrictGrpcSink(port=first.port, host=f"127.0.0.{i}") for i in (2, 3)]
        yield started
    finally:
        for s in started:
            s.stop()
