"""The OTTL differential harness: every case of corpus.yaml through the reference Collector's
`transform`/`filter` processor and through the gateway's, the same input to both, the outputs
compared case by case, span by span.

One Collector process and one gateway process hold every case at once: per case a pipeline
`<signal>/<id>` with its own OTLP/gRPC receiver `otlp/<id>` on its own free port, the case's
processor `<transform|filter>/<id>`, and an exporter (the Collector: `file/<id>`, one JSON file per
case; the gateway: `otlp/<id>` to one shared Sink, tagged with the header `x-ottl-case: <id>`,
its queue off so that each request is exported in order before the client is answered).

Before starting, each side validates the whole config; a case whose component is named in a
refusal is set aside as refused by that side, and the rest run. Each side is stopped gracefully
(SIGTERM) after the last request, so the Collector's files are flushed and closed and the gateway's
exports are done: no sleeps, no guessing when output is complete.

Outputs are compared as the case's resources in the order they arrived (every output request's
resources, concatenated): resource -> scope -> item order as produced, never sorted. Maps (attributes,
kvlists) are compared by key; `strict_order` also compares their key order (the Collector's
`delete_key` moves the map's last entry into the deleted slot, for one).

Used by tests/interop/test_ottl_differential.py and `python -m tests.ottl.diffreport`.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf.message import Message

from pipelines import otlp_json
from pipelines.errors import PermanentError
from tests import peers
from tests.harness import REPO, SERVICES, GatewayProcess, Ports, Sink, free_ports
from tests.ottl import inputs

CORPUS = Path(__file__).with_name("corpus.yaml")
CASE_HEADER = "x-ottl-case"
SIGNALS = ("traces", "logs", "metrics")
PROCESSORS = ("transform", "filter")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

# ---------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One processor config run on the signal's input. `noop`: the output is meant to equal the input
    (a deliberate edge case); `refused`: the Collector answers the requests with an error
    (error_mode propagate) and exports nothing."""

    id: str
    signal: str
    processor: str
    config: dict[str, Any]
    noop: bool = False
    refused: bool = False
    note: str = ""

    @property
    def component(self) -> str:
        return f"{self.processor}/{self.id}"

    def statements(self) -> list[str]:
        """Every OTTL statement and condition in the config, for reports."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, list):
                for item in node:
                    walk(item)
            elif isinstance(node, dict):
                for key, value in node.items():
                    if key not in ("error_mode", "context"):
                        walk(value)

        walk(self.config)
        return out


@dataclass(frozen=True)
class InvalidCase:
    """A processor config the Collector refuses at startup. `error`: a part of the Collector's
    error text; `names`: what a refusal must name (the function, path, enum or context at fault)."""

    id: str
    signal: str
    processor: str
    config: dict[str, Any]
    error: str
    names: str
    note: str = ""
    # Where the gateway deliberately accepts what the Collector refuses (a Collector quirk): why.
    gateway_accepts: str = ""

    @property
    def component(self) -> str:
        return f"{self.processor}/{self.id}"


def _check_common(entry: dict[str, Any], seen: set[str]) -> None:
    cid = entry.get("id")
    if not isinstance(cid, str) or not _ID.match(cid):
        raise ValueError(f"corpus: bad id {cid!r} (lowercase letters, digits, '-', '_', '.')")
    if cid in seen:
        raise ValueError(f"corpus: duplicate id {cid!r}")
    seen.add(cid)
    if entry.get("signal") not in SIGNALS:
        raise ValueError(f"corpus {cid}: signal must be one of {SIGNALS}")
    if entry.get("processor") not in PROCESSORS:
        raise ValueError(f"corpus {cid}: processor must be one of {PROCESSORS}")
    if not isinstance(entry.get("config"), dict):
        raise ValueError(f"corpus {cid}: config must be a mapping")


def load_corpus(path: Path = CORPUS) -> tuple[list[Case], list[InvalidCase]]:
    doc = yaml.safe_load(path.read_text())
    seen: set[str] = set()
    cases: list[Case] = []
    for entry in doc["cases"]:
        _check_common(entry, seen)
        extra = set(entry) - {"id", "signal", "processor", "config", "noop", "refused", "note"}
        if extra:
            raise ValueError(f"corpus {entry['id']}: unknown keys {sorted(extra)}")
        cases.append(Case(entry["id"], entry["signal"], entry["processor"], entry["config"],
                          bool(entry.get("noop", False)), bool(entry.get("refused", False)),
                          str(entry.get("note", ""))))
    invalid: list[InvalidCase] = []
    for entry in doc.get("invalid", []):
        _check_common(entry, seen)
        invalid.append(InvalidCase(entry["id"], entry["signal"], entry["processor"], entry["config"],
                                   str(entry["error"]), str(entry["names"]), str(entry.get("note", "")),
                                   str(entry.get("gateway_accepts", ""))))
    return cases, invalid


def select(cases: list[Case], only: Iterable[str] | None) -> list[Case]:
    if not only:
        return cases
    wanted = list(dict.fromkeys(only))
    by_id = {c.id: c for c in cases}
    missing = [w for w in wanted if w not in by_id]
    if missing:
        raise ValueError(f"no such case: {', '.join(missing)}")
    return [by_id[w] for w in wanted]


# ---------------------------------------------------------------- configs


def _pipelines(cases: list[Case], exporter: Callable[[Case], str]) -> dict[str, Any]:
    return {f"{c.signal}/{c.id}": {"receivers": [f"otlp/{c.id}"], "processors": [c.component],
                                   "exporters": [exporter(c)]} for c in cases}


def _receivers(cases: list[Case], ports: dict[str, int]) -> dict[str, Any]:
    return {f"otlp/{c.id}": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{ports[c.id]}"}}} for c in cases}


def collector_config(cases: list[Case], ports: dict[str, int], workdir: Path, health_endpoint: str) -> str:
    doc = {
        "extensions": {"health_check": {"endpoint": health_endpoint}},
        "receivers": _receivers(cases, ports),
        "processors": {c.component: c.config for c in cases},
        "exporters": {f"file/{c.id}": {"path": str(workdir / f"{c.id}.json")} for c in cases},
        "service": {"extensions": ["health_check"], "pipelines": _pipelines(cases, lambda c: f"file/{c.id}")},
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def gateway_config(cases: list[Case], ports: dict[str, int], gw: Ports, sink_port: int) -> str:
    exporters = {f"otlp/{c.id}": {
        "endpoint": f"127.0.0.1:{sink_port}", "tls": {"insecure": True}, "headers": {CASE_HEADER: c.id},
        "sending_queue": {"enabled": False}, "retry_on_failure": {"enabled": False},
    } for c in cases}
    doc = {
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{gw.health}"}},
        "receivers": _receivers(cases, ports),
        "processors": {c.component: c.config for c in cases},
        "exporters": exporters,
        "service": {"extensions": ["health_check"], "pipelines": _pipelines(cases, lambda c: f"otlp/{c.id}"),
                    "telemetry": {"metrics": {"address": f"127.0.0.1:{gw.metrics}"}}},
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def invalid_config(case: InvalidCase, port: int, workdir: Path) -> str:
    """A whole Collector-format config around one invalid processor (for `validate`)."""
    doc = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}},
        "processors": {case.component: case.config},
        "exporters": {"debug": {}},
        "service": {"pipelines": {case.signal: {"receivers": ["otlp"], "processors": [case.component],
                                                "exporters": ["debug"]}}},
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------- validation


_NAMED = re.compile(r"(?:processors|receivers|exporters|pipelines)::([\w.-]+/[\w.-]+)"
                    r"|configuration for \"([\w.-]+/[\w.-]+)\"")


def refusals(text: str, cases: Iterable[Case]) -> tuple[dict[str, str], list[str]]:
    """Split a validator's error text into {case id: its lines} and the lines naming no case. A
    line naming a case's component (`processors::transform/<id>: ...`, or the decoder's `error
    reading configuration for "transform/<id>"`) starts that case's message; the lines after it
    that name no case continue it."""
    by_component = {c.component: c.id for c in cases}
    found: dict[str, list[str]] = {}
    stray: list[str] = []
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip().removeprefix("Error: ")
        if not line:
            continue
        hit = next((by_component[n] for m in _NAMED.finditer(line) for n in m.groups()
                    if n is not None and n in by_component), None)
        if hit is not None:
            current = hit
            found.setdefault(hit, []).append(line)
        elif current is not None and not re.match(r"^\w+::", line):
            found[current].append(line)
        elif not line.startswith(("invalid configuration", "failed to get config")):
            stray.append(line)
    return {k: "\n".join(v) for k, v in found.items()}, stray


def mentions(text: str, needle: str, case: InvalidCase, config_path: Path | None = None) -> bool:
    """Whether a refusal names `needle` (as a whole word when it is one), not counting the config's
    path and the component's own id, which every refusal of the case repeats."""
    if config_path is not None:
        text = text.replace(str(config_path), "")
    text = text.replace(case.component, "")
    if re.fullmatch(r"[\w.]+", needle):
        return re.search(rf"(?<![\w.]){re.escape(needle)}(?![\w])", text) is not None
    return needle in text


