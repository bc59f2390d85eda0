"""Functions the Collector's OTTL has at the release set the peers pin (contrib v0.161.0) that this
gateway does not implement yet: `validate` names them as such instead of calling them unknown."""

from __future__ import annotations

UNSUPPORTED: frozenset[str] = frozenset()
