"""The lab and the OpenAI-style API against a launched server (tiny model): gradio_client and plain HTTP."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from prompts import ShopLoRAError, suite
from serve.engine import Engine
from serve.server import running, server_app
from serve.teach_examples import EXAMPLE_SETS, EXAMPLES_DIR, MAX_TABLE_ROWS, example_rows, file_rows, teach_rows
from serve.teach_report import TeachProgress, teach_summary
from serve.uploads import checked_upload, upload_folder
from shoplora.cli import main

PETS = suite.get_task("service-intent-petshop")
TABLE = {"headers": ["input", "output"], "data": [[e.input, e.output] for e in PETS.examples("train")[:6]]}
EMPTY = {"headers": ["input", "output"], "data": [["", ""]]}


# base, store, meta_init and url, one of each a module: tests/conftest.py
@pytest.fixture(scope="module")
def engine(base, store, meta_init):
    engine = Engine(base, store, meta_init=meta_init, max_new_tokens=8, max_pending=32)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False, download_files=False)


def teach_pets(engine: Engine, name: str, steps: int):
    """Teach the engine an adapter `name` of the petshop intents from 6 examples, as another user of the lab would."""
    return engine.teach(
        name, PETS.examples("train")[:6], instruction=PETS.spec.instruction, labels=list(PETS.spec.labels), steps=steps
    )


def chat_body(model: str, text: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_lists_adapters(client):
    rows = client.predict(api_name="/adapters")
    assert [r["name"] for r in rows][:5] == ["base", "meta-init", "pets", "replies-a", "replies-b"]
    assert next(r for r in rows if r["name"] == "pets")["labels"] == list(PETS.spec.labels)


def test_the_example_fill_gives_every_label_an_example():
    rows = example_rows(PETS, 24)
    assert len(rows) == 24 and {output for _, output in rows} == set(PETS.spec.labels)
    assert all(Counter(output for _, output in rows)[label] == 2 for label in PETS.spec.labels)


def test_teach_summary_counts_held_out_answers_and_says_when_they_are_few():
    result = {
        "name": "pets",
        "kind": "classify",
        "init": "meta",
        "steps": 5,
        "seconds": 9.0,
        "n_train": 20,
        "n_held_out": 4,
        "metrics": {"held_out_accuracy_before": 0.25, "held_out_accuracy": 0.5},
    }
    few = teach_summary(result)
    assert "| 4 | 25% (1 of 4) | 50% (2 of 4) |" in few and "one answer moves accuracy by 25 points" in few
    many = teach_summary({**result, "n_held_out": 40})
    assert "| 40 | 25% (10 of 40) | 50% (20 of 40) |" in many and "rough check" not in many


def test_teach_summary_shows_a_drop_in_red_with_a_per_label_table():
    result = {
        "name": "returns",
        "kind": "classify",
        "init": "meta",
        "steps": 24,
        "steps_kept": 0,
        "seconds": 9.0,
        "n_train": 20,
        "n_held_out": 4,
        "metrics": {
            "held_out_accuracy_before": 0.75,
            "held_out_accuracy": 0.75,
            "held_out_per_label": {
                "refund_status": {"n": 1, "right_before": 1, "right_after": 1, "answered": 4},
                "return_item": {"n": 3, "right_before": 2, "right_after": 0, "answered": 0},
            },
        },
        "warnings": [
            "held-out accuracy fell while adapting, from 0.75 before to 0.25 after the last step: "
            "the starting weights were kept"
        ],
    }
    summary = teach_summary(result)
    assert "starting weights kept" in summary
    assert '<span style="color: #b91c1c">**Warning:** held-out accuracy fell' in summary
    assert "| `return_item` | 3 | 2 | 0 | 0 |" in summary and "| `refund_status` | 1 | 1 | 1 | 4 |" in summary
    assert "24 steps in" in summary
    assert "12 of 24 steps in" in teach_summary({**result, "steps": 12, "steps_planned": 24})  # stopped early
    quiet = teach_summary({**result, "warnings": [], "steps_kept": 24})
    assert "color" not in quiet and "| `return_item`" not in quiet and "kept" not in quiet


def test_teach_then_chat_classify_and_compare(client, engine):
    summary, loss, chat_choice, compare_choice, _, stored = client.predict(
        "pets-taught", PETS.spec.instruction, ", ".join(PETS.spec.labels), TABLE, None, False, api_name="/teach"
    )
    assert "Saved **pets-taught** (classify" in summary and chat_choice["value"] == "pets-taught"
    assert loss["visible"] and len(loss["value"]["data"]) >= 1  # the training loss, step by step
    assert "pets-taught" in [row[0] for row in stored["data"]]
    assert "**Warning:**" in summary and "labels have no example" in summary  # 6 examples of 12 intents
    assert ["pets-taught", "pets-taught"] in chat_choice["choices"]
    assert "pets-taught" in [r["name"] for r in client.predict(api_name="/adapters")]

    history, box, confidences = client.predict("my dog food bag arrived torn", [], "pets-taught", 0.0, api_name="/chat")
    label = engine.classify(["my dog food bag arrived torn"], "pets-taught")[0].label
    assert history[-1]["role"] == "assistant" and f"**{label}**" in history[-1]["content"][0]["text"]
    assert box == "" and confidences["visible"] and confidences["value"]["label"] == label

    history, _, _ = client.predict("my dog food bag arrived torn", [], "pets-taught", 1.0, api_name="/chat")
    assert history[-1]["content"][0]["text"].startswith("Handing over to a human")

    columns = client.predict("my dog food bag arrived torn", "pets-taught", api_name="/compare")
    assert len(columns) == 6 and columns[4].startswith("Intent: **" + label)
    assert all(column["visible"] for column in columns[1::2])  # confidence bars under all three


def test_chat_streams_a_generated_reply_with_history(client, engine):
    history, _, confidences = client.predict("where is my parcel?", [], "replies-a", 0.3, api_name="/chat")
    expected = engine.generate([{"role": "user", "content": "where is my parcel?"}], "replies-a").text
    assert history[-1]["content"][0]["text"] == (expected or "(no answer)") and not confidences["visible"]
    history, _, _ = client.predict("thanks", history, "replies-a", 0.3, api_name="/chat")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"input": "a", "output": "damaged_bag"}\n{oops\n', "bad.jsonl, line 2: bad JSON"),
        ('{"input": "a", "output": "not_a_label"}\n{"input": "b", "output": "damaged_bag"}\n', "not one of the labels"),
        ('{"input": "a", "output": "damaged_bag"}\n', "a single example"),
        ("", "bad.jsonl is empty"),
    ],
)
def test_bad_uploads_give_a_message(client, tmp_path, content, problem):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(AppError) as error:
        client.predict(
            "bad-one", "Route it.", ", ".join(PETS.spec.labels), EMPTY, handle_file(str(bad)), False, api_name="/teach"
        )
    assert problem in str(error.value) and "Traceback" not in str(error.value) and "/tmp/" not in str(error.value)


def raw_teach(url: str, file_argument: dict) -> str:
    """Call the teach endpoint over plain HTTP as a hostile client would, with a crafted file argument; returns the
    event stream's text."""
    data = ["stolen", "Route it.", "", EMPTY, file_argument, False, "tiny-meta", 8, 0, 5e-4, "auto"]
    event = httpx.post(f"{url}gradio_api/call/teach", json={"data": data}, timeout=30).json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/teach/{event}", timeout=60).text