def collector_validate(config_path: Path) -> tuple[int, str]:
    binary = peers.require_peer("otelcol-ref")
    proc = subprocess.run([str(binary), "validate", "--config", str(config_path)], capture_output=True,
                          text=True, timeout=120, check=False)
    return proc.returncode, (proc.stderr + proc.stdout).strip()


def gateway_validate(config_path: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "gateway", "validate", "--config", str(config_path)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    return proc.returncode, (proc.stderr + proc.stdout).strip()


# ---------------------------------------------------------------- running


@dataclass
class Answer:
    """The client's answer to one export call: OK, or the gRPC status code and message."""

    ok: bool
    code: str = "OK"
    message: str = ""

    def __str__(self) -> str:
        return "ok" if self.ok else f"error {self.code}: {self.message[:200]}"


@dataclass
class SideResult:
    """What one side did with a case: refused its config (`refused` holds why), or answered the
    requests (`answers`) and exported `output` (requests, in arrival order)."""

    refused: str | None = None
    answers: list[Answer] = field(default_factory=list)
    output: list[Any] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def request_refused(self) -> bool:
        return any(not a.ok for a in self.answers)


def send_all(cases: list[Case], ports: dict[str, int], skip: set[str]) -> dict[str, list[Answer]]:
    """Each case's input, one export call per request, in order; the answers."""
    out: dict[str, list[Answer]] = {}
    payloads = {s: [r.SerializeToString() for r in inputs.requests(s)] for s in SIGNALS}
    for case in cases:
        if case.id in skip:
            continue
        answers: list[Answer] = []
        with grpc.insecure_channel(f"127.0.0.1:{ports[case.id]}") as channel:
            call = channel.unary_unary(f"/{SERVICES[case.signal]}/Export",
                                       request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
            for payload in payloads[case.signal]:
                try:
                    call(payload, timeout=20)
                    answers.append(Answer(True))
                except grpc.RpcError as exc:
                    answers.append(Answer(False, exc.code().name, exc.details() or ""))
        out[case.id] = answers
    return out


def _drop_refused(cases: list[Case], validate: Callable[[Path], tuple[int, str]], render: Callable[[list[Case]], str],
                  path: Path) -> tuple[list[Case], dict[str, str], str]:
    """Validate the config of `cases`; set aside the cases a refusal names, until the rest validate.
    Returns (accepted cases, {refused id: why}, a refusal naming no case or '')."""
    refused: dict[str, str] = {}
    live = list(cases)
    for _ in range(4):
        if not live:
            break
        path.write_text(render(live))
        rc, text = validate(path)
        if rc == 0:
            return live, refused, ""
        named, stray = refusals(text, live)
        if not named:
            return [], refused, "\n".join(stray) or text
        refused.update(named)
        live = [c for c in live if c.id not in named]
    return live, refused, ""


def read_file_exporter(path: Path, signal: str) -> tuple[list[Any], list[str]]:
    """The requests a (stopped, so flushed) file exporter wrote, and why any line could not be read:
    OTTL can make strings that are not UTF-8 (Substring cuts bytes; Decode of arbitrary bytes), which
    the Collector passes on as they are and which neither JSON nor protobuf strings can hold."""
    if not path.exists():
        return [], []
    out: list[Any] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_bytes().splitlines()):
        if not line.strip():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"line {n}: not UTF-8 at byte {exc.start}: {line[max(0, exc.start - 40):exc.start + 8]!r}")
            continue
        try:
            out.append(otlp_json.decode(signal, line))
        except PermanentError as exc:
            problems.append(f"line {n}: {exc}")
    return out, problems


