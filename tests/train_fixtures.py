"""Hand-made preference and SFT rows for the training-stage tests (a task a micro model learns in a few steps).

Each prompt is a TL;DR-style post of words from one of two topics; the preferred response repeats the topic's
"good" word, the dispreferred one a "bad" word. The reward model only has to learn good vs bad words.
"""
from __future__ import annotations

import random

import datasets

from drdo_lib.data.formats import TLDR_TEMPLATE

TOPICS = {"cats": ["cat", "purr", "whisker", "mouse"], "dogs": ["dog", "bark", "leash", "bone"]}
GOOD = ["great", "clear", "short"]
BAD = ["awful", "vague", "rambling"]
FILLER = ["the", "a", "my", "is", "was", "and", "so", "very"]


def _post(rng: random.Random, topic: str) -> str:
    words = [rng.choice(TOPICS[topic] + FILLER) for _ in range(rng.randint(6, 10))]
    return " ".join(words)


def preference_rows(n: int, seed: int = 0, split: str = "train") -> datasets.Dataset:
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for i in range(n):
        topic = rng.choice(sorted(TOPICS))
        prompt = TLDR_TEMPLATE.format(subreddit=topic, title=rng.choice(TOPICS[topic]), post=_post(rng, topic))
        key = rng.choice(TOPICS[topic])
        chosen = f" {key} {rng.choice(GOOD)}"
        rejected = f" {key} {rng.choice(BAD)} {rng.choice(FILLER)}"
        rows.append(dict(id=f"{split}-{i}", prompt=prompt, chosen=chosen, rejected=rejected, confidence=7.0,
                         strength=2.0, edit_distance=0.5, source="test", split=split))
    return datasets.Dataset.from_list(rows)


def sft_rows(n: int, seed: int = 0) -> datasets.Dataset:
    rng = random.Random(f"{seed}-sft")
    rows = []
    for i in range(n):
        topic = rng.choice(sorted(TOPICS))
        prompt = TLDR_TEMPLATE.format(subreddit=topic, title=rng.choice(TOPICS[topic]), post=_post(rng, topic))
        rows.append(dict(id=f"sft-{i}", prompt=prompt, response=f" {TOPICS[topic][0]} {rng.choice(GOOD)}", split="train"))
    return datasets.Dataset.from_list(rows)


def corpus() -> list[str]:
    words = [w for ws in TOPICS.values() for w in ws] + GOOD + BAD + FILLER + sorted(TOPICS)
    return [" ".join(words), TLDR_TEMPLATE.format(subreddit="x", title="y", post="z")]
