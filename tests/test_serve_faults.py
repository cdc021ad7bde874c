"""What a served model meets besides polite clients: clients that leave mid-answer, broken or hostile request bodies,
password guessing, and a login that must stay out of `ps`. Tiny model; no test measures time."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from serve.api import openai_router
from serve.engine import Engine
from serve.logins import LoginThrottle
from serve.server import running, server_app
from shoplora.cli import main

ERROR_KEYS = {"message", "type", "param", "code"}
LONG = 200  # tokens an answer may take: far more than any test lets it run


# base, store and url, one of each a module: tests/conftest.py
@pytest.fixture(scope="module")
def engine(base, store):
    engine = Engine(base, store, meta_init=None, max_new_tokens=LONG, max_pending=32)
    yield engine
    engine.close()


class Talker:
    """The tiny model made to talk until its token limit, observably: every generated token is counted, each one is
    the same word with a leading space (so every token is a streamed piece and none ends the answer), and
    `hold_at(n)` parks the generation inside the n-th token until `release()`, so a test decides where in the
    answer the client leaves."""

    def __init__(self, base, monkeypatch):
        self.tokens = 0
        self.parked, self._go = threading.Event(), threading.Event()
        self._hold_at = None
        word = base.tokenizer(" the", add_special_tokens=False)["input_ids"]
        assert len(word) == 1, word
        forward = base.model.forward

        def talking(*args, **kwargs):
            self.tokens += 1
            if self.tokens == self._hold_at:
                self.parked.set()
                self._go.wait(timeout=60)
            out = forward(*args, **kwargs)
            out.logits[:, -1, :] = float("-inf")
            out.logits[:, -1, word[0]] = 0.0
            return out

        monkeypatch.setattr(base.model, "forward", talking)

    def hold_at(self, token: int) -> None:
        self._hold_at = token

    def release(self) -> None:
        self._go.set()


@pytest.fixture
def talker(base, monkeypatch):
    talker = Talker(base, monkeypatch)
    yield talker
    talker.release()  # a failed test must not leave the model parked


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def chat_body(model: str, text: str, **extra) -> dict:
    return {"model": model, "messages": user(text), **extra}


def until(condition, what: str, seconds: float = 20.0) -> None:
    """Wait for `condition()` (another thread's doing); fail naming `what` if it never comes."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


def recorded_jobs(engine, monkeypatch) -> list:
    jobs = []
    submit = engine.worker.submit
    monkeypatch.setattr(engine.worker, "submit", lambda job: (jobs.append(job), submit(job))[1])
    return jobs


# -- abandoned streams: the engine --------------------------------------------------------------------------------
@pytest.fixture
def own_engine(base, store):
    """An engine whose close() waits for its worker: after it, every token of the test's requests is counted."""
    engine = Engine(base, store, meta_init=None, max_new_tokens=LONG)
    yield engine
    engine.close()


def test_talker_runs_to_the_token_limit_when_read(own_engine, talker):
    pieces = list(own_engine.generate(user("where is my parcel?"), "replies-a", stream=True, max_new_tokens=20))
    assert talker.tokens == 20 and "".join(pieces).split() == ["the"] * 20  # what the tests below cut short


def test_a_stream_closed_mid_answer_stops_at_the_token_in_flight(own_engine, talker):
    talker.hold_at(4)
    stream = own_engine.generate(user("where is my parcel?"), "replies-a", stream=True)
    assert next(stream).strip() == "the"
    assert talker.parked.wait(timeout=60)
    stream.close()
    talker.release()
    own_engine.close()  # waits for the worker
    assert talker.tokens == 4  # the one being computed when the reader left, and not one more


def test_a_stream_dropped_unread_stops_its_generation(own_engine, talker):
    stream = own_engine.generate(user("where is my parcel?"), "replies-a", stream=True)
    del stream  # neither read nor closed: a Gradio event or HTTP response that never started
    own_engine.close()
    assert talker.tokens <= 1


def test_a_stream_abandoned_while_it_waits_costs_no_tokens(own_engine, base, talker):
    with base.lock:  # the model is busy: the request waits
        stream = own_engine.generate(user("where is my parcel?"), "replies-a", stream=True)
        stream.close()
    own_engine.close()
    assert talker.tokens == 0
    assert own_engine.pending == 0


# -- abandoned streams: over HTTP ---------------------------------------------------------------------------------
def test_a_client_leaving_mid_stream_stops_the_generation(url, engine, talker, monkeypatch):
    jobs = recorded_jobs(engine, monkeypatch)
    talker.hold_at(4)
    body = chat_body("replies-a", "where is my parcel?", stream=True)
    with httpx.stream("POST", url + "v1/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()  # one iterator, kept: dropping a half-read one closes the connection at once
        while '"content": " the"' not in next(lines):
            pass  # up to the first piece of the answer
        assert talker.parked.wait(timeout=60), talker.tokens
    # the connection is closed: the server must stop the model while the token in flight is computed
    assert jobs[-1].abandoned.wait(timeout=20), "the server did not notice the client leave"
    talker.release()
    until(lambda: engine.pending == 0, "the engine finishing the abandoned request")
    assert talker.tokens == 4  # the one being computed when the client left, and not one more


def test_a_client_leaving_while_its_stream_waits_costs_no_tokens(url, engine, base, talker, monkeypatch):
    jobs = recorded_jobs(engine, monkeypatch)
    with base.lock:  # another answer holds the model: ours waits behind it
        body = chat_body("replies-a", "where is my parcel?", stream=True)
        with httpx.stream("POST", url + "v1/chat/completions", json=body, timeout=60) as response:
            first = next(response.iter_lines())
            assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"  # sent before any token
        assert jobs[-1].abandoned.wait(timeout=20), "the server did not notice the client leave"
    until(lambda: engine.pending == 0, "the engine dropping the abandoned request")
    assert talker.tokens == 0


# -- request bodies -----------------------------------------------------------------------------------------------
def post(url: str, content, **headers) -> httpx.Response:
    return httpx.post(url + "v1/chat/completions", content=content, headers=headers, timeout=60)


def assert_openai_error(response: httpx.Response, status: int, problem: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS and problem in error["message"]
    assert error["param"] == param
    return error


@pytest.mark.parametrize(
    "content",
    [
        b'{"model": "base", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
        b'{"model": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}',
    ],
    ids=["in-a-message", "in-the-model"],
)
def test_a_lone_surrogate_is_a_json_400(url, content):
    assert_openai_error(post(url, content), 400, "lone surrogate")


@pytest.mark.parametrize(
    "content", [b"[" * 100_000, b'{"model": "base", "messages": ' + b"[" * 100_000], ids=["top", "inside"]
)
def test_deeply_nested_json_is_a_json_400(url, content):
    assert_openai_error(post(url, content), 400, "nests JSON too deeply")


@pytest.mark.parametrize("field", ["max_tokens", "temperature"])
def test_a_number_too_long_to_read_is_a_json_400(url, field):
    # Python refuses to convert integers of over 4300 digits (a ValueError, not a JSONDecodeError): it was a 500
    content = b'{"model": "base", "messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (
        field.encode(),
        b"9" * 5000,
    )
    assert_openai_error(post(url, content), 400, "a number too long to read")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_is_a_json_413(url, chunked):
    body = json.dumps(chat_body("base", "x" * 1_100_000)).encode()
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    assert_openai_error(post(url, content), 413, "over the limit of 1000000 bytes")


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5"])
def test_abstain_below_outside_0_1_names_the_field(url, value):
    response = httpx.post(url + "v1/chat/completions", json=chat_body("pets", "hi", abstain_below=value), timeout=60)
    assert_openai_error(response, 400, "'abstain_below' must be a number between 0 and 1", param="abstain_below")


def test_an_unexpected_failure_is_a_json_500(url, engine, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "generate", broken)
    response = httpx.post(url + "v1/chat/completions", json=chat_body("base", "hi"), timeout=60)
    error = assert_openai_error(response, 500, "RuntimeError")
    assert error["type"] == "server_error" and "disk on fire" not in error["message"]  # details stay in the log


@pytest.mark.parametrize(
    "method, path, problem",
    [
        ("POST", "v1/completions", "legacy text completions are not served"),
        ("GET", "v1/nope", "Invalid URL (GET /v1/nope)"),
        ("POST", "v1/embeddings", "POST /v1/chat/completions"),
    ],
)
def test_unknown_routes_under_v1_are_openai_404s(url, method, path, problem):
    response = httpx.request(method, url + path, json=chat_body("base", "hi"), timeout=60)
    assert assert_openai_error(response, 404, problem)["code"] == "unknown_url"


# -- logins -------------------------------------------------------------------------------------------------------
def test_failed_logins_are_throttled_per_client(engine):
    with running(server_app(engine, auth=("support", "s3cret"))) as url:
        wrong, right = {"Authorization": "Bearer support:guess"}, {"Authorization": "Bearer support:s3cret"}
        assert httpx.get(url + "v1/models", headers=right).status_code == 200
        for _ in range(5):
            assert httpx.get(url + "v1/models", headers=wrong).status_code == 401
        refused = httpx.post(url + "v1/chat/completions", headers=wrong, json=chat_body("base", "hi"))
        error = assert_openai_error(refused, 429, "too many failed logins")
        assert error["code"] == "too_many_failed_logins" and 0 < int(refused.headers["Retry-After"]) <= 60
        # locked out, even with the right password: a guesser cannot tell a right guess
        assert httpx.get(url + "v1/models", headers=right).status_code == 429


def test_login_throttle_forgets_failures_after_its_window():
    now = [1000.0]
    throttle = LoginThrottle(attempts=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        now[0] += 1
    assert throttle.retry_after("10.0.0.1") == pytest.approx(57.0)  # until the first failure is a minute old
    assert throttle.retry_after("10.0.0.2") == 0  # per client
    now[0] += 57
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")  # the right login clears the count
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0


def test_the_router_takes_a_throttle(engine):
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(openai_router(engine, auth=("a", "b"), throttle=LoginThrottle(attempts=1)))
    with running(app) as url:
        assert httpx.get(url + "v1/models", auth=("a", "wrong")).status_code == 401
        assert httpx.get(url + "v1/models", auth=("a", "b")).status_code == 429


@pytest.fixture
def served(base, monkeypatch):
    """`shoplora serve` up to the point it would start the server: the login it would serve with."""
    import adapters
    import serve.server

    calls = []
    monkeypatch.setattr(adapters, "load_base", lambda *args, **kwargs: base)
    monkeypatch.setattr(serve.server, "serve", lambda engine, **kwargs: calls.append(kwargs))
    monkeypatch.delenv("SHOPLORA_AUTH", raising=False)
    return calls


def serve_args(tmp_path, *extra: str) -> list[str]:
    return ["serve", "--init", "none", "--store", str(tmp_path / "store"), *extra]


def test_serve_reads_the_login_from_a_file_or_the_environment(served, tmp_path, monkeypatch, capsys):
    login = tmp_path / "login"
    login.write_text("support:s3:cret\n")
    assert main(serve_args(tmp_path, "--auth-file", str(login))) == 0
    assert served[-1]["auth"] == ("support", "s3:cret")
    monkeypatch.setenv("SHOPLORA_AUTH", "env-user:env-pass")
    assert main(serve_args(tmp_path)) == 0
    assert served[-1]["auth"] == ("env-user", "env-pass")
    assert main(serve_args(tmp_path, "--auth", "flag:pass")) == 0  # the flag still works, and wins
    assert served[-1]["auth"] == ("flag", "pass") and "visible to other users" in capsys.readouterr().err
    monkeypatch.delenv("SHOPLORA_AUTH")
    assert main(serve_args(tmp_path)) == 0 and served[-1]["auth"] is None


@pytest.mark.parametrize(
    "content, args, problem",
    [
        ("nopassword\n", ["--auth-file", "{file}"], "--auth-file {file} takes USER:PASS"),
        (None, ["--auth-file", "{file}"], "cannot read --auth-file {file}"),
        ("a:b", ["--auth-file", "{file}", "--auth", "a:b"], "not both"),
    ],
    ids=["no-colon", "missing", "both"],
)
def test_bad_auth_files_are_one_line_errors(served, tmp_path, capsys, content, args, problem):
    file = tmp_path / "login"
    if content is not None:
        file.write_text(content)
    assert main(serve_args(tmp_path, *[arg.format(file=file) for arg in args])) == 2
    assert problem.format(file=file) in capsys.readouterr().err and not served


def test_a_bad_login_in_the_environment_names_the_variable(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHOPLORA_AUTH", "nopassword")
    assert main(serve_args(tmp_path)) == 2
    assert "SHOPLORA_AUTH takes USER:PASS" in capsys.readouterr().err and not served
