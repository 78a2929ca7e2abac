"""In-process wake-up for the dispatcher: a launch or resume in this process starts dialing at once.

Across processes on PostgreSQL the same happens through ``NOTIFY`` (``db/repositories/dispatch.py``);
polling is the backstop for both.
"""

from __future__ import annotations

from collections.abc import Callable

_listeners: set[Callable[[], None]] = set()


def subscribe(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener`` on every :func:`wake`; returns the function that unsubscribes it."""
    _listeners.add(listener)
    return lambda: _listeners.discard(listener)


def wake() -> None:
    for listener in list(_listeners):
        listener()
