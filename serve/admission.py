"""Admission: at most `max_pending` requests wait or run at once; the next one gets `EngineBusy` at once instead of
waiting forever."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from .chat import EngineBusy


class Admission:
    """The count of requests waiting or running, bounded by `max_pending`. Thread-safe."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Requests waiting or running now."""
        return self._pending

    def enter(self) -> None:
        """Count one more request, or raise EngineBusy when `max_pending` are already in."""
        with self._lock:
            if self._pending >= self.max_pending:
                raise EngineBusy(
                    f"the server is busy ({self._pending} requests waiting or running); try again in a few seconds"
                )
            self._pending += 1

    def leave(self) -> None:
        """One request is done (answered or failed)."""
        with self._lock:
            self._pending -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """A place among the requests for as long as the `with` block runs."""
        self.enter()
        try:
            yield
        finally:
            self.leave()
