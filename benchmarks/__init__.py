"""Benchmark harness for hooktel: real servers loaded with wrk, plus in-process costs.

Run it with `python -m benchmarks.run` (add `--quick` for one second per
server and variant). Servers, apps and variants are small tables (`servers.py`,
`apps.py`, `variants.py`): a new server or variant is one more entry.
"""
