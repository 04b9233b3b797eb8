"""The compiled metrics recorder (`aggregator.c`); its specification is `aggregator_py`."""

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from .streamtable import Key, SeriesList

class Recorder:
    def __init__(
        self,
        series: dict[Key, SeriesList],
        bounds: tuple[float, ...],
        admit: Callable[[Key], SeriesList],
        lock: threading.Lock,
        context_var: contextvars.ContextVar[Any],
        span_key: str,
        span_context_type: type[tuple[Any, ...]],
        flags_index: int,
        min_max: bool,
    ) -> None: ...
    def __call__(self, value: float, key: Key, /) -> None: ...
