"""`gateway top` and `gateway tap`: terminal clients of a running gateway's admin endpoint
(`service::admin`, `gateway.admin.server`), over HTTP (or HTTPS).

- `top --admin URL [--header K=V]`: every component's rates in and out, refused and dropped (with reasons),
  its queue's fill as a bar and an exporter's retries (`retrying 3, next in 2.1s: <error>`), refreshed every
  second; rates are the difference of two reads of `/api/v1/stats`.
- `tap COMPONENT [--inputs|--outputs] [--limit N] [--format json|line] [--header K=V]`: the sampled items of
  `/api/v1/tap`, one a line, until `--limit` lines (or Ctrl-C).

Secrets stay off the command line (where `ps` shows them): `OTELGW_ADMIN_TOKEN` in the environment is sent as
`Authorization: Bearer TOKEN`, and `--header-file PATH` holds `Name: value` lines; `--header` wins over both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gateway.transport.fields import has_control

DEFAULT_ADMIN = "http://localhost:55690"
# A bearer token for an admin endpoint behind bearertokenauth or oidc, read from the environment.
TOKEN_ENV = "OTELGW_ADMIN_TOKEN"
_BAR = 20


def _request(admin: str, path: str, headers: dict[str, str]) -> urllib.request.Request:
    return urllib.request.Request(f"{admin.rstrip('/')}{path}", headers=headers)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The admin endpoint never redirects; following one would carry the credentials to wherever it points."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"{msg} (redirects are not followed)", headers, fp)


_OPENER = urllib.request.build_opener(_NoRedirects())


def _open(request: urllib.request.Request, timeout: float | None = None) -> Any:
    return _OPENER.open(request, timeout=timeout)


def _get(admin: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    with _open(_request(admin, path, headers), timeout=5) as resp:
        body: dict[str, Any] = json.load(resp)
        return body


def _headers(pairs: list[str]) -> dict[str, str]:
    """`--header K=V` (repeatable), e.g. `Authorization=Bearer TOKEN` for an admin endpoint behind `auth`."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"--header {pair!r}: want NAME=VALUE")
        out[key.strip()] = value
    return out


def _header_file(path: str) -> dict[str, str]:
    """`--header-file PATH`: a `Name: value` a line; blank lines and `#` comments skipped. A bad line is named
    by its number only: it may hold a secret."""
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"--header-file {path!r}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"--header-file {path!r}: line {number}: want Name: value")
        out[key.strip()] = value.strip()
    return out


def request_headers(pairs: list[str], files: list[str], env: Mapping[str, str]) -> dict[str, str]:
    """The headers sent with each request: `OTELGW_ADMIN_TOKEN`'s Authorization, then the `--header-file`s',
    then `--header`'s, each later one winning for a name."""
    token = env.get(TOKEN_ENV, "").strip()  # a file's trailing CR/LF, read with $(cat file)
    out = {"Authorization": f"Bearer {token}"} if token else {}
    for path in files:
        out.update(_header_file(path))
    out.update(_headers(pairs))
    for name, value in out.items():
        if has_control(name + value):
            # Named, never shown: the value may be a secret.
            raise argparse.ArgumentTypeError(f"header {name!r}: its value has a control character")
    return out


def _bar(size: float, capacity: float) -> str:
    if capacity <= 0:
        return ""
    fill = min(1.0, size / capacity)
    full = round(fill * _BAR)
    return f"[{'#' * full}{'.' * (_BAR - full)}] {size:.0f}/{capacity:.0f}"


def retrying(retry: dict[str, Any] | None) -> str:
    """An exporter's retry state in a few words: `retrying N, next in Xs: <last error>`, or what is left of
    a failure streak; "-" when all is well."""
    if not retry or not (retry.get("waiting") or retry.get("failures")):
        return "-"
    head = f"retrying {retry['waiting']}" if retry.get("waiting") else f"{retry['failures']} failed in a row"
    if retry.get("next_in") is not None:
        head += f", next in {retry['next_in']:.1f}s"
    return f"{head}: {retry['last_error']}" if retry.get("last_error") else head


def _rate(now: dict[str, Any], before: dict[str, Any] | None, field: str, seconds: float) -> str:
    if field not in now:
        return "-"
    if before is None or seconds <= 0:
        return "…"
    return f"{max(0.0, now[field] - before.get(field, 0)) / seconds:.1f}"


