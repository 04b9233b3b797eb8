"""One WebSocket connection's lifecycle: an operation from the handshake to the close.

A WebSocket connection is reported like a request (one start, exactly one end
or error) with what a request lacks: the close code and who closed, and the
messages each way. No semantic convention names these yet, so they are
`websocket.*` (docs/hooks.md lists them).
"""

from __future__ import annotations

import time
from typing import Any

from .._registry.instrument import Attributes
from .operation import HttpOperation

SUBPROTOCOLS = "websocket.subprotocols"
"""Start: the subprotocols the client offered, a tuple of str."""
SUBPROTOCOL = "websocket.subprotocol"
CLOSE_CODE = "websocket.close.code"
CLOSE_INITIATOR = "websocket.close.initiator"
RECEIVED_COUNT = "websocket.message.received.count"
RECEIVED_SIZE = "websocket.message.received.size"
SENT_COUNT = "websocket.message.sent.count"
SENT_SIZE = "websocket.message.sent.size"

NORMAL_CLOSE_CODES = (1000, 1001)
"""RFC 6455 7.4.1: a normal closure, and an endpoint going away: neither is an error."""
NO_STATUS_CODE = 1005
"""RFC 6455 7.4.1: no close code. uvicorn also reports a lost connection so, which is
why it is not taken for a normal close."""
MESSAGE_DIRECTION = "websocket.message.direction"
"""Per message (`on_operation_message`): `received` or `sent`."""
MESSAGE_TYPE = "websocket.message.type"
"""Per message: `text` or `binary`."""
MESSAGE_SIZE = "websocket.message.size"
"""Per message: its payload bytes (text as UTF-8)."""
REJECTED_STATUS = 403
"""The HTTP status a server answers a handshake the app closed before accepting (ASGI)."""


class WebSocketOperation(HttpOperation):
    """A connection's telemetry state: `HttpOperation`'s contract, a connection's attributes."""

    __slots__ = (
        "accepted",
        "close_code",
        "closed_by",
        "received_count",
        "received_size",
        "sent_count",
        "sent_size",
        "subprotocol",
    )

    def __init__(self, hooks: Any) -> None:
        super().__init__(hooks)
        self.accepted = False
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.closed_by: str | None = None
        self.received_count = self.received_size = 0
        self.sent_count = self.sent_size = 0

    def received(self, message: Any) -> None:
        size = message_size(message)
        self.received_count += 1
        self.received_size += size
        if self.hooks.message_hooks:
            self._notify_message("received", message, size)

    def sent(self, message: Any) -> None:
        size = message_size(message)
        self.sent_count += 1
        self.sent_size += size
        if self.hooks.message_hooks:
            self._notify_message("sent", message, size)

    def _notify_message(self, direction: str, message: Any, size: int) -> None:
        if not self.done:
            self.hooks.notify_message(
                self.id,
                {
                    "operation.id": self.id,
                    "operation.timestamp": time.time_ns(),
                    MESSAGE_DIRECTION: direction,
                    MESSAGE_TYPE: "text" if message.get("bytes") is None else "binary",
                    MESSAGE_SIZE: size,
                },
            )

    def closed(self, code: int, by: str) -> None:
        """Note the first close, the client's or the server's; later ones change nothing."""
        if self.closed_by is None:
            self.close_code, self.closed_by = code, by

    @property
    def closed_normally_by_client(self) -> bool:
        return self.closed_by == "client" and self.close_code in NORMAL_CLOSE_CODES

    def end(self) -> None:
        attrs = self._close(self.hooks.end_hooks)
        if attrs is not None:
            self.hooks.notify_end(self.id, attrs)

    def _close(self, hooks: tuple[Any, ...]) -> Attributes | None:
        attrs = super()._close(hooks)
        if attrs is not None:
            if self.subprotocol is not None:
                attrs[SUBPROTOCOL] = self.subprotocol
            if self.closed_by is not None:
                if self.close_code is not None:
                    attrs[CLOSE_CODE] = self.close_code
                attrs[CLOSE_INITIATOR] = self.closed_by
            attrs[RECEIVED_COUNT] = self.received_count
            attrs[RECEIVED_SIZE] = self.received_size
            attrs[SENT_COUNT] = self.sent_count
            attrs[SENT_SIZE] = self.sent_size
        return attrs


def message_size(message: Any) -> int:
    """The payload bytes of a `websocket.send`/`websocket.receive` message (text as UTF-8)."""
    data = message.get("bytes")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    text = message.get("text")
    if isinstance(text, str):
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return 0
