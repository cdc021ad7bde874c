"""Label names for clusters of messages (adapters.discover): the base model names each cluster from its most typical
messages (greedy, a few tokens, two worked answers in the prompt), turned into a valid, unused label; a name that
shares no word with the messages gives way to the cluster's most particular words."""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from prompts import Example, TaskSpec

from .adapter import ABSTAIN
from .base import Base
from .generation import generate

NAME_TOKENS = 12  # greedy tokens for a proposed label name
LABEL_CHARS = 40
NAMING = TaskSpec(
    "discover-name",
    "service",
    "generate",
    "You name customer-support intents. Read the customer messages and reply with one short intent name of two or "
    "three words in snake_case, such as track_order or refund_request. Reply with the name only.",
)


def propose_labels(base: Base, groups: Sequence[Sequence[str]], *, taken: set[str] = frozenset()) -> list[str]:
    """A label name for each group of messages, written by the base model (no adapter) and made a valid label that
    no other group and none of `taken` uses."""
    answers = generate(
        base, NAMING, [_naming_input(group) for group in groups], shots=NAMING_SHOTS, max_new_tokens=NAME_TOKENS
    )
    used = set(taken) | {ABSTAIN}
    names = []
    for number, (answer, group) in enumerate(zip(answers, groups), start=1):
        name = slug(answer)
        if not grounded(name, group):
            name = keywords(group, groups) or f"new_need_{number}"
        name = unique(name, used)
        used.add(name)
        names.append(name)
    return names


def _naming_input(messages: Sequence[str]) -> str:
    return "Messages:\n" + "\n".join(f"- {text[:200]}" for text in messages)


# Two worked answers in the prompt: a 135M model asked only by the instruction answers like a support agent
# ("i_m_sorry_for_the"); with them it answers with a name.
NAMING_SHOTS = (
    Example(
        _naming_input(
            [
                "where is my parcel? it's been a week",
                "my order still hasn't arrived",
                "can you tell me when my package will come",
            ]
        ),
        "track_order",
    ),
    Example(
        _naming_input(
            [
                "I want my money back for the blender",
                "please refund the shoes I returned",
                "how long does a refund take",
            ]
        ),
        "refund_request",
    ),
)


def grounded(name: str, messages: Sequence[str]) -> bool:
    """Whether a proposed name shares a word (its first 5 letters) with the messages: a name that does not (a shot's
    answer copied, an agent's reply) says nothing about them."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if not name or name in {shot.output for shot in NAMING_SHOTS}:
        return False
    stems = {word[:5] for word in re.findall(r"[a-z]{3,}", " ".join(messages).lower())}
    return any(word[:5] in stems for word in name.split("_") if len(word) >= 3 and word not in ENGLISH_STOP_WORDS)


def keywords(group: Sequence[str], groups: Sequence[Sequence[str]], n: int = 3) -> str:
    """The words most particular to `group` among `groups` (frequent in it, in few others), as a label."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    def words(messages: Sequence[str]) -> Counter[str]:
        return Counter(
            w for text in messages for w in set(re.findall(r"[a-z]{3,}", text.lower())) if w not in ENGLISH_STOP_WORDS
        )

    mine = words(group)
    spread = Counter(w for other in groups for w in words(other))
    ranked = sorted(mine, key=lambda w: (-mine[w] / spread[w] * mine[w], w))
    return "_".join(ranked[:n])


def slug(text: str) -> str:
    """A generated answer as a label: its first line, lowercase snake_case words, at most LABEL_CHARS characters."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    words = re.findall(r"[a-z0-9]+", line.lower().replace("intent name", " "))
    name = ""
    for word in words[:5]:
        if len(name) + len(word) + 1 > LABEL_CHARS:
            break
        name = f"{name}_{word}" if name else word
    return name


def unique(name: str, used: set[str]) -> str:
    if name not in used:
        return name
    number = 2
    while f"{name}_{number}" in used:
        number += 1
    return f"{name}_{number}"
