"""The OpenAI-style API under 1,000 generated requests (hypothesis): valid and broken bodies, odd unicode, wrong
types and huge numbers. Every answer is below 500, every error is OpenAI-shaped JSON, and the server still answers
a normal request afterwards. Slow (a minute or two on 2 cores): `pytest -m slow tests/test_serve_fuzz.py`;
SHOPLORA_FUZZ_REQUESTS=20000 hunts longer. A failure prints the request and a @reproduce_failure blob."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from urllib.parse import quote

import httpx
import pytest

pytest.importorskip("hypothesis")  # the `dev` extra; without it this file is skipped, not an import error
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from serve.server import running, server_app  # noqa: E402
from serve.engine import Engine  # noqa: E402

pytestmark = pytest.mark.slow
REQUESTS = int(os.environ.get("SHOPLORA_FUZZ_REQUESTS", "1000"))  # fewer for a quick look, more for a long hunt
BROKEN = "half"  # a stored adapter folder cut short, as a crash leaves it: requests to it must be 4xx too
MISFIT = "misfit"  # a stored adapter whose config says another rank than its tensors: fails after its LoRA is added

# -- what a client may send ----------------------------------------------------------------------------------------
SERVED = ["base", "meta-init", "pets", "replies-a", "replies-b"]
odd_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=30)  # "Cs": lone surrogates
said = st.text(st.characters(), min_size=1, max_size=60).filter(str.strip)  # any Unicode a user may type
huge = st.sampled_from([0, -1, 2**31, 2**63, 10**30, -(10**30), 1e308, -1e308, float("inf"), float("nan"), 1e-320])
number = st.integers() | st.floats() | huge | st.booleans() | st.none() | odd_text
json_value = st.recursive(
    st.none() | st.booleans() | number | odd_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def conversation(draw) -> list[dict]:
    """What a chat client sends: an optional system turn, earlier exchanges, and the user's message last."""
    turns = []
    if draw(st.booleans()):
        turns.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(said)})
    for user, assistant in draw(st.lists(st.tuples(said, said), max_size=2)):
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    text = draw(said)
    parts = draw(st.booleans())  # content as a list of text parts, as newer clients send it
    return [*turns, {"role": "user", "content": [{"type": "text", "text": text}] if parts else text}]


# Bodies a client means to be valid, with any Unicode, huge limits and every option: these reach the model.
valid_body = st.fixed_dictionaries(
    {"model": st.sampled_from([*SERVED, MISFIT]), "messages": conversation()},
    optional={
        "max_tokens": st.integers(1, 10**30),
        "stream": st.booleans(),
        "stop": said | st.lists(said, min_size=1, max_size=4),
        "abstain_below": st.floats(0, 1),
        "temperature": st.floats(0, 2),
        "n": st.just(1),
        "user": said,
    },
)
# Bodies with any field wrong: types, shapes, names, roles, numbers.
role = st.sampled_from(["system", "developer", "user", "assistant", "tool"]) | json_value
content = (
    odd_text
    | st.lists(st.fixed_dictionaries({"type": st.just("text") | json_value, "text": json_value}), max_size=3)
    | json_value
)
message = st.fixed_dictionaries({"role": role, "content": content}) | json_value
wrong_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from([*SERVED, BROKEN, MISFIT, "nope", "../pets", ""]) | json_value,
        "messages": st.lists(message, max_size=4) | json_value,
    },
    optional={
        "max_tokens": number,
        "max_completion_tokens": number,
        "stream": st.booleans() | json_value,
        "stop": odd_text | st.lists(odd_text, max_size=5) | json_value,
        "n": number,
        "abstain_below": number,
        "temperature": number,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_value}) | json_value,
    },
)
raw = st.binary(max_size=200) | st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b"{",
        b'{"model": "base"}',
        b"\xff\xfe",
        b'{"max_tokens": ' + b"9" * 5000 + b"}",
        b'{"model": "base", "messages": [{"role": "user", "content": "hi"}], "n": ' + b"1" * 5000 + b"}",
    ]
)


