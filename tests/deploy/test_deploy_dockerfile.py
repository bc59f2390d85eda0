"""The Dockerfile, without a Docker engine: hadolint, its structure, and its install steps replayed in a
fresh virtual environment, then the gateway started the way ENTRYPOINT + CMD start it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    REPO,
    free_port,
    gateway_process,
    http_status,
    read_log,
    stop_gracefully,
    wait_for,
)

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
IMAGE_CONFIG = "/etc/gateway/config.yaml"
GATEWAY_PORTS = (4317, 4318, 13133, 8888)


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    value: str


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    out: list[Instruction] = []
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword, " ".join(value.split())))
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(instructions: list[Instruction], keyword: str) -> list[str]:
    (found,) = [i for i in instructions if i.keyword == keyword]
    value = found.value.split(" CMD ", 1)[1] if keyword == "HEALTHCHECK" else found.value
    argv = json.loads(value)  # exec form only: a shell form would not pass SIGTERM on
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


# --- .dockerignore ------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip("/"))
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def in_context(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return not excluded


def build_context(dest: Path) -> list[str]:
    """Copy the files the .dockerignore lets into the build context; return their paths."""
    rules = dockerignore_rules()
    copied = []
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules")]
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if in_context(rel, rules):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
                copied.append(rel)
    return copied


def test_dockerignore_semantics() -> None:
    rules = dockerignore_rules()
    assert in_context("pyproject.toml", rules)
    assert in_context("config.yaml", rules)
    assert in_context("gateway/cli.py", rules)
    assert in_context("pipelines/processors/batch.py", rules)
    assert not in_context("gateway/__pycache__/cli.cpython-311.pyc", rules)
    assert not in_context(".venv/bin/python", rules)
    assert not in_context(".env", rules)
    assert not in_context("tests/deploy/conftest.py", rules)
    assert not in_context("helm/otel-gateway/values.yaml", rules)
    assert not in_context(".git/HEAD", rules)


# --- static checks ------------------------------------------------------------------------------


def test_hadolint(hadolint: Path) -> None:
    proc = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_dockerfile_structure() -> None:
    instructions = parse_dockerfile()
    froms = [i.value for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build and runtime"
    args = dict(i.value.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.value)
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    # Same base for both stages: the venv built in one runs in the other.
    assert {f.split()[0] for f in froms} == {"${PYTHON_IMAGE}"}
    final = final_stage(instructions)
    (user,) = [i.value for i in final if i.keyword == "USER"]
    uid = user.split(":")[0]
    assert uid not in ("0", "root")
    assert uid.isdigit() or uid.startswith("${"), "numeric uid, so runAsNonRoot can check it"
    assert "apt-get" not in " ".join(i.value for i in final), "no build tools in the runtime stage"
    copies = [i.value for i in final if i.keyword == "COPY"]
    assert f"config.yaml {IMAGE_CONFIG}" in copies
    assert any(c.startswith("--from=build /opt/venv") for c in copies)
    exposed = {int(p) for i in final if i.keyword == "EXPOSE" for p in i.value.split()}
    assert exposed == set(GATEWAY_PORTS)
    assert exec_form(final, "ENTRYPOINT") == ["otel-gateway"]
    assert exec_form(final, "CMD") == ["--config", IMAGE_CONFIG]
    assert "13133" in " ".join(exec_form(final, "HEALTHCHECK"))
    # The install steps test_image_install_steps_in_fresh_venv replays.
    build = " ".join(i.value for i in instructions if i.stage == 0 and i.keyword == "RUN")
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in build
    assert "python -m venv --without-pip /opt/venv" in build
    assert "pip --python /opt/venv/bin/python install --no-cache-dir /wheels/*.whl" in build


# --- the image's install and start, replayed ------------------------------------------------------


def rewrite_ports(config: dict[str, Any]) -> tuple[dict[str, Any], dict[int, int]]:
    """Point every endpoint of the shipped config at 127.0.0.1 and a free port."""
    mapping = {p: free_port() for p in GATEWAY_PORTS}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            m = re.fullmatch(r"(?:[\w.\-]+|\[[0-9a-f:]+\]):(\d+)", node)
            if m and int(m.group(1)) in mapping and ("0.0.0.0" in node or "localhost" in node or "127.0.0.1" in node):
                return f"127.0.0.1:{mapping[int(m.group(1))]}"
        return node

    out: dict[str, Any] = walk(config)
    # Defaults the shipped config may leave implicit: make them explicit, on the free ports.
    for proto, port in (("grpc", 4317), ("http", 4318)):
        protocols = out.get("receivers", {}).get("otlp", {}).get("protocols", {}) or {}
        if proto in protocols:
            block = protocols[proto] or {}
            block.setdefault("endpoint", f"127.0.0.1:{mapping[port]}")
            protocols[proto] = block
    extensions = out.setdefault("extensions", {})
    health = extensions.get("health_check") or {}
    health.setdefault("endpoint", f"127.0.0.1:{mapping[13133]}")
    extensions["health_check"] = health
    service = out.setdefault("service", {})
    if "health_check" not in (service.get("extensions") or []):
        service["extensions"] = [*(service.get("extensions") or []), "health_check"]
    metrics = service.setdefault("telemetry", {}).setdefault("metrics", {}) or {}
    metrics.setdefault("address", f"127.0.0.1:{mapping[8888]}")
    service["telemetry"]["metrics"] = metrics
    return out, mapping


def run(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


@pytest.mark.timeout(900)
def test_image_install_steps_in_fresh_venv(tmp_path: Path) -> None:
    for needed in ("pyproject.toml", "config.yaml"):
        if not (REPO / needed).is_file():
            pytest.skip(f"{needed} is not in the repo yet")
    final = final_stage(parse_dockerfile())

    # COPY . . under the .dockerignore, then the build stage's RUN, step by step.
    context = tmp_path / "context"
    context.mkdir()
    copied = build_context(context)
    assert "config.yaml" in copied and "pyproject.toml" in copied
    wheels = tmp_path / "wheels"
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."], cwd=context)
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == 1, built
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", *map(str, built)])
    assert not (venv / "bin" / "pip").exists(), "the runtime venv carries no pip"

    # The runtime stage: the shipped config at the image's path (ports moved to free ones here).
    shipped = yaml.safe_load((context / "config.yaml").read_text())
    config, ports = rewrite_ports(shipped)
    config_path = tmp_path / "etc-gateway" / "config.yaml"
    config_path.parent.mkdir()
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    workdir = tmp_path / "var-lib-gateway"
    workdir.mkdir()

    entrypoint, cmd = exec_form(final, "ENTRYPOINT"), exec_form(final, "CMD")
    argv = [str(venv / "bin" / entrypoint[0]), *entrypoint[1:]]
    argv += [str(config_path) if a == IMAGE_CONFIG else a for a in cmd]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
    }
    health_port = int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    metrics_port = int(config["service"]["telemetry"]["metrics"]["address"].rsplit(":", 1)[1])
    log = tmp_path / "gateway.log"
    with gateway_process(argv, cwd=workdir, env=env, log=log) as proc:
        wait_for(lambda: http_status(f"http://127.0.0.1:{health_port}/") == 200, 60, "health 200", proc, log)
        assert http_status(f"http://127.0.0.1:{metrics_port}/metrics") == 200

        # The image's HEALTHCHECK command, run by the venv's interpreter against this gateway.
        check = exec_form(final, "HEALTHCHECK")
        assert check[0] == "python"
        check = [str(venv / "bin" / "python"), *(a.replace(":13133/", f":{health_port}/") for a in check[1:])]
        hc = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30, check=False)
        assert hc.returncode == 0, hc.stderr

        rc = stop_gracefully(proc, timeout_s=45)
        assert rc == 0, f"exit {rc} after SIGTERM:\n{read_log(log)}"
    assert ports  # every default port was moved
