"""The benchmark: gateway vs otelcol-ref on the same scenarios; `python -m bench run`."""
