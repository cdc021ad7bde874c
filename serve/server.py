"""One server for the lab and the API: `server_app` mounts the Gradio lab (`serve.app`) at / beside the OpenAI-style
/v1 routes (`serve.api`) on one FastAPI app, with a login and a one-line-per-request log; `serve` runs it with uvicorn
(what `shoplora serve` calls); `running` serves it in a background thread for tests and notebooks.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import gradio as gr
import uvicorn
from fastapi import FastAPI
from gradio.utils import _parse_file_size
from starlette.types import Receive, Scope, Send

from adapters.fit import AdaptationWarning
from adapters.specs import LabelCoverageWarning
from prompts import ShopLoRAError

from .api import openai_router
from .api_docs import api_docs
from .app import build_app
from .engine import Engine
from .logins import lab_login
from .uploads import MAX_FILE_SIZE

log = logging.getLogger(__name__)


def server_app(
    engine: Engine,
    *,
    auth: tuple[str, str] | None = None,
    max_file_size: str | int = MAX_FILE_SIZE,
    concurrency: int = 4,
) -> Any:
    """One FastAPI app: the OpenAI-style /v1 routes and the lab at /. `concurrency` bounds the lab's events that run
    at once (the engine serialises model work anyway); the queue holds as many as the engine lets wait."""
    # /docs is a page of our own: FastAPI's Swagger UI loads its scripts from a CDN, which an offline server lacks
    server = FastAPI(
        title="ShopLoRA", description="OpenAI-style routes over ShopLoRA's adapters", docs_url=None, redoc_url=None
    )
    server.include_router(openai_router(engine, auth=auth))  # before the mount: "/" would otherwise take /v1 too
    server.add_api_route("/docs", api_docs(server), include_in_schema=False)
    log_requests(server)
    blocks = build_app(engine, max_upload_bytes=_parse_file_size(max_file_size)).queue(
        default_concurrency_limit=concurrency, max_size=engine.max_pending
    )
    server = gr.mount_gradio_app(
        server,
        blocks,
        path="/",
        auth=lab_login(auth) if auth else None,
        max_file_size=max_file_size,
        show_error=True,
        footer_links=["api"],
        run_history=False,
        ssr_mode=False,
        theme=gr.themes.Soft(),
    )
    # Gradio checks that a file argument was uploaded (and copies nothing else into its cache) only for Blocks that
    # it launched itself; a mounted app skips the check, so a request naming /etc/... would have the file copied
    # and read. Marking the Blocks launched turns the check on; `serve.uploads` checks again before reading.
    blocks.has_launched = True
    return server


def serve(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
    max_file_size: str | int = MAX_FILE_SIZE,
) -> None:
    """Run the lab and the API until interrupted (127.0.0.1 unless another host is asked for)."""
    sock = listening_socket(host, port)  # before the URL is printed: a port in use is an error, not a dead link
    try:
        app = server_app(engine, auth=auth, max_file_size=max_file_size)
        quiet_log()
        print(f"ShopLoRA lab on http://{host}:{port}/  (OpenAI-style API at http://{host}:{port}/v1)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C is how the server is stopped, as with uvicorn.run
        pass
    finally:
        sock.close()


def quiet_log() -> None:
    """The server's log: one line per request on stderr (the /v1 lines of `log_requests`, the lab's events), not
    Gradio's and uvicorn's chatter."""
    logger = logging.getLogger("serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    # what these warn about is in the Teach tab's answer (and the adapter's record), not news for the server's log
    warnings.filterwarnings("ignore", category=LabelCoverageWarning)
    warnings.filterwarnings("ignore", category=AdaptationWarning)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for the server, or a ShopLoRAError saying why it cannot be (the port is in
    use, needs root, or the host is not this machine's). `check_port` asks the same before a model loads."""
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as error:
        raise ShopLoRAError(
            f"cannot listen on --host {host!r} ({error}); pass an address of this machine, e.g. "
            "--host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every network)"
        ) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":  # as uvicorn does: a port a stopped server left in TIME_WAIT is free (Windows would share it)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as error:
        sock.close()
        raise ShopLoRAError(_bind_problem(host, port, error)) from None
    return sock


def check_port(host: str, port: int) -> None:
    """Fail now, not after minutes of loading a model, when `serve` could not listen on `host`:`port`."""
    listening_socket(host, port).close()


def _bind_problem(host: str, port: int, error: Exception) -> str:
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another `shoplora serve`, or another program); stop it, "
            f"or pass another port, e.g. --port {port + 1 if port < 65535 else 7860}"
        )
    if code == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need root); pass --port 7860 or above 1023"
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; pass --host 127.0.0.1 (this machine only) or "
            "--host 0.0.0.0 (every network)"
        )
    return f"cannot listen on {host}:{port} ({error}); pass another --host or --port (0-65535)"


@contextmanager
def running(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` (e.g. `server_app(engine)`) on a free port in a background thread; yields its URL. For tests and
    notebooks: `with running(server_app(engine)) as url: ...`."""
    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread stopped before it started; see the log above")
            time.sleep(0.05)
        yield f"http://{host}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def log_requests(app: Any) -> None:
    """One log line per request to the API or its docs, as its answer completes: method, path, status, seconds. The
    lab's page fetches many files and polls its queue; its events are logged by the lab (serve.events) instead."""
    app.add_middleware(RequestLog)


class RequestLog:
    """ASGI middleware behind `log_requests` (plain ASGI: Starlette's BaseHTTPMiddleware would wrap the streaming
    responses and hide a client's disconnect from serve.api_stream's GenerationResponse)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/v1") or path in ("/docs", "/openapi.json")):
            await self.app(scope, receive, send)
            return
        started, status, logged = time.perf_counter(), [500], [False]

        def log_once() -> None:
            if not logged[0]:
                logged[0] = True
                seconds = time.perf_counter() - started
                log.info("%s %s %d in %.2f s", scope.get("method", ""), path, status[0], seconds)

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # logged before the last part of the body goes out: a client that has its whole answer finds the
                # line already written (logging after the send raced a client reading the log)
                log_once()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:  # no complete answer (an error, a client that went away): logged when the app gives up
            log_once()
