"""`python -m bench run [--scenarios a,b,...] [--spans 10,50,512] [--duration S] [--workers 1,2] [--smoke]`
`python -m bench rate [--connections 1000] [--rate 1] [--spans 10] [--duration 30] [--scenarios a] [--smoke]`

Both write into the same RESULTS.md / results.json (default: bench/), each replacing only its own
section; see bench/README.md."""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.loadgen import LoadSpec
from bench.payload import PayloadSpec
from bench.profile import per_request
from bench.profile import summary as profile_summary
from bench.rateload import RateSpec
from bench.runner import OWN_TRACES_ENV, TAP_ENV, RateResult, RunResult, collector_binary, run_one, run_rate
from bench.scenarios import SCENARIOS, Target


def _common(p: argparse.ArgumentParser, scenarios: str) -> None:
    p.add_argument("--scenarios", default=scenarios, help=f"comma-separated keys (default: {scenarios})")
    p.add_argument("--targets", default="gateway,collector")
    p.add_argument("--workers", default="1", help="gateway worker counts to run, e.g. 1,2")
    p.add_argument("--attributes", type=int, default=8, help="attributes per span")
    p.add_argument("--attribute-size", type=int, default=24, help="bytes per attribute value")
    p.add_argument("--out", type=Path, default=None, help="where RESULTS.md goes (default: bench/)")
    p.add_argument("--keep", action="store_true", help="keep each run's workdir (configs, logs)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="gateway vs otelcol-ref benchmark")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="closed loop: spans per CPU-second by scenario and request size")
    _common(r, ",".join(SCENARIOS))
    r.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    r.add_argument("--spans", default=None,
                   help="spans per request, a comma list: one run per size (default 512, the OpenTelemetry "
                        "SDKs' default export batch; 50 with --smoke)")
    r.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    r.add_argument("--connections", type=int, default=8, help="gRPC channels / HTTP connections")
    r.add_argument("--smoke", action="store_true", help="a few seconds, small load, output to a temp dir")
    r.add_argument("--own-traces", type=float, default=None, metavar="RATIO",
                   help="the gateway also traces itself at RATIO (service::telemetry::traces, to a sink of its "
                        "own): what its own telemetry costs, beside a run without")
    r.add_argument("--tap", default=None, metavar="COMPONENT",
                   help="keep a tap open on COMPONENT's inputs (e.g. exporter:otlp) at its default rate during "
                        "the gateway's runs: what an open tap costs, beside a run without")
    r.add_argument("--profile", type=Path, default=None,
                   help="record the gateway with py-spy into DIR/<scenario>.txt and print the hot spots")
    q = sub.add_parser("rate", help="open loop: many connections at a fixed rate; the target's CPU share")
    _common(q, "a")
    q.add_argument("--connections", type=int, default=1000, help="client connections (one TCP connection each)")
    q.add_argument("--rate", type=float, default=1.0, help="requests per second per connection")
    q.add_argument("--spans", type=int, default=10, help="spans per request")
    q.add_argument("--duration", type=float, default=30.0, help="seconds of the measurement window")
    q.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the window opens")
    q.add_argument("--jitter", type=float, default=0.1, help="each send moves by up to this fraction of the period")
    q.add_argument("--profile", type=Path, default=None,
                   help="record the gateway with py-spy into DIR/rate-<scenario>.txt; print the CPU a request "
                        "costs by part")
    q.add_argument("--senders", type=int, default=0, help="sender processes (0: one per 250 connections, at most 4)")
    q.add_argument("--smoke", action="store_true",
                   help="20 connections, 2 s, output to a temp dir (a check that it works, not a figure)")
    return p


def _setup(args: argparse.Namespace) -> tuple[list[str], list[Target], list[int], Path] | None:
    keys = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return None
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    targets: list[Target] = [t for t in ("gateway", "collector") if t in args.targets.split(",")]
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else Path(__file__).parent)
    if "collector" in targets and collector_binary() is None:
        print("otelcol-ref is not built: the Collector side is skipped (bash .ci/peers.sh builds it)",
              file=sys.stderr)
    return keys, targets, workers, out


def _command(argv: list[str] | None) -> str:
    return "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])


def raise_nofile(needed: int) -> str:
    """Raise this process's soft RLIMIT_NOFILE (which the target and the senders inherit) to the hard
    limit; what was done, for the log."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as exc:
            return f"open files: could not raise the soft limit from {soft} ({exc})"
        soft = want
    note = f"open files: soft limit {soft} (hard {'unlimited' if hard == resource.RLIM_INFINITY else hard})"
    if soft != resource.RLIM_INFINITY and soft < needed:
        note += f", below the {needed} this run needs: connections will fail"
    return note


def _payload(key: str, spans: int, args: argparse.Namespace) -> PayloadSpec:
    """What a scenario's requests hold: one span per trace, or (tail sampling) traces of 5-50 spans."""
    return PayloadSpec(spans, args.attributes, args.attribute_size, pool=16 if args.smoke else 64,
                       trace_spans=(5, 50) if SCENARIOS[key].decision_wait else None)


