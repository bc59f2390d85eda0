"""The OTTL differential test: every case of tests/ottl/corpus.yaml through the reference
Collector's `transform`/`filter` processor and through the gateway's, the same input to both, the
outputs compared case by case, span by span (tests/ottl/differential.py does the work; the same
run, as a table, is `python -m tests.ottl.diffreport`).

Both processes are started once for the module, each holding every case as its own pipeline. A
case the gateway does not match fails with the case id, its statements, and each differing field
(path, the Collector's value, the gateway's). The tests of the gateway are xfail (strict) while its
`transform`/`filter` processors are not registered; the tests of the corpus itself (every case
accepted by the Collector and doing something observable, every invalid config refused with the
recorded text) and of the harness (no difference where there is none) run now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import peers
from tests.interop._support import needs
from tests.ottl import differential as d

pytestmark = [pytest.mark.peers]

CASES, INVALID = d.load_corpus()


def _needs(processor: str) -> pytest.MarkDecorator:
    return needs("processors", processor)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> dict[str, d.SideResult]:
    peers.require_peer("otelcol-ref")
    return d.run_collector(CASES, tmp_path_factory.mktemp("ottl-collector"))


@pytest.fixture(scope="module")
def verdicts(collector: dict[str, d.SideResult], tmp_path_factory: pytest.TempPathFactory) -> dict[str, d.Verdict]:
    gateway = d.run_gateway(CASES, tmp_path_factory.mktemp("ottl-gateway"))
    return {c.id: d.compare(c, collector[c.id], gateway[c.id]) for c in CASES}


def test_corpus_is_large_and_well_formed() -> None:
    assert len(CASES) >= 130 and len(INVALID) >= 12
    assert {c.processor for c in CASES} == {"transform", "filter"}
    assert {c.signal for c in CASES} == {"traces", "logs", "metrics"}


def test_collector_accepts_every_case_and_each_does_something(collector: dict[str, d.SideResult]) -> None:
    """The corpus checks itself against the reference: each case validates and starts, answers as
    its `refused:` flag says, and changes its input unless it is a marked no-op."""
    flagged = []
    for case in CASES:
        status, lines = d.collector_summary(case, collector[case.id])
        if not status.startswith("ok"):
            flagged.append("\n".join([f"{case.id}: {status}", *(f"  | {s}" for s in case.statements()),
                                      *(f"  {ln}" for ln in lines[:6])]))
    assert not flagged, f"{len(flagged)} corpus cases are not what they claim:\n" + "\n\n".join(flagged)


@_needs("transform")
@_needs("filter")
def test_gateway_agrees_with_the_collector_on_the_whole_corpus(verdicts: dict[str, d.Verdict]) -> None:
    bad = [v for v in verdicts.values() if not v.ok]
    summary = ", ".join(f"{v.case.id} ({v.status})" for v in bad[:40])
    details = "\n\n".join(v.report(limit=8) for v in bad[:10])
    assert not bad, f"{len(bad)} of {len(verdicts)} cases differ: {summary}\n\n{details}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_needs(c.processor)) for c in CASES])
def test_case(case: d.Case, verdicts: dict[str, d.Verdict]) -> None:
    verdict = verdicts[case.id]
    assert verdict.ok, verdict.report()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in INVALID])
def test_collector_refuses_invalid_config(case: d.InvalidCase, tmp_path: Path) -> None:
    peers.require_peer("otelcol-ref")
    path = tmp_path / "config.yaml"
    path.write_text(d.invalid_config(case, 4317, tmp_path))
    rc, text = d.collector_validate(path)
    assert rc != 0, f"the Collector accepted {case.config}"
    assert case.error in text, f"the Collector's refusal changed; corpus says {case.error!r}, it says:\n{text}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_needs(c.processor)) for c in INVALID])
def test_gateway_refuses_invalid_config(case: d.InvalidCase, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(d.invalid_config(case, 4317, tmp_path))
    rc, text = d.gateway_validate(path)
    if case.gateway_accepts:
        assert rc == 0, f"the gateway refused what it accepts on purpose ({case.gateway_accepts}):\n{text}"
        return
    assert rc != 0, f"`python -m gateway validate` accepted {case.config} (the Collector says: {case.error})"
    assert d.mentions(text, case.names, case, path), \
        f"the gateway's refusal does not name {case.names!r} (the Collector says: {case.error}):\n{text}"


def test_harness_sees_no_difference_where_there_is_none(tmp_path: Path) -> None:
    """The harness itself, on a processor both sides have (`attributes`): every signal, the same
    output from the Collector's file exporter and the gateway's Sink compares equal, and a
    deliberate difference is reported with its path."""
    peers.require_peer("otelcol-ref")
    cases = [
        d.Case("insert", "traces", "attributes", {"actions": [{"key": "added", "value": "v", "action": "insert"}]}),
        d.Case("delete", "traces", "attributes", {"actions": [{"key": "http.method", "action": "delete"}]}),
        d.Case("logs", "logs", "attributes", {"actions": [{"key": "added", "value": 1, "action": "upsert"}]}),
        d.Case("metrics", "metrics", "attributes", {"actions": [{"key": "added", "value": True, "action": "upsert"}]}),
    ]
    collector = d.run_collector(cases, tmp_path / "collector")
    gateway = d.run_gateway(cases, tmp_path / "gateway")
    for case in cases:
        verdict = d.compare(case, collector[case.id], gateway[case.id])
        assert verdict.ok, verdict.report()
    # The Collector's delete moves the map's last entry into the hole; only strict order sees it.
    assert d.compare(cases[1], collector["delete"], gateway["delete"]).order_only
    other = d.compare(cases[0], collector["insert"], gateway["delete"])
    assert other.status == d.DIFFER
    assert any(diff.path.endswith("attributes['added']") for diff in other.differences), other.report()