def run_collector(cases: list[Case], workdir: Path) -> dict[str, SideResult]:
    """Every case through one otelcol-ref; skips (pytest) when otelcol-ref is not built."""
    peers.require_peer("otelcol-ref")
    results = {c.id: SideResult() for c in cases}
    workdir.mkdir(parents=True, exist_ok=True)
    ports = dict(zip([c.id for c in cases], free_ports(len(cases)), strict=True))
    health = free_ports(1)[0]
    outdir = workdir / "collector"
    outdir.mkdir(parents=True, exist_ok=True)
    live, refused, stray = _drop_refused(
        cases, collector_validate, lambda cs: collector_config(cs, ports, outdir, f"127.0.0.1:{health}"),
        workdir / "collector-validate.yaml")
    if stray:
        raise RuntimeError(f"the Collector refused the config for no case in particular:\n{stray}")
    for cid, why in refused.items():
        results[cid].refused = why
    if not live:
        return results
    text = collector_config(live, ports, outdir, "{{health_endpoint}}")
    col = peers.start_otelcol(text, workdir=workdir / "otelcol", ready_timeout=120)
    try:
        answers = send_all(live, ports, set())
    finally:
        col.stop(timeout=60)
    for case in live:
        res = results[case.id]
        res.answers = answers[case.id]
        res.output, res.unreadable = read_file_exporter(outdir / f"{case.id}.json", case.signal)
    return results


