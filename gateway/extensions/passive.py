"""The lifecycle of an extension that holds nothing to start or stop (fixed credentials, header rules)."""

from __future__ import annotations


class Passive:
    async def start(self) -> None:
        pass

    def ready(self) -> None:
        pass

    def not_ready(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
