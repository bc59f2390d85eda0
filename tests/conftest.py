from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Ports, Sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def ports() -> Ports:
    return Ports.free()