def main_run(args: argparse.Namespace, argv: list[str] | None) -> int:
    setup = _setup(args)
    if setup is None:
        return 2
    keys, targets, workers, out = setup
    if args.spans is None:
        args.spans = "50" if args.smoke else "512"
    if args.own_traces is not None:
        os.environ[OWN_TRACES_ENV] = str(args.own_traces)
    if args.tap is not None:
        os.environ[TAP_ENV] = args.tap
    sizes = [int(s) for s in args.spans.split(",") if s.strip()]
    if args.smoke:
        args.duration = min(args.duration, 2.0)
        args.concurrency, args.connections = 8, 4
    results: list[RunResult] = []
    for key in keys:
        for spans in sizes:
            payload = _payload(key, spans, args)
            load = LoadSpec("", "grpc", args.concurrency, args.connections, args.duration, payload)
            for target in targets:
                for n in workers if target == "gateway" else [1]:
                    prof = None
                    if args.profile is not None and target == "gateway":
                        args.profile.mkdir(parents=True, exist_ok=True)
                        prof = args.profile / f"{key}-{spans}-x{n}.txt"
                    r = run_one(SCENARIOS[key], target, load, n, keep=args.keep, profile=prof)
                    results.append(r)
                    if prof is not None and prof.exists():
                        print(profile_summary(prof), file=sys.stderr)
                        print(per_request(prof, r.cpu_seconds, r.accepted // max(1, spans)), file=sys.stderr)
                    print(f"{key} {spans} spans {target} x{n}: {r.status} {r.reason} accepted={r.accepted} "
                          f"delivered={r.delivered} dropped={r.dropped} lost={r.lost} cpu={r.cpu_seconds:.2f}s "
                          f"spans/cpu-s={r.spans_per_cpu_s:,.0f} p99={r.p99_ms:.1f}ms "
                          f"rss={r.steady_rss_process / 2**20:.0f}/{r.peak_rss_process / 2**20:.0f}MiB",
                          file=sys.stderr, flush=True)
    desc = (f"{', '.join(map(str, sizes))} spans/request, {args.attributes} attributes x {args.attribute_size} B "
            f"per span, {args.concurrency} requests in flight over {args.connections} connections, "
            f"{args.duration:g} s per run")
    path = report.write_grid(results, out, _command(argv), desc)
    print(f"wrote {path}")
    bad = [r for r in results if r.status == "failed" or (r.status == "ok" and r.lost != 0)]
    return 1 if bad else 0


def main_rate(args: argparse.Namespace, argv: list[str] | None) -> int:
    setup = _setup(args)
    if setup is None:
        return 2
    keys, targets, workers, out = setup
    if args.smoke:
        args.connections, args.duration, args.warmup = min(args.connections, 20), min(args.duration, 2.0), 0.5
    if args.connections < 1 or args.rate <= 0 or args.duration <= 0:
        print("--connections, --rate and --duration must be positive", file=sys.stderr)
        return 2
    # The target holds one descriptor per connection, and its children inherit the limit.
    print(raise_nofile(args.connections + 1024), file=sys.stderr)
    results: list[RateResult] = []
    for key in keys:
        payload = _payload(key, args.spans, args)
        spec = RateSpec("", args.connections, args.rate, args.duration, args.warmup, args.jitter, args.senders,
                        payload)
        for target in targets:
            for n in workers if target == "gateway" else [1]:
                prof = None
                if args.profile is not None and target == "gateway":
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = args.profile / f"rate-{key}-x{n}.txt"
                r = run_rate(SCENARIOS[key], target, spec, n, keep=args.keep, profile=prof)
                results.append(r)
                if prof is not None and prof.exists():
                    # The profile spans the whole run (warm-up included); the CPU is the window's.
                    print(per_request(prof, r.cpu_share * args.duration, int(r.achieved_per_s * args.duration)),
                          file=sys.stderr)
                print(f"{key} {target} x{n}: {r.status} {r.reason} connected={r.connected} "
                      f"established={r.established} offered={r.offered_per_s:,.0f}/s "
                      f"achieved={r.achieved_per_s:,.0f}/s lag_p99={r.lag_p99_ms:.1f}ms sent={r.sent} "
                      f"acked={r.acked} delivered={r.delivered} lost={r.lost} "
                      f"cpu={100 * r.cpu_share:.1f}% (max {100 * r.cpu_share_max:.1f}%) "
                      f"rss={r.steady_rss_process / 2**20:.0f}/{r.peak_rss_process / 2**20:.0f}MiB "
                      f"generator={100 * r.generator_share:.0f}%", file=sys.stderr, flush=True)
    senders = len(RateSpec(connections=args.connections, senders=args.senders).shares())
    desc = (f"{args.connections:,} client connections, each one request of {args.spans} spans every "
            f"{1 / args.rate:g} s ({args.connections * args.rate:,.0f} requests/s, "
            f"{args.connections * args.rate * args.spans:,.0f} spans/s offered), random phase and "
            f"±{100 * args.jitter:g}% jitter per send, {senders} sender process{'es' if senders > 1 else ''}; "
            f"{args.attributes} attributes x {args.attribute_size} B per span; "
            f"CPU over {args.duration:g} s after {args.warmup:g} s of warm-up")
    path = report.write_rate(results, out, _command(argv), desc)
    print(f"wrote {path}")
    bad = [r for r in results if r.status == "failed" or (r.status == "ok" and (r.lost != 0 or r.failed))]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return main_run(args, argv) if args.command == "run" else main_rate(args, argv)


if __name__ == "__main__":
    sys.exit(main())
