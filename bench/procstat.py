"""CPU-seconds and RSS of a process and all its descendants, read from /proc: the measure that
stays honest when other work shares the machine (wall time does not)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2:].split()


def children(pid: int) -> list[int]:
    return [p for p in descendants(pid) if (f := _stat(p)) is not None and int(f[1]) == pid]


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


@dataclass(frozen=True)
class TreeSample:
    cpu_seconds: float  # user + system of the tree, including reaped children
    rss_bytes: int  # summed over the tree
    max_rss_bytes: int  # the largest single process
    processes: int


def sample(root: int) -> TreeSample:
    cpu = 0.0
    rss = 0
    biggest = 0
    pids = descendants(root)
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat(5); `fields` starts at field 3.
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        cpu += ticks / _TICK
        r = int(fields[21]) * _PAGE
        rss += r
        biggest = max(biggest, r)
    return TreeSample(cpu, rss, biggest, len(pids))


def established(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local end is `port` (IPv4 and IPv6), from
    /proc/net/tcp*: how many client connections a server on that port holds right now."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)  # the header
                for line in f:
                    fields = line.split()
                    # local_address is "ADDR:PORT" in hex; st 01 is ESTABLISHED.
                    if len(fields) > 3 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            continue
    return n
