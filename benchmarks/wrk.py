"""Run wrk against a URL and parse what it prints."""

from __future__ import annotations

import re
import shutil
import subprocess

from .results import WrkResult
from .servers import CLIENT_CORE, pinned

_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkError(RuntimeError):
    pass


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed (Debian package `wrk`; scripts/setup.sh installs it)")
    return path


THREADS, CONNECTIONS = 1, 16
LOAD = f"wrk -t{THREADS} -c{CONNECTIONS}"


def run_wrk(url: str, seconds: int) -> WrkResult:
    """Load `url` for `seconds` with wrk --latency; bounded by a subprocess timeout."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"only 127.0.0.1 is loaded, not {url}")
    command = pinned(
        [
            wrk_path(),
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{max(seconds, 1)}s",  # wrk takes whole seconds
            "--timeout",
            "5s",
            "--latency",
            url,
        ],
        CLIENT_CORE,
    )
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {seconds + 30} s") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, request count, p50/p99 (µs) and errors from `wrk --latency` output."""
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    percentiles = {p: float(v) * _UNITS_US[u] for p, v, u in _PERCENTILE.findall(output)}
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise WrkError(f"cannot parse wrk output:\n{output}")
    errors = _SOCKET_ERRORS.search(output)
    non_2xx = _NON_2XX.search(output)
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_us=percentiles["50"],
        p99_us=percentiles["99"],
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )
