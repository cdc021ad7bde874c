"""OpenAI-style `POST /v1/chat/completions` and `GET /v1/models` over the engine, so existing clients reach any adapter.

`model` names a stored adapter (as LoRAX and vLLM do), or "base" / "meta-init". Answers are greedy: `temperature`
and `top_p` are accepted and ignored. Classify adapters answer with the scored label and add a `shoplora` field with
the confidence and per-label scores. Errors are OpenAI-shaped JSON: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from typing import Any, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from prompts import ShopLoRAError

from .engine import Engine, EngineBusy, Reply, Stream, UnknownAdapter

RETRY_AFTER = 2  # seconds a busy client is told to wait


class BadRequest(ShopLoRAError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def error_response(status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status,
                        headers=headers)


def _as_response(error: ShopLoRAError) -> JSONResponse:
    if isinstance(error, UnknownAdapter):
        return error_response(404, str(error), param="model", code="model_not_found")
    if isinstance(error, EngineBusy):
        return error_response(429, str(error), kind="server_busy", code="busy",
                              headers={"Retry-After": str(RETRY_AFTER)})
    return error_response(400, str(error), param=getattr(error, "param", None))


def authorized(request: Request, auth: tuple[str, str] | None) -> bool:
    """With `--auth user:pass`, clients send `Authorization: Bearer user:pass` (an OpenAI client's api_key) or basic
    auth with the same pair."""
    if auth is None:
        return True
    expected = f"{auth[0]}:{auth[1]}"
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value).decode()
        except ValueError:
            return False
    elif scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(value.encode(), expected.encode())


def _int_field(body: dict, *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"'{name}' must be a positive integer, got {value!r}", param=name)
        return value
    return None


def parse_body(raw: bytes) -> dict:
    """The request's fields, checked: a clear message (and the field) for each problem."""
    try:
        body = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON; send {\"model\": ..., \"messages\": [...]}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object with 'model' and 'messages'")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("'model' is required: the name of a stored adapter, 'base' or 'meta-init' (GET /v1/models "
                         "lists them)", param="model")
    if "messages" not in body:
        raise BadRequest("'messages' is required: a list of {\"role\": ..., \"content\": ...}", param="messages")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported (answers are greedy, so more would be identical)", param="n")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be true or false", param="stream")
    abstain = body.get("abstain_below")
    if abstain is not None and (isinstance(abstain, bool) or not isinstance(abstain, (int, float))):
        raise BadRequest("'abstain_below' must be a number between 0 and 1", param="abstain_below")
    return {"model": body["model"], "messages": body["messages"], "stream": body.get("stream", False),
            "max_new_tokens": _int_field(body, "max_completion_tokens", "max_tokens"), "abstain_below": abstain}


def completion(reply: Reply, request_id: str, created: int) -> dict:
    return {
        "id": request_id, "object": "chat.completion", "created": created, "model": reply.adapter,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": reply.finish_reason}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens},
        **_prediction(reply),
    }


def _prediction(reply: Reply) -> dict:
    """A classify adapter's label scores beside the OpenAI fields (nothing for generated answers)."""
    p = reply.prediction
    if p is None:
        return {}
    return {"shoplora": {"label": p.label, "best_label": p.text, "confidence": p.confidence, "scores": p.scores}}


def _chunks(pieces: Stream, model: str, request_id: str, created: int) -> Iterator[str]:
    def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        data = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        for piece in pieces:
            if piece:
                yield chunk({"content": piece})
    except ShopLoRAError as error:  # headers are sent already: the error travels as an event
        yield f"data: {json.dumps({'error': {'message': str(error), 'type': 'server_error'}})}\n\n"
        return
    finally:
        pieces.close()  # a client that went away stops the generation
    yield chunk({}, pieces.reply.finish_reason, _prediction(pieces.reply))  # the end, as the whole reply has it
    yield "data: [DONE]\n\n"


def openai_router(engine: Engine, *, auth: tuple[str, str] | None = None) -> APIRouter:
    """The /v1 routes. The engine blocks, so its calls run on the thread pool (FastAPI does that for plain `def`
    routes; the chat route reads the raw body itself, so it hands the call over explicitly)."""
    router = APIRouter(prefix="/v1")
    unauthorized = ("missing or wrong credentials: send 'Authorization: Bearer USER:PASS' (the --auth pair, e.g. as "
                    "an OpenAI client's api_key)")

    @router.get("/models")
    def models(request: Request):
        if not authorized(request, auth):
            return error_response(401, unauthorized, code="invalid_api_key")
        data = []
        for name in engine.names():
            try:
                info = engine.describe(name).to_dict()
            except ShopLoRAError as error:  # a broken folder is listed with its problem, not hidden
                info = {"error": str(error)}
            data.append({"id": name, "object": "model", "created": 0, "owned_by": "shoplora", "shoplora": info})
        return {"object": "list", "data": data}

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        if not authorized(request, auth):
            return error_response(401, unauthorized, code="invalid_api_key")
        request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        try:
            body = parse_body(await request.body())
            result = await run_in_threadpool(engine.generate, body["messages"], body["model"], stream=body["stream"],
                                             max_new_tokens=body["max_new_tokens"],
                                             abstain_below=body["abstain_below"])
        except ShopLoRAError as error:
            return _as_response(error)
        if body["stream"]:
            return StreamingResponse(_chunks(result, body["model"], request_id, created),
                                     media_type="text/event-stream")
        return completion(result, request_id, created)

    return router
