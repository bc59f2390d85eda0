"""The import rules of `make lint`: the layers (import-linter, contracts in pyproject.toml) and no import
cycle (tools/check_imports.py), kept by the real tree and broken by small packages made to break them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_IMPORTS = ROOT / "tools" / "check_imports.py"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _run(args: list[str | Path], cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / name / f"{module}.py").write_text(textwrap.dedent(source))


def test_the_tree_keeps_its_layers() -> None:
    result = _run([LINT_IMPORTS, "--no-cache"], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_tree_has_no_import_cycle() -> None:
    result = _run([sys.executable, CHECK_IMPORTS, "gateway", "pipelines"], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no import cycles")


def test_a_cycle_is_spelled_out(tmp_path: Path) -> None:
    _package(tmp_path, "cyclic", {
        "a": """
            def late() -> object:
                from cyclic import b  # a late import hides the cycle from a reader, not from the check

                return b
            """,
        "b": "from cyclic import a\n",
        "c": """
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from cyclic.d import D
            """,
        "d": "from cyclic import c\n\nD = int\n",
        "e": "from cyclic import a\n",
    })
    result = _run([sys.executable, CHECK_IMPORTS, "cyclic"], tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cyclic.a -> cyclic.b -> cyclic.a" in result.stdout
    assert "cyclic.b -> cyclic.a  (line 1: from cyclic import a)" in result.stdout
    assert "cyclic.c -> cyclic.d -> cyclic.c" in result.stdout  # TYPE_CHECKING imports count
    assert "cyclic.e" not in result.stdout  # imports into a cycle are no part of it


def test_a_broken_layer_fails(tmp_path: Path) -> None:
    _package(tmp_path, "layered", {
        "high": "from layered import low\n",
        "low": """
            def helper() -> object:
                from layered import high

                return high
            """,
    })
    (tmp_path / ".importlinter").write_text(textwrap.dedent("""
        [importlinter]
        root_package = layered

        [importlinter:contract:layers]
        name = high over low
        type = layers
        layers =
            layered.high
            layered.low
        """))
    result = _run([LINT_IMPORTS, "--no-cache"], tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "high over low BROKEN" in result.stdout
    assert "layered.low -> layered.high" in result.stdout


def test_the_real_contracts_catch_a_transport_that_imports_a_receiver(tmp_path: Path) -> None:
    for package in ("gateway", "pipelines"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "gateway" / "transport" / "compression.py").open("a") as f:
        f.write("\n\ndef _outcomes() -> object:\n    from gateway.receivers import ingest\n\n    return ingest\n")
    result = _run([LINT_IMPORTS, "--no-cache"], tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gateway.transport.compression -> gateway.receivers.ingest" in result.stdout
