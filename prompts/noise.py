"""Surface variety for generated text: typos, casing and punctuation, so a task cannot be solved by string match."""

from __future__ import annotations

import random


def typo(rng: random.Random, word: str) -> str:
    """One keyboard slip in `word`: a swapped, dropped or doubled letter (words under 4 letters stay intact)."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    slip = rng.choice(("swap", "drop", "double"))
    if slip == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if slip == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def noisy(rng: random.Random, text: str, typo_rate: float = 0.04, casing: bool = True) -> str:
    """`text` as a hurried customer types it: a few typos, sometimes all lower case, a varied ending."""
    words = [typo(rng, w) if rng.random() < typo_rate else w for w in text.split(" ")]
    out = " ".join(words)
    if casing:
        style = rng.random()
        if style < 0.35:
            out = out.lower()
        elif style < 0.40:
            out = out.upper()
    if out and out[-1] in ".!?" and rng.random() < 0.3:
        out = out[:-1] + rng.choice(("", "!!", "??", "...", " :(", " thx"))
    return out


def pick(rng: random.Random, *options: str) -> str:
    """One of several phrasings of the same thing."""
    return rng.choice(options)
