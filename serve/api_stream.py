"""A streamed /v1 answer: server-sent events of chat-completion chunks, and the response that stops the generation
however it ends."""

from __future__ import annotations

import json
import logging
from typing import Iterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from prompts import ShopLoRAError

from .api_responses import prediction_fields, usage
from .engine import Stream

log = logging.getLogger(__name__)


def event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def chunks(pieces: Stream, model: str, request_id: str, created: int, include_usage: bool = False) -> Iterator[str]:
    """The events of one streamed answer: the role, the pieces, the end (with a classify adapter's scores), the
    usage if asked for, then [DONE]; an error after the headers went out is an event too."""
    head = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        no_usage = {"usage": None} if include_usage else {}  # OpenAI: null on every chunk but the last
        return event(
            {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **no_usage, **(extra or {})}
        )

    yield chunk({"role": "assistant", "content": ""})
    try:
        for piece in pieces:
            if piece:
                yield chunk({"content": piece})
    except Exception as error:  # headers are sent already: the error travels as an event
        if not isinstance(error, ShopLoRAError):
            log.exception("unexpected error while streaming an answer")
        yield event({"error": {"message": str(error), "type": "server_error", "param": None, "code": None}})
        return
    finally:
        pieces.close()  # a client that went away stops the generation
    yield chunk({}, pieces.reply.finish_reason, prediction_fields(pieces.reply))  # the end, as the whole reply has it
    if include_usage:
        yield event({**head, "choices": [], "usage": usage(pieces.reply)})
    yield "data: [DONE]\n\n"


class GenerationResponse(StreamingResponse):
    """The event stream of one answer. Its generation ends however the response ends: finished, failed, or the
    client gone, which is noticed while a thread waits for the next piece, and even before the first one was sent
    (Starlette then never starts the body, so nothing in it could stop the model)."""

    def __init__(self, stream: Stream, events: Iterator[str]) -> None:
        super().__init__(events, media_type="text/event-stream")
        self.stream = stream

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        self.stream.stop()  # now: the thread reading the stream may wait for a piece of a request still queued

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.stop()
