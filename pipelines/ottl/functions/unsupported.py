"""Functions the Collector's OTTL has at the release set the peers pin (contrib v0.161.0) that this
gateway does not implement yet: `validate` names them as such instead of calling them unknown.

`COLLECTOR_FUNCTIONS` is the whole list (ottlfuncs' editors and converters as its README lists them,
the lambda converters behind `ottl.functions.enableLambda` included, plus the transform processor's
metric functions), for coverage reporting; what of it the registry lacks is
`validate`'s "not supported yet" (see `compile._lookup`) and the README's list.
"""

from __future__ import annotations

EDITORS: frozenset[str] = frozenset({
    "append", "delete_index", "delete_key", "delete_matching_keys", "keep_matching_keys", "flatten", "keep_keys",
    "limit", "merge_maps", "replace_all_matches", "replace_all_patterns", "replace_match", "replace_pattern",
    "set", "stringify_all", "truncate_all",
})

CONVERTERS: frozenset[str] = frozenset({
    "All", "Any", "Base64Decode", "Base64Encode", "Bool", "Decode", "Coalesce", "CommunityID", "Concat",
    "ContainsValue", "ConvertCase", "ConvertAttributesToElementsXML", "ConvertTextToElementsXML", "Day", "Double",
    "Duration", "ExtractPatterns", "ExtractGrokPatterns", "Filter", "Find", "FNV", "Format", "FormatTime", "GetXML",
    "HasPrefix", "HasSuffix", "Hex", "Hour", "Hours", "Index", "InsertXML", "Int", "IsBool", "IsDouble", "IsEmpty",
    "IsInCIDR", "IsInt", "IsRootSpan", "IsMap", "IsMatch", "IsList", "IsString", "Keys", "Len", "Log", "IsValidLuhn",
    "MapEach", "MapKeys", "MD5", "Microseconds", "Milliseconds", "Minute", "Minutes", "Month", "Murmur3Hash",
    "Murmur3Hash128", "Nanosecond", "Nanoseconds", "Now", "ParseCSV", "ParseInt", "ParseJSON", "ParseKeyValue",
    "ParseSeverity", "ParseSimplifiedXML", "ParseXML", "ProfileID", "Reduce", "RemoveXML", "Second", "Seconds",
    "SHA1", "SHA256", "SHA512", "SliceToMap", "Sort", "SpanID", "Split", "String", "Substring", "Time",
    "ToCamelCase", "ToKeyValueString", "ToLowerCase", "ToSnakeCase", "ToUpperCase", "TraceID", "Trim", "TrimPrefix",
    "TrimSuffix", "TruncateTime", "Unix", "UnixMicro", "UnixMilli", "UnixNano", "UnixSeconds", "URL", "UserAgent",
    "UUID", "UUIDv7", "Values", "Weekday", "When", "XXH3", "XXH128", "Year",
})

# The transform processor's own functions (metric and datapoint contexts).
TRANSFORM_METRIC_FUNCTIONS: frozenset[str] = frozenset({
    "convert_sum_to_gauge", "convert_gauge_to_sum", "convert_summary_sum_val_to_sum",
    "convert_summary_count_val_to_sum", "extract_sum_metric", "extract_count_metric", "copy_metric", "scale_metric",
    "aggregate_on_attributes", "aggregate_on_attribute_value", "convert_exponential_histogram_to_histogram",
    "extract_percentile_metric", "convert_summary_quantile_val_to_gauge", "merge_histogram_buckets",
})

COLLECTOR_FUNCTIONS: frozenset[str] = EDITORS | CONVERTERS | TRANSFORM_METRIC_FUNCTIONS


def unsupported(registered: set[str] | frozenset[str]) -> list[str]:
    """The Collector's functions not among `registered` (the registry's names), sorted."""
    return sorted(COLLECTOR_FUNCTIONS - registered)
