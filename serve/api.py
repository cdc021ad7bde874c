"""OpenAI-style `POST /v1/chat/completions` and `GET /v1/models` over the engine, so existing clients reach any adapter.

`model` names a stored adapter (as LoRAX and vLLM do), or "base" / "meta-init". Answers are greedy: `temperature`
and `top_p` are accepted and ignored; `stop` and `stream_options.include_usage` work as OpenAI documents them, and a
"developer" message is a system message. Classify adapters answer with the scored label and add a `shoplora` field
with the confidence and per-label scores. Every answer of /v1, errors included (unknown routes, bad bodies, failed
logins, unexpected failures), is OpenAI-shaped JSON: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from prompts import ShopLoRAError

from .engine import Engine, EngineBusy, EngineError, Reply, Stream, UnknownAdapter, stop_sequences

log = logging.getLogger(__name__)

RETRY_AFTER = 2  # seconds a busy client is told to wait
MAX_BODY_BYTES = 1_000_000  # a chat request: 16 messages of the 8000-character limit are ~130 kB of JSON
LOGIN_ATTEMPTS = 5  # failed logins from one address within LOGIN_WINDOW before it is refused (429)...
LOGIN_WINDOW = 60.0  # seconds; ...until its oldest failure is this old: about 5 guesses a minute, not thousands
SERVED = "GET /v1/models, GET /v1/models/{model} and POST /v1/chat/completions"


class BadRequest(ShopLoRAError):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


def error_response(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status, headers=headers
    )


def _as_response(error: ShopLoRAError) -> JSONResponse:
    if isinstance(error, UnknownAdapter):
        return error_response(404, str(error), param="model", code="model_not_found")
    if isinstance(error, EngineBusy):
        return error_response(
            429, str(error), kind="server_busy", code="busy", headers={"Retry-After": str(RETRY_AFTER)}
        )
    return error_response(getattr(error, "status", 400), str(error), param=getattr(error, "param", None))


class LoginThrottle:
    """Failed logins per client address: after `attempts` failures within `window` seconds the address is refused
    until the oldest of them is `window` seconds old, which slows guessing to a few tries a minute. Behind a proxy
    every client shares the proxy's address. Thread-safe; `clock` is for tests."""

    def __init__(
        self, attempts: int = LOGIN_ATTEMPTS, window: float = LOGIN_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            failures = self._recent(client)
            return failures[0] + self.window - self.clock() if len(failures) >= self.attempts else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self.clock())
            if len(self._failures) > 10_000:  # many addresses (a scan): forget the ones with nothing recent
                for idle in [other for other in self._failures if not self._recent(other)]:
                    del self._failures[idle]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self.clock() - self.window:
            failures.popleft()
        return failures


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


def completion(reply: Reply, request_id: str, created: int) -> dict:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.adapter,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": reply.finish_reason}
        ],
        "usage": _usage(reply),
        **_prediction(reply),
    }


def _usage(reply: Reply) -> dict:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _prediction(reply: Reply) -> dict:
    """A classify adapter's label scores beside the OpenAI fields (nothing for generated answers)."""
    p = reply.prediction
    if p is None:
        return {}
    return {"shoplora": {"label": p.label, "best_label": p.text, "confidence": p.confidence, "scores": p.scores}}


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _chunks(pieces: Stream, model: str, request_id: str, created: int, include_usage: bool = False) -> Iterator[str]:
    head = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        usage = {"usage": None} if include_usage else {}  # OpenAI: null on every chunk but the last
        return _event(
            {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **usage, **(extra or {})}
        )

    yield chunk({"role": "assistant", "content": ""})
    try:
        for piece in pieces:
            if piece:
                yield chunk({"content": piece})
    except Exception as error:  # headers are sent already: the error travels as an event
        if not isinstance(error, ShopLoRAError):
            log.exception("unexpected error while streaming an answer")
        yield _event({"error": {"message": str(error), "type": "server_error", "param": None, "code": None}})
        return
    finally:
        pieces.close()  # a client that went away stops the generation
    yield chunk({}, pieces.reply.finish_reason, _prediction(pieces.reply))  # the end, as the whole reply has it
    if include_usage:
        yield _event({**head, "choices": [], "usage": _usage(pieces.reply)})
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


