"""POSTs encoded batches to an OTLP/HTTP endpoint, retrying what is worth retrying.

One keep-alive connection, used by the export thread only. The request goes
out in one `sendall` (head and body together, TCP_NODELAY): `http.client`
sends the head and the body apart, and under load each of its socket calls
costs the export thread a wait for the GIL (up to the 5 ms switch interval)
and can meet Nagle's algorithm; the answer is read with `http.client`'s
response parser (any framing, chunked included). A socket call releases the
GIL, so the request threads run while a batch is on the wire. The rules
(OTLP/HTTP's):

- 2xx: sent.
- 429, 502, 503, 504, a connection error or a timeout: retried with
  exponential backoff and jitter (0.5 s, 1 s, 2 s, ... up to 8 s, each
  times 0.5-1.5), or after the `Retry-After` the server asked for (seconds
  or an HTTP date), as long as the batch's deadline allows; then given up.
- Anything else (400, 401, 413, 500, ...): given up at once; another try
  would get the same answer.

A keep-alive connection the server closed while idle is reopened at once,
without counting as a failure.

At shutdown the processor moves the deadline of the batch on the wire
earlier (`cut_off`): a wait for a retry ends at once, no retry is made whose
wait would pass the new deadline, and a request still waiting for its answer
at that deadline has its socket shut (`interrupt`), so that a dead or slow
receiver cannot hold the process's exit past what `shutdown()` promises.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import http.client
import logging
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .config import USER_AGENT, ExportConfig

if TYPE_CHECKING:
    import ssl

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 8.0


@dataclass(frozen=True)
class SendOutcome:
    """How one batch went: sent or not, and why not (for the warning).

    `rejected`: spans the receiver took the batch without (an OTLP partial success).
    """

    sent: bool
    reason: str = ""
    rejected: int = 0


class OTLPSender:
    """Sends one `ExportTraceServiceRequest` body at a time to the configured endpoint."""

    def __init__(self, config: ExportConfig) -> None:
        url = urlsplit(config.endpoint)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._timeout = config.timeout
        self._compression = config.compression
        headers = {
            "Host": self._host if url.port is None else f"{self._host}:{self._port}",
            "Content-Type": "application/x-protobuf",
            "User-Agent": USER_AGENT,
            **({"Content-Encoding": config.compression} if config.compression != "none" else {}),
            **config.headers,
        }
        self._head = _request_head(self._target, headers)
        self._tls = _tls_context(config) if self._https else None
        self._socket: socket.socket | None = None
        self._cutoff = float("inf")
        self._cut = threading.Event()  # set with the cut-off: ends a wait for a retry

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def cut_off(self, deadline: float) -> None:
        """From another thread: nothing goes out past `deadline`, the batch on the wire included."""
        self._cutoff = min(self._cutoff, deadline)
        self._cut.set()

    def interrupt(self) -> None:
        """From another thread: end a request still waiting for its answer.

        `shutdown` (not `close`) wakes the thread blocked on the socket without
        freeing its file descriptor under it; the export thread closes it.
        """
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):  # closed meanwhile, or never connected
                sock.shutdown(socket.SHUT_RDWR)

    def send(
        self, payload: bytes, deadline: float, failed_try: Callable[[str], None] | None = None
    ) -> SendOutcome:
        """POST `payload`, retrying until it is sent, refused, or `deadline` (monotonic) passes.

        `failed_try` is told why each try that will be retried failed, so that a
        dead receiver is reported while the batch is still being retried.
        """
        body = self._compress(payload)
        attempt, reason = 0, ""
        while True:
            deadline = min(deadline, self._cutoff)
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # a late wake-up from the wait for a retry: as if it did not fit
                late = f"{reason}, no time left to retry" if reason else "export timeout reached"
                return SendOutcome(False, late)
            reused = self._socket is not None
            try:
                status, retry_after, answer = self._post(body, min(self._timeout, remaining))
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0 and _closed_while_idle(exc):
                    attempt += 1  # a stale keep-alive connection: reopen at once
                    continue
                reason, wait = f"{type(exc).__name__}: {exc}", _backoff(attempt)
            else:
                if 200 <= status < 300:
                    rejected, message = partial_success(answer)
                    return SendOutcome(True, message, rejected)
                reason = f"HTTP {status}"
                if status not in RETRYABLE_STATUSES:
                    return SendOutcome(False, reason)
                wait = retry_after if retry_after is not None else _backoff(attempt)
            if time.monotonic() + wait < min(deadline, self._cutoff):
                if failed_try is not None:
                    failed_try(reason)
                if self._wait(wait):
                    attempt += 1
                    continue
            return SendOutcome(False, f"{reason}, no time left to retry")

    def _wait(self, wait: float) -> bool:
        """Wait `wait` seconds for a retry; False, at once, when a cut-off leaves no time for it."""
        until = time.monotonic() + wait
        self._cut.wait(wait)  # returns early once `cut_off` was called (then at once)
        if until >= self._cutoff:
            return False
        time.sleep(max(0.0, until - time.monotonic()))  # the cut-off leaves time: wait it out
        return True

    def _compress(self, payload: bytes) -> bytes:
        if self._compression == "gzip":
            return gzip.compress(payload, compresslevel=6, mtime=0)  # zlib releases the GIL
        if self._compression == "deflate":
            return zlib.compress(payload)
        return payload

    def _post(self, body: bytes, timeout: float) -> tuple[int, float | None, bytes]:
        """One POST on the keep-alive connection; the status, any Retry-After (s), the body."""
        sock = self._socket
        if sock is None:
            sock = self._socket = self._connect(timeout)
        else:
            sock.settimeout(timeout)
        sock.sendall(b"%s%d\r\n\r\n%s" % (self._head, len(body), body))
        response = http.client.HTTPResponse(sock, method="POST")
        try:
            response.begin()
            answer = response.read()  # read whole, also to reuse the connection
        finally:
            response.close()  # its file object only; the socket stays open for the next batch
        if response.will_close:
            self.close()
        return response.status, _retry_after(response.getheader("Retry-After")), answer

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        return sock


def _request_head(target: str, headers: dict[str, str]) -> bytes:
    """The request line and headers, up to the Content-Length value (added per batch)."""
    lines = [f"POST {target} HTTP/1.1"]
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n") or any(c in value for c in "\r\n"):
            raise ValueError(f"OTLP header {name!r}: not a valid HTTP header")
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: ")
    return "\r\n".join(lines).encode("latin-1")


def partial_success(answer: bytes) -> tuple[int, str]:
    """`rejected_spans` and `error_message` of an `ExportTraceServiceResponse`, if any.

    The response is `{partial_success = 1: {rejected_spans = 1 (int64),
    error_message = 2 (string)}}`; anything unreadable counts as no rejection.
    """
    try:
        for number, value in _fields(answer):
            if number == 1 and isinstance(value, bytes):
                rejected, message = 0, ""
                for inner, item in _fields(value):
                    if inner == 1 and isinstance(item, int):
                        rejected = item
                    elif inner == 2 and isinstance(item, bytes):
                        message = item.decode("utf-8", "replace")
                return max(0, rejected), message
    except (IndexError, ValueError):
        pass
    return 0, ""


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message: varints and length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        if key & 7 == 0:
            value, pos = _varint(data, pos)
            yield key >> 3, value
        elif key & 7 == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated")
            yield key >> 3, data[pos : pos + size]
            pos += size
        else:
            raise ValueError("a wire type an OTLP response does not use")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _tls_context(config: ExportConfig) -> ssl.SSLContext:
    import ssl  # only for https endpoints: importing ssl costs ~10 ms

    context = ssl.create_default_context(cafile=config.certificate_file)
    if config.client_certificate_file:
        context.load_cert_chain(config.client_certificate_file, config.client_key_file)
    return context


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**attempt) * random.uniform(0.5, 1.5)


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _closed_while_idle(exc: BaseException) -> bool:
    return isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
