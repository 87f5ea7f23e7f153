"""Per-session state for stateful plugins, bounded so abandoned sessions cannot grow memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SessionStates(Generic[T]):
    """One state object per session id, made by ``factory`` on first use.

    At most ``capacity`` sessions are kept: the least recently used is dropped
    first (a stream that ended without a summary, e.g. a cancelled call).
    Thread-safe; one session's windows arrive in order, so the state objects
    themselves need no lock.
    """

    def __init__(self, factory: Callable[[], T], capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._factory = factory
        self._capacity = capacity
        self._states: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> T:
        """The session's state, created when new."""
        with self._lock:
            state = self._states.get(session_id)
            if state is None:
                state = self._states[session_id] = self._factory()
                while len(self._states) > self._capacity:
                    self._states.popitem(last=False)
            else:
                self._states.move_to_end(session_id)
            return state

    def drop(self, session_id: str) -> None:
        """Forgets a finished session."""
        with self._lock:
            self._states.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
