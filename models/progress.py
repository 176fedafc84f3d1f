"""How far a long model call has got, for whoever waits for it (the worker's status message).

Why: an engine that iterates (Gatys' L-BFGS) knows how far it is, and a user waiting half a minute
wants to see it; but models/ knows nothing of Telegram or of the worker. So the worker installs a
listener around the call (`reporting`) and an engine says `report(fraction)` as it goes; with no
listener installed (the CLI, tests, benchmarks), a report costs nothing and goes nowhere.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

_listener: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar(
    "paintbot_progress", default=None)


@contextlib.contextmanager
def reporting(listener: Callable[[float], None]) -> Iterator[None]:
    """Within this block, `report(f)` calls `listener(f)` (f from 0 to 1)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def report(fraction: float) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(min(1.0, max(0.0, fraction)))