def test_teach_never_reads_a_server_file_it_is_handed(url, engine, tmp_path):
    secret = tmp_path / "secret.csv"  # outside Gradio's upload folder, as /usr/share/... would be
    secret.write_text("top_secret_column,password_hash\nalice,5f4dcc3b5aa765d61d8327deb882cf99\n")
    for path in (str(secret), f"{upload_folder()}/../{secret.relative_to('/')}"):  # also a ../ way out
        stream = raw_teach(url, {"path": path, "meta": {"_type": "gradio.FileData"}})
        assert "event: error" in stream and "not uploaded by a user" in stream  # Gradio's check, turned on
        assert "top_secret" not in stream and "5f4dcc" not in stream and "stolen" not in engine.names()
    assert secret.exists()  # refused, not consumed


def test_teach_refuses_a_link_out_of_the_upload_folder(url, tmp_path):
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"input": "alice", "output": "top_secret_value"}\n' * 3)
    link_dir = upload_folder() / f"shoplora-test-{tmp_path.name}"
    link_dir.mkdir(parents=True, exist_ok=True)
    try:
        (link_dir / "examples.jsonl").symlink_to(secret)
        stream = raw_teach(url, {"path": str(link_dir / "examples.jsonl"), "meta": {"_type": "gradio.FileData"}})
        assert "not uploaded by a user" in stream and "top_secret" not in stream
    finally:
        shutil.rmtree(link_dir)


