"""Reads py-spy's collapsed stacks (`--format raw`) into the few lines a reader needs: where the
samples land (self) and which frames hold them (inclusive)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def _frame(f: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"; drop line numbers so a function is one row.
    name, _, where = f.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def summary(path: Path, top: int = 25) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples", "self %   function"]
    lines += [f"{100 * c / total:6.1f}   {f}" for f, c in self_c.most_common(top)]
    lines += ["", "incl %   function"]
    lines += [f"{100 * c / total:6.1f}   {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