def run_gateway(cases: list[Case], workdir: Path) -> dict[str, SideResult]:
    """Every case through one gateway process (python -m gateway), exporting to one Sink."""
    results = {c.id: SideResult() for c in cases}
    workdir.mkdir(parents=True, exist_ok=True)
    ports = dict(zip([c.id for c in cases], free_ports(len(cases)), strict=True))
    gw_ports = Ports.free()
    sink = Sink().start()
    try:
        live, refused, stray = _drop_refused(
            cases, gateway_validate, lambda cs: gateway_config(cs, ports, gw_ports, sink.grpc_port),
            workdir / "gateway-validate.yaml")
        for cid, why in refused.items():
            results[cid].refused = why
        if stray:
            for case in cases:
                results[case.id].refused = results[case.id].refused or f"gateway config refused: {stray}"
            return results
        if not live:
            return results
        gwdir = workdir / "gateway"
        gwdir.mkdir(parents=True, exist_ok=True)
        gw = GatewayProcess(gateway_config(live, ports, gw_ports, sink.grpc_port), ports=gw_ports, workdir=gwdir)
        gw.start(wait=False)
        try:
            try:
                gw.wait_ready(60)
            except (RuntimeError, TimeoutError) as exc:
                # It validated the config yet did not start: every case says so, nothing else runs.
                why = f"the gateway did not start: {exc}\n{gw.stderr()[-3000:]}"
                for case in live:
                    results[case.id].refused = why
                return results
            answers = send_all(live, ports, set())
            rc = gw.stop(timeout=60)
            if rc != 0:
                raise RuntimeError(f"the gateway exited with {rc}:\n{gw.stderr()[-4000:]}")
        finally:
            gw.kill()
        received = sink.requests()
        for case in live:
            res = results[case.id]
            res.answers = answers[case.id]
            res.output = [r.request for r in received if r.headers.get(CASE_HEADER) == case.id]
    finally:
        sink.stop()
    return results


