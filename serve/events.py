"""How the lab's event handlers meet their users: every error becomes a message in the page, and every call is one
line in the server log (`shown` for the handlers, `LabBlocks` for the inputs Gradio checks before a handler runs)."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import gradio as gr

from prompts import ShopLoRAError

log = logging.getLogger(__name__)


def shown(fn: Callable, what: str | None = None) -> Callable:
    """Turn every error of `fn` into a message in the page (gr.Error) and log one line per call: what was asked, how
    it ended, how long it took. A user's error (ShopLoRAError) is that one line; an unexpected one is logged in
    full."""
    what = what or fn.__name__.removeprefix("on_")

    def message(error: Exception) -> gr.Error:
        if isinstance(error, ShopLoRAError):
            return gr.Error(str(error), print_exception=False)
        log.exception("lab %s: unexpected error", what)
        return gr.Error(
            f"unexpected {type(error).__name__}: {error} (the server log has the details)", print_exception=False
        )

    @contextmanager
    def logged() -> Iterator[None]:
        started, failure = time.perf_counter(), None
        try:
            yield
        except gr.Error as error:
            failure = error
            raise
        except Exception as error:
            failure = error
            raise message(error) from None
        finally:
            seconds = time.perf_counter() - started
            if failure is None:
                log.info("lab %s: ok in %.2f s", what, seconds)
            elif isinstance(failure, ShopLoRAError):
                log.info("lab %s: refused in %.2f s: %s", what, seconds, str(failure).splitlines()[0][:300])
            elif isinstance(failure, gr.Error):
                log.info("lab %s: refused in %.2f s: %s", what, seconds, str(failure.message)[:300])

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            with logged():
                yield from fn(*args, **kwargs)

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with logged():
            return fn(*args, **kwargs)

    return call


class LabBlocks(gr.Blocks):
    """gr.Blocks whose input checks are user errors like the handlers' own: a value Gradio refuses before the handler
    runs (a Slider's value out of its range, a file of a type the component does not take) reaches the client as its
    message and is one line in the server log, not a traceback (Gradio prints one for every gr.Error it is not told
    to keep quiet, and its components raise theirs with the default)."""

    async def preprocess_data(self, block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False):
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error as error:
            error.print_exception = False
            what = block_fn.api_name or block_fn.name
            log.info("lab %s: refused: %s", what, str(error.message).splitlines()[0][:300])
            raise
