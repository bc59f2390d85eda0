"""filterset `regexp` options: `cacheenabled` remembers each string's match result (the same answers,
the patterns run once per distinct string), bounded by `cachemaxnumentries` (least recently used out)."""

from __future__ import annotations

from pipelines.processors.matching import MatchProperties, RegexpOptions, RegexpSet, SpanMatcher


def _names_filter(regexp: RegexpOptions | None) -> RegexpSet:
    matcher = SpanMatcher(MatchProperties("regexp", regexp=regexp, span_names=("^GET ", "db$")))
    assert isinstance(matcher.names, RegexpSet)
    return matcher.names


def test_without_cacheenabled_nothing_is_remembered() -> None:
    f = _names_filter(None)
    assert [f(s) for s in ("GET /a", "POST /b", "query db")] == [True, False, True]
    assert f.cache is None
    assert _names_filter(RegexpOptions(cacheenabled=False, cachemaxnumentries=5)).cache is None


def test_cacheenabled_remembers_results_within_cachemaxnumentries() -> None:
    f = _names_filter(RegexpOptions(cacheenabled=True, cachemaxnumentries=2))
    assert [f(s) for s in ("GET /a", "POST /b", "GET /a", "query db")] == [True, False, True, True]
    assert f.cache is not None
    # "GET /a" was used again after "POST /b", so "POST /b" is the one the bound pushed out.
    assert list(f.cache) == ["GET /a", "query db"]
    assert f.cache["GET /a"] is True and f.cache["query db"] is True
    unbounded = _names_filter(RegexpOptions(cacheenabled=True))
    for i in range(50):
        unbounded(f"GET /{i}")
    assert unbounded.cache is not None and len(unbounded.cache) == 50


def test_a_string_seen_before_is_answered_from_the_cache() -> None:
    f = _names_filter(RegexpOptions(cacheenabled=True))
    assert f("GET /x") is True
    f.patterns = []  # no pattern left: only the remembered result can still say True
    assert f("GET /x") is True
    assert f("GET /y") is False
