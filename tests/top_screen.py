"""`gateway top` in a real terminal: a tmux server of its own, a pane of a fixed size, its screen read back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.harness import REPO


class Screen:
    def __init__(self, session: str) -> None:
        self.session = session
        # A server of its own: another server's default-size would win over -x.
        self.tmux = ["tmux", "-L", session]
        self.text = ""

    def read(self) -> str:
        self.text = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.session], capture_output=True,
                                   text=True).stdout
        return self.text

    def rows(self, key: str) -> list[str]:
        """The lines of the last read naming `key`."""
        return [r for r in self.text.splitlines() if key in r]


@contextmanager
def top(admin: int, width: int = 160, height: int = 40) -> Iterator[Screen]:
    screen = Screen(f"gwtop-{admin}")
    # A COLUMNS inherited from this process would win over the pane's size.
    command = f"env -u COLUMNS -u LINES {sys.executable} -m gateway top --admin http://127.0.0.1:{admin}"
    subprocess.run([*screen.tmux, "new-session", "-d", "-s", screen.session, "-x", str(width), "-y", str(height),
                    "-c", str(REPO), command], check=True)
    try:
        yield screen
    finally:
        subprocess.run([*screen.tmux, "kill-server"], check=False)
