"""The README's OTTL section lists exactly the functions the engine has and the Collector's it lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pipelines.ottl.compile  # noqa: F401  (registers the functions)
from pipelines.ottl.functions.registry import FUNCTIONS
from pipelines.ottl.functions.unsupported import COLLECTOR_FUNCTIONS, unsupported

README = Path(__file__).resolve().parents[2] / "README.md"


def _listed(section: str, start: str, end: str) -> set[str]:
    part = section.split(start, 1)[1].split(end, 1)[0]
    return set(re.findall(r"`([A-Za-z0-9_]+)`", part))


def test_readme_lists_supported_and_unsupported_functions() -> None:
    section = README.read_text().split("### OTTL", 1)[1].split("\n### ", 1)[0]
    supported = set(FUNCTIONS) & COLLECTOR_FUNCTIONS
    m = re.search(r"Supported \((\d+) of (\d+)\):", section)
    assert m is not None, "the README's OTTL section gives the coverage as 'Supported (N of M):'"
    assert (int(m.group(1)), int(m.group(2))) == (len(supported), len(COLLECTOR_FUNCTIONS))
    assert _listed(section, m.group(0), "Not supported yet") == supported
    assert _listed(section, 'yet by this gateway"):', "Why:") == \
        set(unsupported(set(FUNCTIONS)))
