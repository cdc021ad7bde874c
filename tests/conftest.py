"""Shared fixtures: a tiny random Llama with a real chat-template tokenizer, built offline in about a second."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import save_init

# Tests never reach the network; a stray hub call fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The tiny model's matmuls are too small to split across threads: one thread is faster, and it does not stall
# (30x seen) when another process holds the other core. Tests of the embedded model ask for all cores
# (`all_threads` below).
torch.set_num_threads(1)

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _training_text() -> list[str]:
    from prompts import suite

    lines = []
    for task in suite.tasks():
        lines.append(task.spec.instruction + " " + " ".join(task.spec.labels))
        lines += [e.input + " " + e.output for e in task.examples("train")[:40]]
    return lines


@pytest.fixture(scope="module")
def all_threads():
    """All cores for the tests of a real model, one thread again afterwards."""
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(1)


def build_tiny_model(path: Path, chat_template: str | None = CHATML) -> Path:
    """Save a 2-layer random Llama and a byte-level BPE tokenizer trained on suite text to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(_training_text(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.3,
    )  # with 0.02 the tied head cannot make any token likely: nothing learns
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_base(tiny_model_dir):
    from adapters import load_base

    return load_base(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_base):
    return tiny_base.tokenizer


@pytest.fixture(scope="session")
def tiny_model_without_chat_template(tmp_path_factory) -> Path:
    """The tiny model with a tokenizer that has no chat template (the plain-text prompt format)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-plain"), chat_template=None)


# -- serving: stores of random adapters and a stand-in meta init (tests/test_serve_*.py) ----------------------------
def _random_adapter(base, spec, seed: int, scale: float = 0.4):
    """An adapter with large random LoRA weights: its answers differ clearly from the base and from other seeds, so
    a request served with the wrong adapter shows."""
    from adapters import Adapter
    from adapters.lora import LoraSettings, load_lora_state
    from adapters.record import AdapterRecord

    adapter = Adapter(base, spec, None, LoraSettings(r=4), AdapterRecord(spec=spec, init="random"))
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(t.shape, generator=generator) * scale for key, t in adapter.state().items()}
    with base.lock:
        load_lora_state(base.peft, state, adapter.peft_name)
    return adapter


def _make_store(base, root: Path):
    from adapters import AdapterStore
    from prompts import TaskSpec, suite

    store = AdapterStore(root)
    specs = {
        "replies-a": TaskSpec("a", "custom", "generate", "Reply to the customer kindly."),
        "replies-b": TaskSpec("b", "custom", "generate", "Reply to the customer in one sentence."),
        "pets": suite.get_task("service-intent-petshop").spec,
    }
    for seed, (name, spec) in enumerate(specs.items(), start=1):
        adapter = _random_adapter(base, spec, seed)
        store.save(adapter, name)
        adapter.unload()
    return store


def _make_init(base, path: Path) -> Path:
    from adapters.record import InitRecord
    from serve.engine import chat_spec

    adapter = _random_adapter(base, chat_spec(), seed=99, scale=0.2)
    save_init(adapter, path, InitRecord(name="tiny-meta"))
    adapter.unload()
    return path


@pytest.fixture(scope="session")
def random_adapter():
    """`random_adapter(base, spec, seed, scale=0.4)`: an unsaved adapter with large random LoRA weights."""
    return _random_adapter


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    """The tiny model loaded for one test module (tiny_base is the session's): the adapters a module adapts, loads or
    serves stay on its base's PEFT model, and another module's tests must not meet them."""
    from adapters import load_base

    return load_base(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def store(base, tmp_path_factory):
    """The module's AdapterStore of three adapters with random weights: replies-a and replies-b (generate) and pets
    (classify, the service-intent-petshop labels)."""
    return _make_store(base, tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def meta_init(base, tmp_path_factory) -> Path:
    """The module's tiny stand-in for the shipped meta init (there is none for the tiny model)."""
    return _make_init(base, tmp_path_factory.mktemp("inits") / "tiny-meta")


@pytest.fixture(scope="module")
def url(engine):
    """The module's `engine` (each module sets its own limits) served over HTTP, as `shoplora serve` does."""
    from serve.server import running, server_app

    with running(server_app(engine)) as url:
        yield url


def _a_stop_in_the_middle(text: str) -> str:
    middle = next(i for i in range(len(text) // 2, len(text)) if not text[i].isspace())
    return text[middle : middle + 3]


@pytest.fixture(scope="session")
def a_stop_in_the_middle():
    """`a_stop_in_the_middle(text)`: three characters from the second half of `text`, starting with a visible one
    (so it cannot match inside the whitespace a whole answer is stripped of)."""
    return _a_stop_in_the_middle
