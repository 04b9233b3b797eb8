"""The compiled OTLP encoder (`encoder.c`); its specification is `encoder_py`."""

from collections.abc import Iterable
from typing import Any

def encode_spans(spans: Iterable[Any], /) -> tuple[bytes, int]: ...
