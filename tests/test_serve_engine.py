"""The serving engine on the tiny model: adapters by name, LRU, mixed batches, isolation under concurrency, limits."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from adapters import AdapterStore
from adapters.generation import base_only, generate
from adapters.metrics import softmax
from adapters.scoring import label_scores
from prompts import ShopLoRAError, suite
from serve.engine import (
    BASE,
    META_INIT,
    Engine,
    EngineBusy,
    EngineError,
    UnknownAdapter,
    chat_spec,
    parse_messages,
    stop_sequences,
)
from serve.stops import StopCutter

PETS = suite.get_task("service-intent-petshop")
INPUTS = [e.input for e in PETS.examples("test")[:8]]


# base, store and meta_init, one of each a module: tests/conftest.py
@pytest.fixture(scope="module")
def engine(base, store, meta_init):
    engine = Engine(base, store, meta_init=meta_init, max_new_tokens=12, max_pending=64)
    yield engine
    engine.close()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_names_and_descriptions(engine):
    assert engine.names() == [BASE, META_INIT, "pets", "replies-a", "replies-b"]
    pets = engine.describe("pets")
    assert pets.kind == "classify" and pets.labels == PETS.spec.labels
    assert engine.describe(META_INIT).init == "tiny-meta"
    with pytest.raises(UnknownAdapter, match="no adapter called 'nope'; served: base, meta-init, pets"):
        engine.describe("nope")
    with pytest.raises(UnknownAdapter):
        engine.describe("../etc")  # names are validated before any path is built


def test_base_answers_as_the_bare_model(engine, base):
    expected = generate(base, chat_spec(), INPUTS[:2], max_new_tokens=12)
    assert [engine.generate(user(text)).text for text in INPUTS[:2]] == expected
    assert engine.generate(user(INPUTS[0]), BASE).text == expected[0]


def test_adapters_differ_so_mixups_would_show(engine):
    answers = {
        name: engine.generate(user(INPUTS[0]), name).text for name in (BASE, META_INIT, "replies-a", "replies-b")
    }
    assert len(set(answers.values())) == 4, answers


def test_mixed_batch_equals_requests_alone(engine):
    requests = [(user(text), name) for text, name in zip(INPUTS, [BASE, "replies-a", META_INIT, "replies-b"] * 2)]
    alone = [engine.generate(messages, name).text for messages, name in requests]
    assert engine.generate_batch(requests) == alone


def test_stream_matches_the_whole_answer(engine):
    whole = engine.generate(user(INPUTS[1]), "replies-a").text
    pieces = list(engine.generate(user(INPUTS[1]), "replies-a", stream=True))
    assert "".join(pieces).strip() == whole and len(pieces) > 1


def test_an_abandoned_stream_frees_the_engine(engine):
    stream = engine.generate(user(INPUTS[2]), "replies-b", stream=True, max_new_tokens=12)
    next(stream)
    stream.close()
    assert engine.generate(user(INPUTS[2]), "replies-b").text  # the worker moved on
    assert engine.pending == 0


def test_a_stream_closed_before_its_first_piece_stops_the_generation(engine, monkeypatch):
    import serve.worker as worker_module

    generated = []
    original = worker_module.stream_prompt
    monkeypatch.setattr(
        worker_module,
        "stream_prompt",
        lambda *a, **k: (generated.append(piece) or piece for piece in original(*a, **k)),
    )
    stream = engine.generate(user(INPUTS[2]), "replies-b", stream=True, max_new_tokens=12)
    stream.close()  # before reading anything: the generator's own `finally` never runs
    assert engine.generate(user(INPUTS[2]), "replies-b", max_new_tokens=12).text
    assert len(generated) <= 1  # the closed stream's pieces (the second request does not stream): one at most


def test_history_and_system_message_are_part_of_the_prompt(engine):
    plain = engine.generate(user(INPUTS[0]), META_INIT).text
    system = engine.generate([{"role": "system", "content": "Answer in French."}, *user(INPUTS[0])], META_INIT).text
    history = engine.generate(
        [*user("hello"), {"role": "assistant", "content": "Hi! How can I help?"}, *user(INPUTS[0])], META_INIT
    ).text
    assert plain != system and plain != history


def test_classify_adapter_scores_labels_and_abstains(engine, base):
    predictions = engine.classify(INPUTS[:3], "pets")
    assert all(p.label in PETS.spec.labels and sum(p.scores.values()) == pytest.approx(1.0) for p in predictions)
    assert [p.label for p in engine.classify(INPUTS[:3], "pets", abstain_below=1.01)] == ["abstain"] * 3
    reply = engine.generate(user(INPUTS[0]), "pets")
    # alone vs in a batch of 3: other padding widths, so equal up to float rounding, not bit for bit
    assert reply.text == predictions[0].label and reply.prediction.scores == pytest.approx(predictions[0].scores)
    with pytest.raises(EngineError, match="not a classify adapter"):
        engine.classify(INPUTS[:1], "replies-a")


def test_compare_asks_all_three_the_adapters_task(engine, base):
    out = engine.compare(INPUTS[0], "pets")
    assert set(out) == {BASE, META_INIT, "pets"}
    with base.lock, base_only(base):
        bare = label_scores(base.model, base.tokenizer, PETS.spec, INPUTS[:1], calibrate=True)[0]
    # the base column really is the bare model, asked zero-shot as adapt would score it (calibrated: no examples)
    assert out[BASE].scores == pytest.approx(dict(zip(PETS.spec.labels, softmax(bare))))
    assert out["pets"].label == engine.classify(INPUTS[:1], "pets")[0].label
    texts = engine.compare(INPUTS[0], "replies-a")
    assert texts["replies-a"] == engine.generate(user(INPUTS[0]), "replies-a").text
    assert all(isinstance(v, str) for v in texts.values())


def test_lru_keeps_at_most_max_loaded(base, store, meta_init):
    engine = Engine(base, store, meta_init=meta_init, max_loaded=2, max_new_tokens=8)
    try:
        first = engine.generate(user(INPUTS[0]), "replies-a").text
        engine.generate(user(INPUTS[0]), "replies-b")
        engine.classify(INPUTS[:1], "pets")
        assert engine.loaded() == ["replies-b", "pets"]
        assert engine.generate(user(INPUTS[0]), "replies-a").text == first  # reloaded, same answer
        assert engine.loaded() == ["pets", "replies-a"]
        batch = engine.generate_batch([(user(t), n) for t, n in zip(INPUTS, ["replies-a", "replies-b", BASE])])
        assert batch[0] == first and len(engine.loaded()) == 2
    finally:
        engine.close()


def test_twenty_parallel_requests_over_three_adapters_match_their_answers_alone(engine):
    requests = [(INPUTS[i % len(INPUTS)], ["replies-a", "replies-b", "pets"][i % 3]) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        parallel = list(pool.map(lambda r: engine.generate(user(r[0]), r[1]).text, requests))
    alone = [engine.generate(user(text), name).text for text, name in requests]
    assert parallel == alone


def test_busy_past_the_queue_limit(base, store, meta_init):
    engine = Engine(base, store, meta_init=meta_init, max_pending=1, max_new_tokens=4)
    waiting = []
    try:
        with base.lock:  # the model is busy: the first request waits for it, the second is turned away at once
            thread = threading.Thread(target=lambda: waiting.append(engine.generate(user("hi"), "replies-a")))
            thread.start()
            while engine.pending == 0:
                pass
            with pytest.raises(EngineBusy, match="busy .* try again"):
                engine.generate(user("hello"), "replies-b")
            with pytest.raises(EngineBusy):
                engine.classify(["hello"], "pets")
        thread.join()
        assert waiting and waiting[0].adapter == "replies-a"
        assert engine.generate(user("hello"), "replies-b").text is not None  # free again
    finally:
        engine.close()


def test_answers_stop_at_the_token_and_time_limits(base, store, meta_init):
    engine = Engine(base, store, meta_init=meta_init, max_new_tokens=6, time_limit=1e-9)
    try:
        reply = engine.generate(user(INPUTS[0]), "replies-a", max_new_tokens=500)  # capped at 6, then cut by time
        assert len(base.tokenizer(reply.text)["input_ids"]) <= 2
    finally:
        engine.close()
    capped = Engine(base, store, meta_init=meta_init, max_new_tokens=3)
    try:
        assert capped.generate(user(INPUTS[0]), "replies-a", max_new_tokens=500).finish_reason == "length"
    finally:
        capped.close()


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([], "non-empty list"),
        ("hi", "non-empty list"),
        ([{"role": "user"}], "'role' and 'content'"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last message must be the user's"),
        ([{"role": "user", "content": "   "}], "empty"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "text parts"),
        ([{"role": "user", "content": "x" * 9000}], "over the limit"),
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}],
            "system message must come before",
        ),
    ],
)
def test_bad_messages_are_clear_errors(engine, messages, problem):
    with pytest.raises(EngineError, match=problem):
        engine.generate(messages, "replies-a")


def test_parse_messages_pairs_turns_and_joins_parts():
    system, shots, text = parse_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "assistant", "content": "Welcome!"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "where is "}, {"type": "text", "text": "it"}]},
            {"role": "user", "content": "my parcel"},
        ]
    )
    assert system == "Be brief." and [(s.input, s.output) for s in shots] == [("hi", "hello")]
    assert text == "where is it\n\nmy parcel"


def test_no_meta_init_is_explained(base, store):
    engine = Engine(base, store, meta_init=None)
    assert META_INIT not in engine.names()
    with pytest.raises(UnknownAdapter, match="without a meta init"):
        engine.generate(user("hi"), META_INIT)
    assert "no meta init" in engine.compare("hi", None)[META_INIT]
    default = Engine(base, store)  # the shipped default init is for the embedded model, not this one
    assert META_INIT not in default.names() and "no shipped default init" in default.served_init.problem


def test_a_broken_stored_adapter_is_reported_as_broken_not_missing(base, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "adapter_config.json").write_text("{}")  # what an old crash might have left
    engine = Engine(base, AdapterStore(tmp_path), meta_init=None)
    with pytest.raises(EngineError, match="incomplete") as caught:
        engine.generate(user("hi"), "half")
    assert not isinstance(caught.value, UnknownAdapter)
    engine.close()


def test_requests_to_an_adapter_that_fails_to_load_leave_no_lora_behind(base, store, tmp_path, random_adapter):
    """Each request to a stored adapter whose tensors do not fit its config (here: the rank edited) loads it again
    and fails; none may leave its LoRA on the shared base (the server grew ~11 MB a request)."""
    import json

    broken, source = AdapterStore(tmp_path), random_adapter(base, PETS.spec, seed=5)
    path = broken.save(source, "acme")
    source.unload()
    config = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, "r": 8}))
    engine = Engine(base, broken, meta_init=None)
    before = list(base.peft.peft_config)
    for _ in range(3):
        with pytest.raises(ShopLoRAError, match="has shape"):
            engine.classify(["where is my parcel"], "acme")
        with pytest.raises(ShopLoRAError, match="has shape"):
            engine.generate(user("where is my parcel"), "acme")
    assert list(base.peft.peft_config) == before
    engine.close()


def test_teach_saves_serves_and_refuses_overwrites(base, tmp_path, meta_init):
    store = AdapterStore(tmp_path / "store")
    engine = Engine(base, store, meta_init=meta_init, max_new_tokens=4)
    steps = []
    try:
        result = engine.teach(
            "pets-new",
            PETS.examples("train")[:16],
            instruction=PETS.spec.instruction,
            labels=PETS.spec.labels,
            steps=3,
            progress=lambda s, t, loss: steps.append((s, t)),
        )
        outputs = [e.output for e in PETS.examples("train")[:16]]
        repeated = {label for label in outputs if outputs.count(label) >= 2}
        assert result["kind"] == "classify" and result["init"] == "tiny-meta"
        assert result["n_held_out"] == max(3, len(repeated))  # stratified: every repeated label held out once
        assert {"held_out_accuracy_before", "held_out_accuracy"} <= set(result["metrics"])
        assert steps[-1][1] == 3 and "pets-new" in engine.names() and engine.loaded() == ["pets-new"]
        assert engine.classify(INPUTS[:1], "pets-new")[0].label in PETS.spec.labels
        with pytest.raises(EngineError, match="already exists"):
            engine.teach("pets-new", PETS.examples("train")[:4], instruction="x")
        with pytest.raises(EngineError, match="reserved"):
            engine.teach("base", PETS.examples("train")[:4], instruction="x")
        from prompts import DataError

        with pytest.raises(DataError, match="not one of the labels"):
            engine.teach(
                "other",
                [{"input": "a", "output": "x"}, {"input": "b", "output": "y"}],
                instruction="x",
                labels=["x", "z"],
            )
        assert store.names() == ["pets-new"]
    finally:
        engine.close()


def test_mixed_lora_matches_each_adapter_alone(engine, base):
    from serve.mixed import mixed_lora

    with base.lock:
        names = [engine.adapter(n).peft_name for n in ("replies-a", "replies-b")]
        ids = torch.tensor([base.tokenizer(text)["input_ids"][:6] for text in INPUTS[:3]])
        base.peft.eval()
        with torch.inference_mode():
            with mixed_lora(base.peft, [names[0], None, names[1]]):
                mixed = base.peft(input_ids=ids).logits
            alone = []
            for row, name in enumerate([names[0], None, names[1]]):
                if name is None:
                    with base_only(base):
                        alone.append(base.peft(input_ids=ids[row : row + 1]).logits[0])
                else:
                    base.peft.set_adapter(name)
                    alone.append(base.peft(input_ids=ids[row : row + 1]).logits[0])
    assert torch.allclose(mixed, torch.stack(alone), atol=1e-4)
    assert not torch.allclose(alone[0], alone[1], atol=1e-2)  # the rows really differ


def test_developer_messages_are_system_messages():
    developer = parse_messages([{"role": "developer", "content": "Be brief."}, *user("hi")])
    assert developer == parse_messages([{"role": "system", "content": "Be brief."}, *user("hi")])
    assert developer[0] == "Be brief."


def test_stop_sequences_cut_answers_streamed_or_not(engine, a_stop_in_the_middle):
    whole = engine.generate(user(INPUTS[1]), "replies-a")
    stop = a_stop_in_the_middle(whole.text)
    expected = whole.text[: whole.text.find(stop)].strip()
    reply = engine.generate(user(INPUTS[1]), "replies-a", stop=[stop, "never-there"])
    assert (reply.text, reply.finish_reason) == (expected, "stop")
    stream = engine.generate(user(INPUTS[1]), "replies-a", stream=True, stop=stop)
    assert "".join(stream).strip() == expected and stream.reply.finish_reason == "stop"
    # the start of a stop sequence that never comes is held back, then sent at the end
    stream = engine.generate(user(INPUTS[1]), "replies-a", stream=True, stop=whole.text[-2:] + "\x07")
    assert "".join(stream).strip() == whole.text and stream.reply.finish_reason == whole.finish_reason


def test_stop_cutter_holds_back_only_what_may_start_a_stop_sequence():
    cutter = StopCutter(["</end>", "##"])
    assert [cutter.feed(piece) for piece in ["ab", "c<", "/e", "nd>x"]] == ["ab", "c", "", ""] and cutter.hit
    cutter = StopCutter(["</end>"])
    assert [cutter.feed(piece) for piece in ["a<", "b"]] == ["a", "<b"] and not cutter.hit and not cutter.held


@pytest.mark.parametrize("stop", [["a", "b", "c", "d", "e"], "", [""], [1], 5])
def test_bad_stop_sequences_are_clear_errors(stop):
    with pytest.raises(EngineError, match="'stop' must be a non-empty string or a list of at most 4"):
        stop_sequences(stop)
    assert stop_sequences(None) == () and stop_sequences("x") == ("x",)
