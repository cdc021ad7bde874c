"""The bodies of /v1 answers: a chat completion, a model entry, and OpenAI-shaped errors
{"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from prompts import ShopLoRAError

from .engine import Engine, EngineBusy, Reply, UnknownAdapter

RETRY_AFTER = 2  # seconds a busy client is told to wait


def error_response(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    """An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}} with `status`."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status, headers=headers
    )


def as_response(error: ShopLoRAError) -> JSONResponse:
    """A refused request's answer: 404 for an unknown model, 429 with Retry-After when the engine is busy, else the
    error's own status (400 unless it says otherwise) and field."""
    if isinstance(error, UnknownAdapter):
        return error_response(404, str(error), param="model", code="model_not_found")
    if isinstance(error, EngineBusy):
        return error_response(
            429, str(error), kind="server_busy", code="busy", headers={"Retry-After": str(RETRY_AFTER)}
        )
    return error_response(getattr(error, "status", 400), str(error), param=getattr(error, "param", None))


def completion(reply: Reply, request_id: str, created: int) -> dict:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.adapter,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": reply.finish_reason}
        ],
        "usage": usage(reply),
        **prediction_fields(reply),
    }


def usage(reply: Reply) -> dict:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def prediction_fields(reply: Reply) -> dict:
    """A classify adapter's label scores beside the OpenAI fields (nothing for generated answers)."""
    p = reply.prediction
    if p is None:
        return {}
    return {"shoplora": {"label": p.label, "best_label": p.best_label, "confidence": p.confidence, "scores": p.scores}}


def model_entry(engine: Engine, name: str) -> dict:
    """One served name as OpenAI lists a model, with what it is under `shoplora`."""
    try:
        info = engine.describe(name).to_dict()
    except ShopLoRAError as error:  # a broken folder is listed with its problem, not hidden
        info = {"error": str(error)}
    return {"id": name, "object": "model", "created": 0, "owned_by": "shoplora", "shoplora": info}
