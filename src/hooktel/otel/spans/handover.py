"""Whether a `RequestSpan` can be handed to the span processors as it is, once ended.

`RequestSpan.end()` builds a standard `ReadableSpan` for `on_end` (about a
microsecond per request), because a processor may keep the span and expects
that read-only type. A processor that declares `takes_ended_request_spans =
True` on its class (`OTLPSpanProcessor`: it only reads the fields every
`ReadableSpan` has, after the span ended) takes the `RequestSpan` itself;
when every processor of the provider does, the copy is skipped.
"""

from __future__ import annotations

from typing import Any

from .._sdk import trace as seam

_last: tuple[object, bool] = ((), False)  # the provider's processors last seen, and the answer


def takes_request_spans(span_processor: Any) -> bool:
    """True when every processor behind `span_processor` (the provider's) takes a RequestSpan."""
    global _last  # noqa: PLW0603 - a one-entry cache: the processors change only when added
    processors = seam.span_processors(span_processor)
    seen, answer = _last
    if processors is seen:
        return answer
    answer = bool(processors) and all(
        getattr(type(processor), "takes_ended_request_spans", False) is True
        for processor in processors or ()
    )
    _last = (processors, answer)
    return answer