@contextlib.contextmanager
def scratch(prefix: str = "ottl-diff-") -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


# ---------------------------------------------------------------- canonical form

_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
_RESOURCE_LISTS = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}


def _anyvalue(v: Any, strict_order: bool) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return ("empty",)
    if kind == "string_value":
        return ("str", v.string_value)
    if kind == "int_value":
        return ("int", v.int_value)
    if kind == "double_value":
        return ("double", v.double_value)
    if kind == "bool_value":
        return ("bool", v.bool_value)
    if kind == "bytes_value":
        return ("bytes", v.bytes_value.hex())
    if kind == "array_value":
        return ("array", [_anyvalue(x, strict_order) for x in v.array_value.values])
    return ("map", _kvs(v.kvlist_value.values, strict_order))


def _kvs(kvs: Any, strict_order: bool) -> dict[str, Any]:
    pairs = [(kv.key, _anyvalue(kv.value, strict_order)) for kv in kvs]
    if not strict_order:
        pairs.sort(key=lambda p: p[0])
    out: dict[str, Any] = {}
    for key, value in pairs:
        # A duplicated key (the data model forbids it, OTLP can carry it) stays visible.
        out[key if key not in out else f"{key} (again #{sum(1 for k in out if k.startswith(key))})"] = value
    return out


