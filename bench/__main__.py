"""`python -m bench run [--scenarios a,b,...] [--duration S] [--workers 1,2] [--smoke] [--out DIR]`"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.loadgen import LoadSpec
from bench.payload import PayloadSpec
from bench.profile import summary as profile_summary
from bench.runner import RunResult, collector_binary, run_one
from bench.scenarios import SCENARIOS, Target


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="gateway vs otelcol-ref benchmark")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run scenarios and write RESULTS.md and results.png")
    r.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated keys (default: all)")
    r.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    r.add_argument("--workers", default="1", help="gateway worker counts to run, e.g. 1,2")
    r.add_argument("--targets", default="gateway,collector")
    r.add_argument("--spans", type=int, default=512,
                   help="spans per request (512: the OpenTelemetry SDKs' default export batch)")
    r.add_argument("--attributes", type=int, default=8, help="attributes per span")
    r.add_argument("--attribute-size", type=int, default=24, help="bytes per attribute value")
    r.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    r.add_argument("--connections", type=int, default=8, help="gRPC channels / HTTP connections")
    r.add_argument("--smoke", action="store_true", help="a few seconds, small load, output to a temp dir")
    r.add_argument("--out", type=Path, default=None, help="where RESULTS.md goes (default: bench/)")
    r.add_argument("--profile", type=Path, default=None,
                   help="record the gateway with py-spy into DIR/<scenario>.txt and print the hot spots")
    r.add_argument("--keep", action="store_true", help="keep each run's workdir (configs, logs)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    keys = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if args.smoke:
        args.duration = min(args.duration, 2.0)
        args.concurrency, args.connections, args.spans = 8, 4, 50
    payload = PayloadSpec(args.spans, args.attributes, args.attribute_size, pool=16 if args.smoke else 64)
    load = LoadSpec("", "grpc", args.concurrency, args.connections, args.duration, payload)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    targets: list[Target] = [t for t in ("gateway", "collector") if t in args.targets.split(",")]
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else Path(__file__).parent)
    if "collector" in targets and collector_binary() is None:
        print("otelcol-ref is not built: the Collector side is skipped (bash .ci/peers.sh builds it)",
              file=sys.stderr)
    results: list[RunResult] = []
    for key in keys:
        for target in targets:
            for n in workers if target == "gateway" else [1]:
                prof = None
                if args.profile is not None and target == "gateway":
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = args.profile / f"{key}-x{n}.txt"
                r = run_one(SCENARIOS[key], target, load, n, keep=args.keep, profile=prof)
                results.append(r)
                if prof is not None and prof.exists():
                    print(profile_summary(prof), file=sys.stderr)
                print(f"{key} {target} x{n}: {r.status} {r.reason} accepted={r.accepted} delivered={r.delivered} "
                      f"dropped={r.dropped} lost={r.lost} cpu={r.cpu_seconds:.2f}s "
                      f"spans/cpu-s={r.spans_per_cpu_s:,.0f} p99={r.p99_ms:.1f}ms "
                      f"rss={r.steady_rss_process / 2**20:.0f}/{r.peak_rss_process / 2**20:.0f}MiB",
                      file=sys.stderr, flush=True)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    desc = (f"{args.spans} spans/request, {args.attributes} attributes x {args.attribute_size} B per span, "
            f"{args.concurrency} requests in flight over {args.connections} connections, {args.duration:g} s per run")
    path = report.write(results, out, command, desc)
    print(f"wrote {path}")
    bad = [r for r in results if r.status == "failed" or (r.status == "ok" and r.lost != 0)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
