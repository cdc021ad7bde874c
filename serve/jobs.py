"""A generation request on its way to the worker thread (`Job`) and a streamed answer as its reader sees it
(`Stream`)."""

from __future__ import annotations

import queue
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from prompts import Example, TaskSpec

from .chat import Reply

DONE = object()  # the end of a stream's pieces


@dataclass
class Job:
    """One generation request: what to answer, with which adapter, and where its answer goes (`future`, or `stream`
    for a streamed one)."""

    adapter: str
    spec: TaskSpec
    input: str
    shots: list[Example]
    max_new_tokens: int
    stream: "queue.Queue[Any] | None" = None  # pieces, then DONE or an exception; None for a batched request
    stop: tuple[str, ...] = ()  # stop sequences: the answer ends before the first one
    prompt_tokens: int = 0  # set by the worker once the prompt is built
    cut: bool = False  # set by the worker when the answer was cut at a stop sequence
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def abandon(self) -> None:
        """The reader is gone: generation ends after its current token (a job still waiting never starts), and a
        reader thread blocked waiting for the next piece wakes up. Safe from any thread."""
        if not self.abandoned.is_set():
            self.abandoned.set()
            if self.stream is not None:
                self.stream.put(DONE)

    def pieces(self) -> Iterator[str]:
        """A streamed job's text pieces as they come (the reader's side); the worker's error is raised here."""
        try:
            while True:
                piece = self.stream.get()
                if piece is DONE or self.abandoned.is_set():
                    return
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            self.abandoned.set()  # a reader that stops early ends the generation at its next token

    def reply(self, text: str, tokenizer: Any) -> Reply:
        """The Reply of a finished generation: "length" when the answer used the job's whole token budget (and was
        not cut at a stop sequence)."""
        # stripped, as whole answers are: a streamed answer counts as many tokens as the same answer unstreamed
        produced = len(tokenizer(text.strip(), add_special_tokens=False)["input_ids"])
        return Reply(
            text,
            self.adapter,
            self.prompt_tokens,
            produced,
            "length" if produced >= self.max_new_tokens and not self.cut else "stop",
        )


class Stream:
    """An answer piece by piece (iterate it; `close()` or `stop()` ends the generation, and so does dropping the
    Stream). Once it is exhausted, `reply` is the whole answer as a Reply: finish reason, token counts and, for a
    classify adapter, the prediction."""

    def __init__(
        self, pieces: Iterator[str], finish: Callable[[str], Reply], stop: Callable[[], None] | None = None
    ) -> None:
        self._pieces, self._finish, self._text = pieces, finish, []
        # A reader that drops the Stream unread (a closed browser tab, an HTTP response never started) must not
        # leave the model generating to max_new_tokens with every other request waiting behind it.
        self._stop = weakref.finalize(self, stop) if stop is not None else None
        self.reply: Reply | None = None

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        try:
            piece = next(self._pieces)
        except StopIteration:
            if self.reply is None:
                self.reply = self._finish("".join(self._text))
            raise
        self._text.append(piece)
        return piece

    def stop(self) -> None:
        """End the generation after its current token. Safe from any thread, also while another one is reading: the
        reader then sees the end of the stream."""
        if self._stop is not None:  # a generator never started does not run its `finally` on close
            self._stop()  # a finalizer runs once: stopping twice is harmless

    def close(self) -> None:
        """Stop and release the stream (from the reader's thread)."""
        self.stop()
        close = getattr(self._pieces, "close", None)
        if close:
            close()
