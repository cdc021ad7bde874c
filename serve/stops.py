"""OpenAI's `stop` sequences: checked on the request, cut from whole answers and held back from streamed ones."""

from __future__ import annotations

from typing import Sequence

from .chat import EngineError

MAX_STOP_SEQUENCES = 4  # as OpenAI allows


def stop_sequences(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """OpenAI's `stop`: one string or a list of up to 4 non-empty ones, as a tuple."""
    if stop is None:
        return ()
    stops = tuple(stop) if isinstance(stop, (list, tuple)) else (stop,)
    if len(stops) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in stops):
        raise EngineError(
            f"'stop' must be a non-empty string or a list of at most {MAX_STOP_SEQUENCES} of them, got {stop!r}"
        )
    return stops


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """(`text` before the first of the stop sequences, whether there was one)."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


class StopCutter:
    """A stream's pieces up to its first stop sequence. Text that may be the start of one is `held` until the next
    piece says, so no part of a stop sequence is ever sent."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops, self.held, self.hit = tuple(stops), "", False

    def feed(self, piece: str) -> str:
        """The text that can be sent now; `hit` turns true when a stop sequence was reached (send nothing more)."""
        text, self.hit = cut_at_stop(self.held + piece, self.stops)
        keep = (
            0
            if self.hit
            else max(
                (k for stop in self.stops for k in range(1, min(len(stop), len(text) + 1)) if text.endswith(stop[:k])),
                default=0,
            )
        )
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]
