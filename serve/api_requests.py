"""What a /v1 request may hold: its body read within a size limit, parsed as JSON, and its fields checked, each
problem a `BadRequest` naming the field (OpenAI's `param`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from prompts import ShopLoRAError

from .engine import EngineError, stop_sequences

MAX_BODY_BYTES = 1_000_000  # a chat request: 16 messages of the 8000-character limit are ~130 kB of JSON


class BadRequest(ShopLoRAError):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


def _int_field(body: dict, *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"'{name}' must be a positive integer, got {value!r}", param=name)
        return value
    return None


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes: a huge body must not fill the memory."""
    too_large = BadRequest(
        f"the request body is over the limit of {limit} bytes; send shorter messages (at most "
        "8000 characters each) or fewer earlier turns",
        status=413,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _load_json(raw: bytes) -> Any:
    """The body as JSON, refusing what Python's parser lets through but nothing after it can use: nesting deeper
    than the recursion limit, lone UTF-16 surrogates ("\\ud800"), which no tokenizer or UTF-8 reply can hold, and
    integers too long to convert."""
    try:
        body = json.loads(raw or b"")
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest('the request body is not valid JSON; send {"model": ..., "messages": [...]}') from None
    except RecursionError:
        raise BadRequest('the request body nests JSON too deeply; send {"model": ..., "messages": [...]}') from None
    except UnicodeEncodeError as error:
        raise BadRequest(
            f"the request body has a lone surrogate {error.object[error.start : error.end]!r} in a string: "
            'send valid Unicode (an emoji is a pair of escapes, e.g. "\\ud83d\\ude00")'
        ) from None
    except ValueError as error:  # an integer of over 4300 digits, which Python refuses to convert (after the
        # UnicodeEncodeError clause: that is a ValueError too)
        raise BadRequest(
            f"the request body holds a number too long to read ({str(error).split(';')[0]}); send "
            "numbers of at most a few digits"
        ) from None
    return body


def parse_body(raw: bytes) -> dict:
    """The request's fields, checked: a clear message (and the field) for each problem."""
    body = _load_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object with 'model' and 'messages'")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest(
            "'model' is required: the name of a stored adapter, 'base' or 'meta-init' (GET /v1/models lists them)",
            param="model",
        )
    if "messages" not in body:
        raise BadRequest('\'messages\' is required: a list of {"role": ..., "content": ...}', param="messages")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported (answers are greedy, so more would be identical)", param="n")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be true or false", param="stream")
    abstain = body.get("abstain_below")
    if abstain is not None and (
        isinstance(abstain, bool) or not isinstance(abstain, (int, float)) or not 0.0 <= abstain <= 1.0
    ):
        raise BadRequest(
            f"'abstain_below' must be a number between 0 and 1 (1 always hands over), got {abstain!r}",
            param="abstain_below",
        )
    try:
        stop = stop_sequences(body.get("stop"))
    except EngineError as error:
        raise BadRequest(str(error), param="stop") from None
    return {
        "model": body["model"],
        "messages": body["messages"],
        "stream": body.get("stream", False),
        "max_new_tokens": _int_field(body, "max_completion_tokens", "max_tokens"),
        "abstain_below": abstain,
        "stop": stop,
        "include_usage": _include_usage(body),
    }


def _include_usage(body: dict) -> bool:
    """`stream_options: {"include_usage": true}`: a last chunk with the usage (refused without streaming, as OpenAI
    does)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not body.get("stream"):
        raise BadRequest("'stream_options' is only allowed with \"stream\": true", param="stream_options")
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise BadRequest("'stream_options' must be an object such as {\"include_usage\": true}", param="stream_options")
    return options.get("include_usage", False)
