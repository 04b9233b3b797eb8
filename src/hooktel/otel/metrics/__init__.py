"""HTTP server metrics from the same hooks as the spans.

`instrument` attaches the metrics instrument, `histograms` feeds the SDK's
histogram streams, `streamtable` keeps one stream per attribute set, and
`aggregator` (C) / `aggregator_py` (its twin) record one request.
"""
