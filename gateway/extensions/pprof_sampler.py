"""A sampling CPU profiler of this Python process, without privileges: a thread wakes `hz` times a second,
reads every thread's stack (`sys._current_frames()`) and that thread's CPU clock, and counts the CPU time
the thread used since the last look against the stack it is in now. A thread that used none (waiting in
epoll, on a lock, in sleep) is not counted, so this is a CPU profile, not a wall-clock one.

The look happens when the sampler gets the GIL: a thread running Python code lets it in at the next switch
interval (5 ms), so a busy stack is seen where it was interrupted. CPU spent in C without the GIL (zlib,
a TLS read) is counted against the Python frame that called it.
"""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType

from pipelines.pprof import Frame, StackKey, Tally

HZ = 100


def thread_cpu_ns(native_id: int) -> int | None:
    """The CPU time thread `native_id` (a Linux TID) has used, or None when it is gone. The clock id is the
    kernel's per-thread CPU clock (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)): built from the TID, not from
    a pthread handle, so a thread that ended between two looks is an error, never a stale handle."""
    try:
        return time.clock_gettime_ns((~native_id << 3) | 6)
    except (OSError, OverflowError):
        return None


def _stack(frame: FrameType | None) -> tuple[Frame, ...]:
    out = []
    while frame is not None:
        code = frame.f_code
        out.append(Frame(code.co_qualname, code.co_filename, code.co_firstlineno, frame.f_lineno or 0))
        frame = frame.f_back
    return tuple(out)


class Sampler:
    """`start()`, then `stop()` for what was counted; one use."""

    def __init__(self, hz: int = HZ) -> None:
        self.period_ns = 1_000_000_000 // hz
        self.samples: dict[StackKey, Tally] = {}
        self.start_ns = 0
        self.duration_ns = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pprof-sampler", daemon=True)
        self._last: dict[int, int] = {}

    def start(self) -> None:
        self.start_ns = time.time_ns()
        self._started = time.monotonic_ns()
        # What each thread has used so far is not this profile's.
        for t in threading.enumerate():
            cpu = thread_cpu_ns(t.native_id) if t.native_id is not None else None
            if cpu is not None:
                self._last[t.native_id or 0] = cpu
        self._thread.start()

    def stop(self) -> dict[StackKey, Tally]:
        """Stop sampling (blocks for up to one period) and return the samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.duration_ns = time.monotonic_ns() - self._started
        return self.samples

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.period_ns / 1e9):
            self._look(me)

    def _look(self, me: int) -> None:
        frames = sys._current_frames()
        threads = {t.ident: t for t in threading.enumerate()}
        for ident, frame in frames.items():
            t = threads.get(ident)
            if ident == me or t is None or t.native_id is None:
                continue  # a thread of C code that never met `threading`: no TID to read its clock by
            cpu = thread_cpu_ns(t.native_id)
            if cpu is None:
                continue
            used = cpu - self._last.get(t.native_id, 0)
            self._last[t.native_id] = cpu
            if used <= 0:
                continue
            tally = self.samples.setdefault(StackKey(t.name, _stack(frame)), Tally())
            tally.count += 1
            tally.cpu_ns += used
        del frames
