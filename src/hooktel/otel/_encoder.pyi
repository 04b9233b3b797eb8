"""The compiled OTLP encoder (`_encoder.c`); its specification is `_encoder_py`."""

from collections.abc import Iterable
from typing import Any

def encode_spans(spans: Iterable[Any], /) -> tuple[bytes, int]: ...