def model_entry(engine: Engine, name: str) -> dict:
    """One served name as OpenAI lists a model, with what it is under `shoplora`."""
    try:
        info = engine.describe(name).to_dict()
    except ShopLoRAError as error:  # a broken folder is listed with its problem, not hidden
        info = {"error": str(error)}
    return {"id": name, "object": "model", "created": 0, "owned_by": "shoplora", "shoplora": info}


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
            return _as_response(UnknownAdapter(f"no model called {model!r}; served: {', '.join(served)}"))
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
            return _as_response(error)
        if body["stream"]:
            return GenerationResponse(
                result, _chunks(result, body["model"], request_id, created, body["include_usage"])
            )
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


def log_requests(app: Any) -> None:
    """One log line per request to the API or its docs, once its answer is sent: method, path, status, seconds. The
    lab's page fetches many files and polls its queue; its events are logged by the lab (serve.events) instead."""
    app.add_middleware(RequestLog)


class RequestLog:
    """ASGI middleware behind `log_requests` (plain ASGI: Starlette's BaseHTTPMiddleware would wrap the streaming
    responses and hide a client's disconnect from GenerationResponse)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/v1") or path in ("/docs", "/openapi.json")):
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info("%s %s %d in %.2f s", scope.get("method", ""), path, status[0], time.perf_counter() - started)


def api_docs(app: Any) -> Callable[[Request], HTMLResponse]:
    """The /docs page: the /v1 routes (from the app's own routes, so it cannot drift from them), how to call them,
    and where the lab's own endpoints for gradio_client are described. Offline: no script from a CDN."""
    from html import escape

    def page(request: Request) -> HTMLResponse:
        url = str(request.base_url)
        rows = "".join(
            f"<tr><td><code>{', '.join(sorted(route.methods - {'HEAD'}))}</code></td><td><code>{escape(route.path)}"
            f"</code></td><td>{escape((route.description or '').strip())}</td></tr>"
            for route in app.routes
            if isinstance(route, APIRoute) and route.include_in_schema
        )
        body = f"""<!doctype html><html><head><meta charset="utf-8"><title>ShopLoRA API</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em;line-height:1.45}}
td{{border-top:1px solid #ddd;padding:.4em;vertical-align:top}}pre{{background:#f4f4f5;padding:.8em;overflow:auto}}
</style></head><body><h1>ShopLoRA API</h1>
<p>One server: the <a href="/">lab</a>, the OpenAI-style routes below (<code>model</code> names a stored adapter,
<code>base</code> or <code>meta-init</code>; schema: <a href="/openapi.json">/openapi.json</a>), and the lab's own
endpoints for <code>gradio_client</code>, listed with their parameters under
<a href="/?view=api">Use via API</a> (<code>/chat</code>, <code>/teach</code>, <code>/compare</code>,
<code>/adapters</code>, <code>/download</code>, <code>/delete</code>). Errors of <code>/v1</code> are JSON
<code>{{"error": {{"message", "type", "param", "code"}}}}</code>.</p>
<h2>OpenAI-style routes</h2><table>{rows}</table>
<pre>curl {escape(url)}v1/models
curl {escape(url)}v1/chat/completions -H 'Content-Type: application/json' \
     -d '{{"model": "acme-returns", "messages": [{{"role": "user", "content": "where is my parcel??"}}]}}'</pre>
<pre>from openai import OpenAI   # with a login: api_key="USER:PASS"
client = OpenAI(base_url="{escape(url)}v1", api_key="none")
client.chat.completions.create(model="acme-returns",
                               messages=[{{"role": "user", "content": "where is my parcel??"}}])</pre>
<h2>The lab from Python</h2>
<pre>from gradio_client import Client   # with a login: Client(url, auth=("USER", "PASS"))
client = Client("{escape(url)}")
client.predict(name="acme-returns", instruction="Classify the customer's message.",
               labels="refund_status, return_item", examples={{"headers": ["input", "output"], "data": [...]}},
               api_name="/teach")
client.predict(text="where is my parcel??", model="acme-returns", api_name="/chat")</pre>
</body></html>"""
        return HTMLResponse(body)

    return page
