"""`python -m tests.ottl.diffreport [--only ID,ID] [--collector-only] [--strict-order] [--verbose]`

Runs the OTTL differential corpus (tests/ottl/corpus.yaml) through the reference Collector and the
gateway and prints one line per case: agree / differ / collector refused / gateway refused / both
refused, then the differences of every case that does not agree (case, statements, the path to each
differing field with the Collector's value and the gateway's).

--collector-only runs only the Collector and prints what it did with each case: whether it accepted
the config, its answers to the requests, how many items came out and the first differences from the
input. A case whose output equals its input is flagged NO EFFECT unless the corpus marks it
`noop: true`; a case whose answers disagree with its `refused:` flag is flagged too.

--invalid also checks the corpus's `invalid:` configs: the Collector's `validate` must refuse each
with its recorded text, and the gateway's `validate` must refuse it naming the function/path.

Exit status: 0 when every selected case agrees (or, with --collector-only, is accepted and does what
the corpus says), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from tests import peers
from tests.ottl import differential as d


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.ottl.diffreport", description=__doc__.split("\n\n")[1])
    p.add_argument("--only", default="", help="comma-separated case ids (default: every case)")
    p.add_argument("--collector-only", action="store_true", help="run only the Collector; summarise each case")
    p.add_argument("--strict-order", action="store_true", help="also compare the key order of maps")
    p.add_argument("--invalid", action="store_true", help="check the invalid configs too")
    p.add_argument("--verbose", "-v", action="store_true", help="print the details of agreeing cases too")
    p.add_argument("--corpus", type=Path, default=d.CORPUS)
    return p.parse_args(argv)


def _collector_only(cases: list[d.Case], workdir: Path, verbose: bool) -> int:
    results = d.run_collector(cases, workdir)
    bad = 0
    width = max(len(c.id) for c in cases)
    details: list[str] = []
    for case in cases:
        status, lines = d.collector_summary(case, results[case.id])
        flagged = not status.startswith("ok")
        bad += flagged
        print(f"{case.id:<{width}}  {case.signal:<7} {case.processor:<9} {status}")
        if flagged or verbose:
            details.append("\n".join([f"== {case.id}: {status}", *(f"  | {s}" for s in case.statements()),
                                      *(f"  {ln}" for ln in lines)]))
    if details:
        print()
        print("\n\n".join(details))
    print(f"\n{len(cases)} cases, {bad} flagged")
    return 1 if bad else 0


def _both(cases: list[d.Case], workdir: Path, strict_order: bool, verbose: bool) -> int:
    t0 = time.monotonic()
    col = d.run_collector(cases, workdir / "c")
    t1 = time.monotonic()
    gw = d.run_gateway(cases, workdir / "g")
    t2 = time.monotonic()
    verdicts = [d.compare(c, col[c.id], gw[c.id], strict_order) for c in cases]
    width = max(len(c.id) for c in cases)
    for v in verdicts:
        extra = " (map key order differs)" if v.order_only else ""
        first = f"  {v.differences[0]}" if v.differences else ""
        print(f"{v.case.id:<{width}}  {v.case.signal:<7} {v.case.processor:<9} {v.status}{extra}{first[:150]}")
    shown = [v for v in verdicts if not v.ok or verbose]
    if shown:
        print()
        print("\n\n".join(v.report() for v in shown))
    counts = Counter(v.status for v in verdicts)
    print(f"\n{len(verdicts)} cases: " + ", ".join(f"{n} {s}" for s, n in counts.most_common())
          + f" (collector {t1 - t0:.1f}s, gateway {t2 - t1:.1f}s)")
    return 0 if all(v.ok for v in verdicts) else 1


def _invalid(invalid: list[d.InvalidCase], workdir: Path) -> int:
    bad = 0
    width = max(len(c.id) for c in invalid)
    for case in invalid:
        path = workdir / f"invalid-{case.id}.yaml"
        path.write_text(d.invalid_config(case, 4317, workdir))
        crc, ctext = d.collector_validate(path)
        grc, gtext = d.gateway_validate(path)
        col_ok = crc != 0 and case.error in ctext
        if case.gateway_accepts:
            gw_ok = grc == 0
            gw_word = "accepts on purpose" if gw_ok else "REFUSES (it should accept)"
        else:
            gw_ok = grc != 0 and d.mentions(gtext, case.names, case, path)
            gw_word = "refuses, naming" if gw_ok else "DOES NOT REFUSE NAMING"
        bad += not (col_ok and gw_ok)
        print(f"{case.id:<{width}}  collector {'refuses as recorded' if col_ok else 'DIFFERS FROM CORPUS'};"
              f" gateway {gw_word} {case.names!r}")
        if not col_ok:
            print(f"    collector (rc {crc}): {ctext[-600:]}")
        if not gw_ok:
            print(f"    gateway (rc {grc}): {gtext[-600:]}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    cases, invalid = d.load_corpus(args.corpus)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if only:
        unknown = set(only) - {c.id for c in cases} - {c.id for c in invalid}
        if unknown:
            print(f"no such case: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        cases = [c for c in cases if c.id in only]
        invalid = [c for c in invalid if c.id in only]
    if peers.peer_path("otelcol-ref") is None:
        print(peers.skip_reason("otelcol-ref"), file=sys.stderr)
        return 2
    rc = 0
    with d.scratch() as workdir:
        if cases:
            rc |= (_collector_only(cases, workdir, args.verbose) if args.collector_only
                   else _both(cases, workdir, args.strict_order, args.verbose))
        if args.invalid and invalid:
            print()
            rc |= _invalid(invalid, workdir)
    return rc


if __name__ == "__main__":
    sys.exit(main())