def test_an_upload_is_removed_after_teaching_and_quoted_only_briefly(client, tmp_path):
    bad = tmp_path / "long.jsonl"
    bad.write_text(
        json.dumps({"input": "a", "output": "x" * 500 + "SECRET_TAIL"})
        + "\n"
        + json.dumps({"input": "b", "output": "damaged_bag"})
        + "\n"
    )
    before = set(upload_folder().rglob("long.jsonl"))
    with pytest.raises(AppError) as error:
        client.predict(
            "long-one", "Route it.", ", ".join(PETS.spec.labels), EMPTY, handle_file(str(bad)), False, api_name="/teach"
        )
    assert "not one of the labels" in str(error.value) and "SECRET_TAIL" not in str(error.value)
    assert set(upload_folder().rglob("long.jsonl")) <= before  # the new upload is gone from the temp folder


def test_checked_upload_refuses_paths_outside_the_folder_and_files_over_the_cap(tmp_path, monkeypatch):
    """The lab's own check behind Gradio's: only regular files in the upload folder, within the cap."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    (tmp_path / "uploads" / "abc").mkdir(parents=True)
    upload = tmp_path / "uploads" / "abc" / "big.jsonl"
    upload.write_bytes(b"x" * 2000)
    assert checked_upload(upload, max_bytes=2000) == upload.resolve()
    with pytest.raises(ShopLoRAError, match="over the lab's limit"):
        checked_upload(upload, max_bytes=1999)
    with pytest.raises(ShopLoRAError, match="only files uploaded through the lab"):
        checked_upload(tmp_path / "elsewhere.jsonl")
    with pytest.raises(ShopLoRAError, match="upload it again"):
        checked_upload(tmp_path / "uploads" / "abc" / "removed.jsonl")
    (tmp_path / "uploads" / "abc" / "link.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    (tmp_path / "elsewhere.jsonl").write_text("secret")
    with pytest.raises(ShopLoRAError, match="only files uploaded through the lab"):
        checked_upload(tmp_path / "uploads" / "abc" / "link.jsonl")
    with pytest.raises(ShopLoRAError, match="only files uploaded through the lab"):
        checked_upload(tmp_path / "uploads" / "abc" / ".." / ".." / "elsewhere.jsonl")


@pytest.mark.parametrize(
    "name, instruction, table, problem",
    [
        ("../evil", "Route it.", TABLE, "is not allowed"),
        ("pets", "Route it.", TABLE, "already exists"),
        ("fine-name", "  ", TABLE, "instruction is empty"),
        ("fine-name", "Route it.", EMPTY, "no examples"),
    ],
)
def test_bad_teach_forms_give_a_message(client, name, instruction, table, problem):
    with pytest.raises(AppError, match=problem):
        client.predict(name, instruction, "", table, None, False, api_name="/teach")


def test_chat_errors_are_messages(client):
    with pytest.raises(AppError, match="type a message first"):
        client.predict("  ", [], "base", 0.3, api_name="/chat")
    with pytest.raises(AppError, match="no adapter called 'gone'"):  # any name is sent; the engine checks it
        client.predict("hi", [], "gone", 0.3, api_name="/chat")


def test_openai_models_and_completions(url, engine):
    models = httpx.get(url + "v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]][:3] == ["base", "meta-init", "pets"]
    reply = httpx.post(
        url + "v1/chat/completions", json=chat_body("replies-b", "hello", max_tokens=5), timeout=60
    ).json()
    expected = engine.generate([{"role": "user", "content": "hello"}], "replies-b", max_new_tokens=5).text
    assert reply["object"] == "chat.completion" and reply["model"] == "replies-b"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": expected}
    assert reply["usage"]["prompt_tokens"] > 0
    scored = httpx.post(
        url + "v1/chat/completions", json=chat_body("pets", "skip my next box", abstain_below=1.0), timeout=60
    ).json()
    assert scored["choices"][0]["message"]["content"] == "abstain"
    assert scored["shoplora"]["best_label"] in PETS.spec.labels and len(scored["shoplora"]["scores"]) == 12


def stream_chunks(url: str, body: dict) -> list[dict]:
    with httpx.stream("POST", url + "v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


@pytest.mark.parametrize("max_tokens", [None, 2])
def test_openai_stream(url, engine, max_tokens):
    chunks = stream_chunks(url, chat_body("replies-a", "hello", stream=True, max_tokens=max_tokens))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    whole = engine.generate([{"role": "user", "content": "hello"}], "replies-a", max_new_tokens=max_tokens)
    assert text.strip() == whole.text
    assert chunks[-1]["choices"][0]["finish_reason"] == whole.finish_reason  # "length" when the cap was hit
    if max_tokens == 2:
        assert whole.finish_reason == "length"


def test_openai_stream_of_a_classify_adapter_carries_its_scores(url):
    chunks = stream_chunks(url, chat_body("pets", "skip my next box", stream=True))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) in PETS.spec.labels
    assert chunks[-1]["shoplora"]["label"] in PETS.spec.labels and len(chunks[-1]["shoplora"]["scores"]) == 12


@pytest.mark.parametrize(
    "body, status, problem",
    [
        (chat_body("nope", "hi"), 404, "no adapter called 'nope'"),
        ({"messages": []}, 400, "'model' is required"),
        ({"model": "base"}, 400, "'messages' is required"),
        (chat_body("base", "hi", n=2), 400, "only n=1"),
        (chat_body("base", "hi", max_tokens=0), 400, "'max_tokens' must be a positive integer"),
        ({"model": "base", "messages": [{"role": "robot", "content": "x"}]}, 400, "role 'robot'"),
        ([1, 2], 400, "must be a JSON object"),
    ],
)
def test_openai_errors_are_json(url, body, status, problem):
    response = httpx.post(url + "v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status
    assert problem in response.json()["error"]["message"]


def test_openai_bad_json_body(url):
    response = httpx.post(url + "v1/chat/completions", content=b"{nope", timeout=60)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_parallel_api_requests_over_three_adapters_match_alone(url):
    requests = [(["replies-a", "replies-b", "pets"][i % 3], f"order {i} has not arrived") for i in range(20)]

    def ask(request):
        reply = httpx.post(url + "v1/chat/completions", json=chat_body(*request), timeout=120)
        return reply.json()["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        parallel = list(pool.map(ask, requests))
    assert parallel == [ask(request) for request in requests]


def test_auth_protects_page_and_api(engine):
    with running(server_app(engine, auth=("support", "s3cret"))) as url:
        assert httpx.get(url + "v1/models").status_code == 401
        assert httpx.get(url + "v1/models", headers={"Authorization": "Bearer support:s3cret"}).status_code == 200
        assert httpx.get(url + "v1/models", auth=("support", "s3cret")).status_code == 200
        assert httpx.get(url + "config").status_code == 401  # the page's config needs the login too
        assert httpx.post(url + "login", data={"username": "support", "password": "s3cret"}).status_code == 200


def test_the_lab_login_is_throttled_by_user_name():
    from serve.logins import LoginThrottle, lab_login

    now = [0.0]
    check = lab_login(("support", "s3cret"), LoginThrottle(clock=lambda: now[0]))
    assert check("support", "s3cret") and not check("support", "guess")
    for guess in range(4):
        assert not check("support", f"guess{guess}")
    assert not check("support", "s3cret")  # 5 failures in a minute: refused even with the right password
    assert check("other", "x") is False  # another name is not held up by them (and is simply wrong)
    now[0] += 61
    assert check("support", "s3cret")


def test_serve_command_checks_its_arguments(capsys):
    assert main(["serve", "--auth", "nopassword"]) == 2
    assert "--auth takes USER:PASS" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0 and "127.0.0.1" in capsys.readouterr().out


def ask(url: str, body: dict) -> httpx.Response:
    return httpx.post(url + "v1/chat/completions", json=body, timeout=60)


def test_openai_retrieve_a_model(url):
    model = httpx.get(url + "v1/models/pets", timeout=60).json()  # the openai client's models.retrieve("pets")
    assert (model["id"], model["object"], model["shoplora"]["kind"]) == ("pets", "model", "classify")
    missing = httpx.get(url + "v1/models/nope", timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_openai_developer_message_is_the_system_message(url):
    def answer(role: str) -> str:
        messages = [{"role": role, "content": "Answer in French."}, {"role": "user", "content": "hello"}]
        return ask(url, {"model": "meta-init", "messages": messages}).json()["choices"][0]["message"]["content"]

    assert answer("developer") == answer("system")


def test_openai_stop_sequences(url, a_stop_in_the_middle):
    body = chat_body("replies-a", "hello")
    text = ask(url, body).json()["choices"][0]["message"]["content"]
    stop = a_stop_in_the_middle(text)
    expected = text[: text.find(stop)].strip()
    cut = ask(url, {**body, "stop": [stop, "never-there"]}).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == (expected, "stop")
    chunks = stream_chunks(url, {**body, "stream": True, "stop": stop})
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip() == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    error = ask(url, {**body, "stop": ["a", "b", "c", "d", "e"]}).json()["error"]
    assert error["param"] == "stop" and "at most 4" in error["message"]


def test_openai_stream_usage_comes_last_when_asked(url):
    body = chat_body("replies-a", "hello", max_tokens=5)
    usage = ask(url, body).json()["usage"]
    chunks = stream_chunks(url, {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage  # as counted without streaming
    assert chunks[-2]["choices"][0]["finish_reason"] and all(c["usage"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in stream_chunks(url, {**body, "stream": True}))
    refused = ask(url, {**body, "stream_options": {"include_usage": True}})  # without "stream": true
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "stream_options"


def test_the_official_openai_client_works_against_the_server(url):
    openai = pytest.importorskip("openai", reason="the official client is in the dev extra: pip install -e '.[dev]'")
    client = openai.OpenAI(base_url=url + "v1", api_key="none", max_retries=0)
    assert client.models.retrieve("pets").id == "pets" and "pets" in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    messages = [{"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": "hello"}]
    reply = client.chat.completions.create(model="replies-a", messages=messages, max_tokens=5)
    assert reply.choices[0].message.role == "assistant" and reply.usage.completion_tokens >= 1
    stream = client.chat.completions.create(
        model="replies-a", messages=messages, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage.total_tokens == reply.usage.total_tokens and chunks[-1].choices == []
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == reply.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="replies-a", prompt="hello")


def test_gradio_client_reaches_an_adapter_taught_after_it_connected(url, engine):
    """The page's dropdown choices are those of its build; a client connected before the adapter existed (here: taught
    by another user through the engine) still chats with it and compares it."""
    early = Client(url, verbose=False, download_files=False)
    teach_pets(engine, "taught-later", steps=2)
    label = engine.classify(["my dog food bag arrived torn"], "taught-later")[0].label
    history, _, confidences = early.predict(
        text="my dog food bag arrived torn", history=[], model="taught-later", abstain_below=0.0, api_name="/chat"
    )
    assert f"**{label}**" in history[-1]["content"][0]["text"] and confidences["value"]["label"] == label
    columns = early.predict(text="my dog food bag arrived torn", model="taught-later", api_name="/compare")
    assert columns[4].startswith(f"Intent: **{label}")
    about, _ = early.predict(model="taught-later", api_name="/describe")
    assert "classified on its own" in about  # chat says that it does not read the conversation


def test_teach_streams_named_phases_and_the_loss_and_takes_advanced_options(client, engine):
    job = client.submit(
        name="pets-advanced",
        instruction=PETS.spec.instruction,
        labels=", ".join(PETS.spec.labels),
        examples={"headers": ["input", "output"], "data": [[e.input, e.output] for e in PETS.examples("train")[:20]]},
        file=None,
        init="none",
        steps=3,
        learning_rate=1e-3,
        calibration="never",
        api_name="/teach",
    )
    summary, loss = job.result()[:2]
    said = [update[0] for update in job.outputs()]
    for phase in ("Reading the examples", "Scoring before", "Training: step 1 of 3", "Scoring after", "Saving"):
        assert any(phase in text for text in said), (phase, said)
    assert "Saved **pets-advanced**" in summary and "from the standard init" in summary
    assert [step for step, _ in loss["value"]["data"]] == [1, 2, 3]
    record = engine.store.show("pets-advanced")
    assert (record.init, record.fit.steps_run, record.fit.inner_loop.lr) == ("standard", 3, 1e-3)
    assert record.contextual_calibration is False


@pytest.mark.parametrize(
    "arguments, problem",
    [
        ({"init": "/etc"}, "no init called '/etc'"),  # a name only: a request never names a folder to read
        ({"calibration": "sometimes"}, "calibration must be one of auto, always, never"),
        ({"epochs": -1}, "epochs must be a whole number"),
        ({"steps": -1}, "steps must be a whole number"),
        ({"learning_rate": -0.1}, "lr must be a number > 0"),
    ],
)
def test_advanced_options_are_checked(client, engine, arguments, problem):
    with pytest.raises(AppError, match=problem):
        client.predict(
            name="pets-checked",
            instruction="Route it.",
            labels="",
            examples=TABLE,
            file=None,
            **arguments,
            api_name="/teach",
        )
    assert "pets-checked" not in engine.names()


def test_the_engine_takes_only_inits_it_lists(engine):
    assert engine.inits() == ["tiny-meta", "none"]  # no shipped init is made for the tiny model
    for init in ("/etc", "../inits/tiny-meta", "smollm2-135m-meta"):
        with pytest.raises(ShopLoRAError, match="no init called"):
            engine.teach("pets-init", PETS.examples("train")[:4], instruction="x", init=init)


def test_teach_refuses_rows_and_a_file_together(client, tmp_path):
    upload = tmp_path / "more.jsonl"
    upload.write_text('{"input": "a", "output": "damaged_bag"}\n{"input": "b", "output": "bulk_discount"}\n')
    with pytest.raises(AppError, match="both in the table"):
        client.predict("both-given", "Route it.", "", TABLE, handle_file(str(upload)), False, api_name="/teach")


def test_table_and_file_rows(tmp_path):
    assert teach_rows([["hi", "x"], ["", ""]], None) == [{"input": "hi", "output": "x"}]
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"input": f"m{i}", "output": "b"}) + "\n" for i in range(MAX_TABLE_ROWS + 1)))
    with pytest.raises(ShopLoRAError, match="shoplora adapt mine.jsonl"):
        file_rows(big, "mine.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(ShopLoRAError, match="mine.jsonl, line 1") as error:
        file_rows(bad, "mine.jsonl")
    assert str(tmp_path) not in str(error.value)  # the user's file name, not the server's copy


@pytest.mark.parametrize("key", list(EXAMPLE_SETS))
def test_example_datasets_give_every_label_an_example(key):
    example = EXAMPLE_SETS[key]
    rows = file_rows(EXAMPLES_DIR / example.file, example.file, list(example.labels))
    assert 16 <= len(rows) <= 40 and {e.output for e in rows} == set(example.labels)


def test_download_a_zip_of_the_peft_folder_and_delete(client, engine, tmp_path):
    from peft import PeftConfig

    teach_pets(engine, "to-delete", steps=1)
    button, about = client.predict(name="to-delete", api_name="/download")
    assert button["label"].startswith("Download to-delete.zip") and "to-delete" in about
    served = httpx.get(button["value"]["url"], timeout=30)  # as the browser fetches it
    assert served.status_code == 200
    (tmp_path / "got.zip").write_bytes(served.content)
    with zipfile.ZipFile(tmp_path / "got.zip") as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path)
    assert {"to-delete/adapter_config.json", "to-delete/adapter_model.safetensors", "to-delete/shoplora.json"} <= names
    assert PeftConfig.from_pretrained(tmp_path / "to-delete").peft_type == "LORA"
    with pytest.raises(AppError, match="no stored adapter called"):
        client.predict(name="../pets", api_name="/download")
    answer = client.predict(name="to-delete", api_name="/delete")
    assert answer[0] == "Deleted **to-delete**." and "to-delete" not in engine.names()
    assert "to-delete" not in [row[0] for row in answer[-1]["data"]]
    with pytest.raises(AppError, match="no stored adapter called 'to-delete'"):
        client.predict(name="to-delete", api_name="/delete")
    with pytest.raises(AppError, match="no stored adapter called 'base'"):
        client.predict(name="base", api_name="/delete")


def test_api_docs_page_and_named_parameters(url, client):
    docs = httpx.get(url + "docs")
    assert docs.status_code == 200 and "/v1/chat/completions" in docs.text and "?view=api" in docs.text
    assert "cdn" not in docs.text.lower()  # works offline
    assert httpx.get(url + "openapi.json").json()["paths"].keys() >= {"/v1/models", "/v1/chat/completions"}
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/chat", "/teach", "/compare", "/download", "/delete", "/describe"} <= endpoints.keys()
    for api_name in ("/chat", "/teach", "/compare", "/download", "/delete", "/describe"):
        for part in endpoints[api_name]["parameters"] + endpoints[api_name]["returns"]:
            name = part.get("parameter_name") or part["label"]
            assert not name.endswith("_") and not name.startswith(("value_", "param_")), (api_name, name)


def test_the_server_log_has_one_line_per_request_and_no_traceback_for_user_errors(url, client, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="serve"):
        with pytest.raises(AppError):
            client.predict("  ", [], "base", 0.3, api_name="/chat")
        httpx.get(url + "v1/models")
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("serve")]
    assert any(line.startswith("lab chat: refused in") and "type a message first" in line for line in lines)
    assert sum(line.startswith("GET /v1/models 200 in") for line in lines) == 1
    assert "Traceback" not in capfd.readouterr().err


def test_the_loss_plot_is_emptied_not_hidden_before_a_teach_s_first_step():
    # hiding the drawn plot made Gradio's front end throw (null.offsetWidth) when a second teach began
    live = TeachProgress()
    before = live.plot()
    assert "visible" not in before.constructor_args and before.value["data"] == []
    live.progress(1, 8, 2.5)
    after = live.plot()
    assert after.constructor_args["visible"] is True and after.value["data"] == [[1, 2.5]]


def test_a_value_gradio_refuses_is_a_clear_error_and_one_log_line(client, caplog, capfd):
    # the Chat tab's hand-over Slider runs from 0 to 1: Gradio refuses 2.5 before the handler runs, and printed a
    # traceback for it
    with caplog.at_level(logging.INFO, logger="serve"):
        with pytest.raises(AppError, match="greater than maximum value 1"):
            client.predict("where is my parcel?", [], "pets", 2.5, api_name="/chat")
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("serve")]
    assert [line for line in lines if line.startswith("lab chat: refused")] == [
        "lab chat: refused: Value 2.5 is greater than maximum value 1.0."
    ]
    assert "Traceback" not in capfd.readouterr().err
