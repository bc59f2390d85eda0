"""The zpages extension's HTML: a plain page, a table, and tracez's summary and samples of the gateway's
own spans, as the Collector's (OpenCensus) tracez lays them out, with no external assets."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from urllib.parse import urlencode

from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan

from gateway.own_telemetry.tracez import BUCKET_LABELS, Summary

# tracez's `ztype`: the running spans, a latency bucket's samples (`zsubtype` the bucket), the errors.
RUNNING, LATENCY, ERRORS = "0", "1", "2"
def page(title: str, body: str, worker: str) -> web.Response:
    html = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            "<style>body{font-family:sans-serif} td{padding:2px 8px} tr.shade{background:#eee}"
            " th{text-align:left}</style></head>\n"
            f"<body>\n<h2>{escape(title)}</h2>\n<p><i>{escape(worker)}</i></p>\n{body}\n</body></html>\n")
    return web.Response(text=html, content_type="text/html")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; the cells of `rows` are HTML already (escape text with `escape`)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(f'<tr{" class=shade" if i % 2 == 0 else ""}>' + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                   for i, row in enumerate(rows))
    return f'<table style="border-spacing: 0">\n<tr>{head}</tr>\n{body}\n</table>'


def _link(count: int, name: str, ztype: str, subtype: int = 0) -> str:
    if count == 0:
        return "0"
    query = urlencode({"zspanname": name, "ztype": ztype, "zsubtype": subtype})
    return f'<a href="?{escape(query)}">{count}</a>'


def _when(ns: int | None) -> str:
    if not ns:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns % 1_000_000_000 // 1000:06d}"


def _samples(spans: Iterable[ReadableSpan], now_ns: int) -> str:
    rows = []
    for s in spans:
        end = s.end_time if s.end_time is not None else now_ns
        elapsed = (end - (s.start_time or end)) / 1e9
        ctx = s.context
        ids = (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") if ctx is not None else ("", "")
        status = s.status.status_code.name + (f": {s.status.description}" if s.status.description else "")
        attrs = ", ".join(f"{k}={v!s}" for k, v in (s.attributes or {}).items())
        links = f" ({len(s.links)} link{'s' if len(s.links) != 1 else ''})" if s.links else ""
        rows.append((escape(_when(s.start_time)), f"{elapsed:.6f}", ids[0], ids[1],
                     escape(status if s.end_time is not None else "running"), escape(attrs + links)))
    return table(("When", "Elapsed (s)", "TraceID", "SpanID", "Status", "Attributes"), rows)


def tracez_page(summaries: Mapping[str, Summary], query: Mapping[str, str]) -> str:
    """The summary of every span name, then the samples the query asks for (`zspanname`, `ztype`,
    `zsubtype`, as OpenCensus' tracez links them)."""
    rows = []
    for name, s in summaries.items():
        rows.append((escape(name), _link(len(s.running), name, RUNNING),
                     *(_link(n, name, LATENCY, i) for i, n in enumerate(s.latency)),
                     _link(s.errors, name, ERRORS)))
    out = [table(("Span Name", "Running", *BUCKET_LABELS, "Errors"), rows)]
    if not summaries:
        out.append("<p>No spans yet: a span is made per received request and per export call "
                   "(as the sampler keeps them).</p>")
    name = query.get("zspanname", "")
    chosen = summaries.get(name)
    if chosen is not None:
        ztype = query.get("ztype", LATENCY)
        spans: list[ReadableSpan]
        if ztype == RUNNING:
            what, spans = "running", list(chosen.running.values())
        elif ztype == ERRORS:
            what, spans = "errors", list(chosen.error_samples)
        else:
            sub = query.get("zsubtype", "0")
            i = int(sub) if sub.isdigit() and int(sub) < len(BUCKET_LABELS) else 0
            what, spans = f"latency {BUCKET_LABELS[i]}", list(chosen.latency_samples[i])
        out.append(f"<h3>{escape(name)}: {escape(what)}</h3>" + _samples(spans, time.time_ns()))
    return "\n".join(out)