def table(now: dict[str, Any], before: dict[str, Any] | None) -> Table:
    """The screen for one read of /api/v1/stats (`now`) after another (`before`)."""
    seconds = now["time"] - before["time"] if before is not None else 0.0
    if "workers" in now:  # the supervisor of `service::workers`: every worker's stats summed
        who = f"{len(now['workers'])} workers ({now.get('answered', 0)} answered), supervisor"
    else:
        who = "one process" if now.get("worker") is None else f"worker {now['worker']}"
    t = Table(title=f"otel gateway: {who} (pid {now.get('pid')})", expand=True)
    for column, width in (("component", 18), ("status", 8), ("in/s", 7), ("out/s", 7), ("refused", 7),
                          ("dropped (reason: total)", 16), ("queue", 12), ("retry", 16)):
        t.add_column(column, min_width=width, no_wrap=column not in ("dropped (reason: total)", "retry"))
    old = before["components"] if before is not None else {}
    for key, c in sorted(now["components"].items(), key=lambda kv: _ORDER.get(kv[1]["kind"], 9)):
        prev = old.get(key)
        dropped = ", ".join(f"{r}: {n:.0f}" for r, n in sorted(c["dropped"].items())) or "-"
        if "dropped_items" in c and not c["dropped"]:
            dropped = f"{c['dropped_items']:.0f}"
        refused = f"{c.get('refused', 0):.0f}" if "refused" in c else "-"
        queue = _bar(c.get("queue_size", 0), c.get("queue_capacity", 0))
        status = c.get("status", "").removeprefix("Status")
        t.add_row(key, status, _rate(c, prev, "in", seconds), _rate(c, prev, "out", seconds), refused, dropped, queue,
                  retrying(c.get("retry")) if c["kind"] == "exporter" else "")
    return t


_ORDER = {"receiver": 0, "pipeline": 1, "processor": 2, "connector": 3, "exporter": 4}


def top(admin: str, interval: float, headers: dict[str, str]) -> int:
    console = Console()
    before: dict[str, Any] | None = None
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                try:
                    now = _get(admin, "/api/v1/stats", headers)
                except (OSError, ValueError) as exc:
                    live.update(f"cannot read {admin}/api/v1/stats: {exc}", refresh=True)
                else:
                    live.update(table(now, before), refresh=True)
                    before = now
                time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def tap(admin: str, component: str, direction: str, limit: int, fmt: str, rate: float | None,
        headers: dict[str, str]) -> int:
    query = {"component": component, "direction": direction, "limit": str(limit), "format": fmt}
    if rate is not None:
        query["rate"] = str(rate)
    written = 0
    try:
        with _open(_request(admin, f"/api/v1/tap?{urllib.parse.urlencode(query)}", headers)) as resp:
            for raw in resp:
                sys.stdout.write(raw.decode(errors="replace"))
                sys.stdout.flush()
                written += 1
                if limit and written >= limit:
                    break
    except urllib.error.HTTPError as exc:
        print(f"tap {component}: {exc.code} {exc.read().decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tap {component}: cannot reach {admin}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


_HEADER_FILE = (f"a file of headers, `Name: value` a line (repeatable): for secrets, which --header shows "
                f"to ps; {TOKEN_ENV} in the environment is sent as Authorization: Bearer TOKEN")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="otel-gateway")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("top", help="live view of every component's rates, drops and queues")
    t.add_argument("--admin", default=DEFAULT_ADMIN, help=f"the admin endpoint's URL ({DEFAULT_ADMIN})")
    t.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (1)")
    t.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                   help="a header sent with each request (repeatable), e.g. Authorization=Bearer TOKEN")
    t.add_argument("--header-file", action="append", default=[], metavar="PATH", help=_HEADER_FILE)
    a = sub.add_parser("tap", help="print sampled items crossing a component")
    a.add_argument("component", help="a component id, or KIND:ID (receiver, processor, connector, exporter, "
                                     "pipeline)")
    a.add_argument("--admin", default=DEFAULT_ADMIN, help=f"the admin endpoint's URL ({DEFAULT_ADMIN})")
    side = a.add_mutually_exclusive_group()
    side.add_argument("--inputs", dest="direction", action="store_const", const="in", default="in")
    side.add_argument("--outputs", dest="direction", action="store_const", const="out")
    a.add_argument("--limit", type=int, default=0, help="stop after N items (0: until Ctrl-C)")
    a.add_argument("--format", choices=["json", "line"], default="json")
    a.add_argument("--rate", type=float, default=None, help="items a second at most (the gateway's default: 10)")
    a.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                   help="a header sent with the request (repeatable), e.g. Authorization=Bearer TOKEN")
    a.add_argument("--header-file", action="append", default=[], metavar="PATH", help=_HEADER_FILE)
    args = p.parse_args(argv)
    try:
        headers = request_headers(args.header, args.header_file, os.environ)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.command == "top":
        return top(args.admin, args.interval, headers)
    return tap(args.admin, args.component, args.direction, args.limit, args.format, args.rate, headers)
