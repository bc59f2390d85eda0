"""OTTL converters: see registry."""

from __future__ import annotations
