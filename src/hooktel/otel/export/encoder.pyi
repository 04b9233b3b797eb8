"""The compiled OTLP encoder (`encoder.c`); its specification is `encoder_py`."""

from collections.abc import Iterable, Mapping
from typing import Any

def encode_spans(spans: Iterable[Any], /) -> tuple[bytes, int]: ...
def configure(*, readable_fields: Mapping[str, str], attributes_dict: str) -> None: ...