def _encoded(value) -> bytes:
    return json.dumps(value).encode()  # ASCII escapes keep lone surrogates; NaN and Infinity as Python writes them


def chat(bodies) -> st.SearchStrategy:
    return st.tuples(st.just("POST"), st.just("v1/chat/completions"), bodies)


calls = st.one_of(
    chat(valid_body.map(_encoded)),
    chat(valid_body.map(_encoded)),  # listed twice: half of all requests
    chat(wrong_body.map(_encoded)),
    chat(json_value.map(_encoded) | raw),
    st.tuples(st.just("POST"), st.just("v1/models"), wrong_body.map(_encoded) | raw),
    st.tuples(st.just("GET"), st.just("v1/models"), st.just(b"")),
    st.tuples(st.just("GET"), st.text(max_size=20).map(lambda name: "v1/models/" + quote(name, safe="")), st.just(b"")),
)


# -- the server ----------------------------------------------------------------------------------------------------
# base, store and meta_init, one of each a module: tests/conftest.py
@pytest.fixture(scope="module")
def engine(base, store, meta_init):
    (store.root / BROKEN).mkdir()
    (store.root / BROKEN / "adapter_config.json").write_text("{}")
    misfit = shutil.copytree(store.path("replies-a").resolve(), store.root / MISFIT)
    config = json.loads((misfit / "adapter_config.json").read_text())
    (misfit / "adapter_config.json").write_text(json.dumps({**config, "r": 8}))
    # short answers: the point is the many requests
    engine = Engine(base, store, meta_init=meta_init, max_new_tokens=4, max_pending=64)
    yield engine
    engine.close()


def check_answer(response: httpx.Response, sent: bytes) -> None:
    """Below 500; an error is OpenAI's JSON shape; an event stream holds only JSON events and [DONE]."""
    assert response.status_code < 500, (response.status_code, response.text[:300], sent[:300])
    kind = response.headers.get("content-type", "")
    if response.status_code >= 400:
        assert kind.startswith("application/json"), (response.status_code, kind, response.text[:300], sent[:300])
        assert isinstance(response.json()["error"]["message"], str)
    elif kind.startswith("text/event-stream"):
        events = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events, sent[:300]
        for event in events:  # an error after the headers travels as an event: JSON too
            if event != "[DONE]":
                json.loads(event)
    elif response.status_code == 200:
        response.json()


def test_a_thousand_fuzzed_requests_get_json_answers_and_no_5xx(engine):
    with running(server_app(engine)) as url, httpx.Client(base_url=url, timeout=120) as http:
        loras = set(engine.base.peft.peft_config) if engine.base.peft is not None else set()
        answers: Counter = Counter()  # (method, route, status) -> requests

        @settings(
            max_examples=REQUESTS,
            deadline=None,
            database=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(call=calls)
        def answered(call: tuple[str, str, bytes]) -> None:
            method, path, content = call
            response = http.request(
                method, path, content=content or None, headers={"content-type": "application/json"} if content else {}
            )
            answers[method, path.split("/")[1], response.status_code] += 1
            check_answer(response, content)

        answered()
        # the generated bodies must reach the model often, not only the parser's refusals
        assert answers["POST", "chat", 200] >= REQUESTS // 20, answers
        question = [{"role": "user", "content": "where is my parcel?"}]
        normal = http.post("v1/chat/completions", json={"model": "replies-a", "max_tokens": 4, "messages": question})
        assert normal.status_code == 200, normal.text
        assert isinstance(normal.json()["choices"][0]["message"]["content"], str)
        assert http.get("v1/models").status_code == 200
    # adapters loaded, evicted and failing to load many times over leave no more LoRAs on the base than the engine
    # holds: its max_loaded stored adapters and the meta init
    assert len(set(engine.base.peft.peft_config) - loras - {"_empty"}) <= engine.max_loaded + 1
