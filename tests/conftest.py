from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import Certs, make_certs
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
