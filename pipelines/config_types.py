"""Type markers that config dataclasses use and the config decoder understands."""

from __future__ import annotations

from typing import Annotated

# Seconds, written in config as a Go duration ("200ms", "5s", "1m30s") like the Collector's.
Duration = Annotated[float, "duration"]
