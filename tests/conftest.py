"""Shared fixtures: a tiny random Llama with a real chat-template tokenizer, built offline in about a second."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