def canon_message(msg: Message, strict_order: bool = False) -> dict[str, Any]:
    """A message as a plain tree: only fields holding something (as the protobuf and the OTLP/JSON
    serialisers both omit zero values and empty messages), ids as hex with all-zero ids as absent,
    attributes and kvlists as maps, AnyValues tagged with their type."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        name = fd.name
        if fd.message_type is not None and fd.message_type.name == "KeyValue" and fd.is_repeated:
            out[name] = ("map", _kvs(value, strict_order))
        elif fd.message_type is not None and fd.message_type.name == "AnyValue":
            if value.WhichOneof("value") is not None:  # a log body that is an empty value is no body
                out[name] = _anyvalue(value, strict_order)
        elif fd.is_repeated and fd.message_type is not None:
            out[name] = [canon_message(m, strict_order) for m in value]
        elif fd.is_repeated:
            out[name] = list(value)
        elif fd.message_type is not None:
            sub = canon_message(value, strict_order)
            if sub:
                out[name] = sub
        elif isinstance(value, bytes):
            if name in _ID_FIELDS or name.endswith("_id"):
                if any(value):
                    out[name] = value.hex()
            else:
                out[name] = value.hex()
        else:
            out[name] = value
    return out


def canon_output(signal: str, requests: Iterable[Any], strict_order: bool = False) -> list[dict[str, Any]]:
    """Every resource block of `requests`, in arrival order."""
    key = _RESOURCE_LISTS[signal]
    return [canon_message(block, strict_order) for req in requests for block in getattr(req, key)]


def count_items(signal: str, requests: Iterable[Any]) -> int:
    n = 0
    for block in canon_output(signal, requests):
        for scope in block.get(f"scope_{_RESOURCE_LISTS[signal].removeprefix('resource_')}", []):
            if signal == "traces":
                n += len(scope.get("spans", []))
            elif signal == "logs":
                n += len(scope.get("log_records", []))
            else:
                n += len(scope.get("metrics", []))
    return n


# ---------------------------------------------------------------- diff


@dataclass(frozen=True)
class Difference:
    path: str
    collector: Any
    gateway: Any

    def __str__(self) -> str:
        return f"{self.path}: collector={_show(self.collector)} gateway={_show(self.gateway)}"


_MISSING = ("<missing>",)


def _show(v: Any, limit: int = 160) -> str:
    if v is _MISSING:
        return "<missing>"
    if isinstance(v, dict):
        return f"<{' '.join(['item', _label(v)]).strip()} with {', '.join(list(v)[:6])}{', ...' if len(v) > 6 else ''}>"
    if isinstance(v, tuple) and v and v[0] in ("str", "int", "double", "bool", "bytes", "empty", "array", "map"):
        text = v[0] if len(v) == 1 else f"{v[0]} {v[1]!r}"
    else:
        text = repr(v)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _label(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("name", "key"):
            if isinstance(item.get(key), str):
                name = item[key]
                return f"({name[:40]!r})"
        body = item.get("body")
        if isinstance(body, tuple) and len(body) > 1:
            return f"(body {str(body[1])[:30]!r})"
    return ""


def diff(a: Any, b: Any, path: str = "", strict_order: bool = False) -> list[Difference]:
    """Every difference between two canonical trees, with a readable path to it: `.field` into a
    message, `[i]` into a list (with the item's name), `["key"]` into a map."""
    if isinstance(a, dict) and isinstance(b, dict):
        return _diff_keys(a, b, path, strict_order, lambda k: f"{path}.{k}" if path else str(k))
    if isinstance(a, list) and isinstance(b, list):
        out: list[Difference] = []
        for i, j in _align(a, b):
            if i is None:
                assert j is not None
                out.append(Difference(f"{path}[+{j}]{_label(b[j])}", _MISSING, b[j]))
            elif j is None:
                out.append(Difference(f"{path}[{i}]{_label(a[i])}", a[i], _MISSING))
            else:
                out.extend(diff(a[i], b[j], f"{path}[{i}]{_label(a[i])}", strict_order))
        return out
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 2 and a[0] == b[0]:
        if a[0] == "map":
            return _diff_keys(a[1], b[1], path, strict_order, lambda k: f"{path}[{k!r}]")
        if a[0] == "array":
            return diff(a[1], b[1], path, strict_order)
    if a != b or type(a) is not type(b):
        return [Difference(path, a, b)]
    return []


def _identity(item: Any) -> str:
    """What makes a list item the same item on both sides: a span's, event's or link's ids and
    name, a metric's or scope's name, a resource's attributes; else the whole value."""
    if isinstance(item, dict):
        for keys in (("span_id", "name"), ("name", "time_unix_nano"), ("resource",), ("scope",)):
            if any(k in item for k in keys):
                return repr([item.get(k) for k in keys])
    return repr(item)


def _align(a: list[Any], b: list[Any]) -> list[tuple[int | None, int | None]]:
    """Pairs of indexes (None: no counterpart) matching the items of two lists in order, so that an
    item dropped on one side shows as one missing item, not as every later item differing."""
    matcher = difflib.SequenceMatcher(a=[_identity(x) for x in a], b=[_identity(x) for x in b], autojunk=False)
    pairs: list[tuple[int | None, int | None]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        n = min(i2 - i1, j2 - j1) if tag in ("equal", "replace") else 0
        pairs.extend(zip(range(i1, i1 + n), range(j1, j1 + n), strict=True))
        pairs.extend((i, None) for i in range(i1 + n, i2))
        pairs.extend((None, j) for j in range(j1 + n, j2))
    return pairs


def _diff_keys(a: dict[str, Any], b: dict[str, Any], path: str, strict_order: bool,
               sub: Callable[[str], str]) -> list[Difference]:
    out: list[Difference] = []
    for key in dict.fromkeys([*a, *b]):
        if key not in a:
            out.append(Difference(sub(key), _MISSING, b[key]))
        elif key not in b:
            out.append(Difference(sub(key), a[key], _MISSING))
        else:
            out.extend(diff(a[key], b[key], sub(key), strict_order))
    if strict_order and not out and list(a) != list(b):
        out.append(Difference(f"{path} (key order)", list(a), list(b)))
    return out


# ---------------------------------------------------------------- verdicts

AGREE, DIFFER, COLLECTOR_REFUSED, GATEWAY_REFUSED, BOTH_REFUSED = (
    "agree", "differ", "collector refused", "gateway refused", "both refused")


@dataclass
class Verdict:
    case: Case
    status: str
    differences: list[Difference] = field(default_factory=list)
    detail: str = ""
    order_only: bool = False

    @property
    def ok(self) -> bool:
        return self.status == AGREE

    def report(self, limit: int = 25) -> str:
        lines = [f"case {self.case.id} ({self.case.signal}, {self.case.processor}): {self.status}"
                 + (" (map key order differs)" if self.order_only else "")]
        for stmt in self.case.statements():
            lines.append(f"  | {stmt}")
        if self.detail:
            lines.extend(f"  {ln}" for ln in self.detail.splitlines())
        for d in self.differences[:limit]:
            lines.append(f"  {d}")
        if len(self.differences) > limit:
            lines.append(f"  ... {len(self.differences) - limit} more differences")
        return "\n".join(lines)


def compare(case: Case, col: SideResult, gw: SideResult, strict_order: bool = False) -> Verdict:
    if col.refused is not None and gw.refused is not None:
        return Verdict(case, BOTH_REFUSED, detail=f"collector: {col.refused}\ngateway: {gw.refused}")
    if col.refused is not None:
        return Verdict(case, COLLECTOR_REFUSED, detail=col.refused)
    if gw.refused is not None:
        return Verdict(case, GATEWAY_REFUSED, detail=gw.refused)
    diffs: list[Difference] = []
    if col.unreadable:
        return Verdict(case, DIFFER, detail="the Collector's output could not be read:\n" + "\n".join(col.unreadable))
    for i, (ca, ga) in enumerate(zip(col.answers, gw.answers, strict=False)):
        if ca.ok != ga.ok:
            diffs.append(Difference(f"answer to request {i}", str(ca), str(ga)))
    if len(col.answers) != len(gw.answers):
        diffs.append(Difference("answers", len(col.answers), len(gw.answers)))
    a = canon_output(case.signal, col.output, strict_order)
    b = canon_output(case.signal, gw.output, strict_order)
    diffs.extend(diff(a, b, "resources", strict_order))
    order_only = False
    if not diffs and not strict_order:
        order_only = bool(diff(canon_output(case.signal, col.output, True),
                               canon_output(case.signal, gw.output, True), "resources", True))
    return Verdict(case, DIFFER if diffs else AGREE, diffs, order_only=order_only)


def input_canon(signal: str) -> list[dict[str, Any]]:
    return canon_output(signal, inputs.requests(signal))


def collector_summary(case: Case, col: SideResult) -> tuple[str, list[str]]:
    """('ok' | 'NO EFFECT' | 'refused config' | ..., lines): what the Collector did with a case's input."""
    if col.refused is not None:
        return "REFUSED CONFIG", col.refused.splitlines()
    lines = [f"answers: {', '.join(str(a) for a in col.answers)}", *col.unreadable]
    changes = diff(input_canon(case.signal), canon_output(case.signal, col.output), "resources")
    n_in = count_items(case.signal, inputs.requests(case.signal))
    n_out = count_items(case.signal, col.output)
    lines.append(f"items in {n_in}, out {n_out}; {len(changes)} differences from the input")
    lines.extend(f"  {str(d).replace('collector=', 'input=').replace(' gateway=', ' output=')}"
                 for d in changes[:8])
    refused = col.request_refused
    if col.unreadable:
        status = "UNREADABLE OUTPUT"
    elif refused != case.refused:
        status = f"REFUSED={refused} BUT CORPUS SAYS refused={case.refused}"
    elif case.refused:
        status = "ok (requests refused)" if not col.output else "REFUSED BUT EXPORTED"
    elif not changes and not case.noop:
        status = "NO EFFECT"
    elif changes and case.noop:
        status = "NOOP CHANGED"
    else:
        status = "ok"
    return status, lines

