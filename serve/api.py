"""OpenAI-style `POST /v1/chat/completions` and `GET /v1/models` over the engine, so existing clients reach any adapter.

`model` names a stored adapter (as LoRAX and vLLM do), or "base" / "meta-init". Answers are greedy: `temperature`
and `top_p` are accepted and ignored; `stop` and `stream_options.include_usage` work as OpenAI documents them, and a
"developer" message is a system message. Classify adapters answer with the scored label and add a `shoplora` field
with the confidence and per-label scores. Every answer of /v1, errors included (unknown routes, bad bodies, failed
logins, unexpected failures), is OpenAI-shaped JSON: {"error": {"message", "type", "param", "code"}}.

Here are the routes; a request's body is checked in `serve.api_requests`, answers are shaped in `serve.api_responses`
and streamed by `serve.api_stream`, logins are checked by `serve.logins`.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Callable

from fastapi import APIRouter, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from prompts import ShopLoRAError

from .api_requests import parse_body, read_body
from .api_responses import as_response, completion, error_response, model_entry
from .api_stream import GenerationResponse, chunks
from .engine import Engine, UnknownAdapter
from .logins import LoginThrottle, authorized

log = logging.getLogger(__name__)

SERVED = "GET /v1/models, GET /v1/models/{model} and POST /v1/chat/completions"


class OpenAIRoute(APIRoute):
    """A /v1 route whose unexpected errors are OpenAI-shaped JSON 500s (the traceback goes to the log), never
    Starlette's text/plain page, which OpenAI clients cannot read."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError):
                raise
            except Exception as error:
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                return error_response(
                    500,
                    f"the server failed: {type(error).__name__} (its log has the details); "
                    "try again, and report it if it persists",
                    kind="server_error",
                )

        return guarded


def openai_router(
    engine: Engine, *, auth: tuple[str, str] | None = None, throttle: LoginThrottle | None = None
) -> APIRouter:
    """The /v1 routes. The engine blocks, so its calls run on the thread pool (FastAPI does that for plain `def`
    routes; the chat route reads the raw body itself, so it hands the call over explicitly). With `auth`, failed
    logins are counted by `throttle` (default: 5 a minute per client address)."""
    router = APIRouter(prefix="/v1", route_class=OpenAIRoute)
    throttle = throttle or LoginThrottle()
    unauthorized = (
        "missing or wrong credentials: send 'Authorization: Bearer USER:PASS' (the --auth pair, e.g. as "
        "an OpenAI client's api_key)"
    )

    def refused(request: Request) -> JSONResponse | None:
        """The answer to a request without the right login (None when it may go on)."""
        if auth is None:
            return None
        client = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(client)
        if wait > 0:  # checked before the password: a locked-out guesser learns nothing, even when right
            seconds = math.ceil(wait)
            return error_response(
                429,
                f"too many failed logins from {client}: try again in {seconds} s with the "
                "right 'Authorization: Bearer USER:PASS'",
                kind="rate_limit_error",
                code="too_many_failed_logins",
                headers={"Retry-After": str(seconds)},
            )
        if authorized(request, auth):
            throttle.succeeded(client)
            return None
        throttle.failed(client)
        return error_response(401, unauthorized, code="invalid_api_key")

    @router.get("/models")
    def models(request: Request):
        """Every served name: stored adapters, "base" and "meta-init", with what each is under `shoplora`."""
        if (answer := refused(request)) is not None:
            return answer
        return {"object": "list", "data": [model_entry(engine, name) for name in engine.names()]}

    @router.get("/models/{model}")
    def model(request: Request, model: str):
        """One served name, as in the list (404 for an unknown one)."""
        if (answer := refused(request)) is not None:
            return answer
        served = engine.names()
        if model not in served:
            return as_response(UnknownAdapter(f"no model called {model!r}; served: {', '.join(served)}"))
        return model_entry(engine, model)

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        """Answer `messages` with the adapter `model` names; `stream: true` for server-sent events. A classify
        adapter answers with its label and adds `shoplora` (confidence, per-label scores)."""
        if (answer := refused(request)) is not None:
            return answer
        request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        try:
            body = parse_body(await read_body(request))
            result = await run_in_threadpool(
                engine.generate,
                body["messages"],
                body["model"],
                stream=body["stream"],
                max_new_tokens=body["max_new_tokens"],
                abstain_below=body["abstain_below"],
                stop=body["stop"],
            )
        except ShopLoRAError as error:
            return as_response(error)
        if body["stream"]:
            return GenerationResponse(result, chunks(result, body["model"], request_id, created, body["include_usage"]))
        return completion(result, request_id, created)

    # Last: anything else under /v1 gets OpenAI's 404 instead of the lab's page answering it.
    @router.api_route(
        "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], include_in_schema=False
    )
    def unknown(request: Request, path: str):
        if (answer := refused(request)) is not None:
            return answer
        legacy = " (legacy text completions are not served)" if path.strip("/") == "completions" else ""
        return error_response(
            404, f"Invalid URL ({request.method} /v1/{path}){legacy}; this server answers {SERVED}", code="unknown_url"
        )

    return router
