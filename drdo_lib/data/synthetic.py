"""The synthetic testbed: a seeded summarisation task with a known true reward r*(x, y).

The ``mini`` profile trains tiny models from scratch on CPU, so it needs a task that a ~1M-parameter GPT learns in a
minute or two, and whose *true* reward is known exactly (so every trained policy can be scored without a judge).
This module generates such a task and writes it in the published schemas of the paper's datasets
(``openai/summarize_from_feedback`` comparisons, ``CarperAI/openai_summarize_tldr`` SFT rows, ``cnn_dailymail``
articles), so that exactly the same loaders and split builder run on it as on the real data.

The task
--------
A *post* is 30–50 words: ``k`` ∈ {3, …, 6} distinct **key words** of one topic (the subreddit) placed among
**filler** words. The title is 1–3 filler words plus the first key word. Key and filler words come from disjoint,
fixed word lists (:data:`TOPIC_WORDS`, :data:`FILLER_WORDS`), so the vocabulary has a few hundred readable words and
a TL;DR prompt ``SUBREDDIT: r/{topic}\\nTITLE: {title}\\nPOST: {post}\\nTL;DR:`` has at most 64 whitespace tokens.
The ideal summary lists the post's key words in the order they appear, and nothing else (≤ 16 words).

The true reward (documented here and in notebook 01)
----------------------------------------------------
For a post x (its ``POST:`` text if a full TL;DR prompt is given) and a summary y, with P the post's words,
K the distinct key words of the post and Y the words of y (whitespace split)::

    coverage = |set(Y) ∩ K| / |K|                       fraction of the post's key words the summary mentions
    invented = #{w ∈ Y : w ∉ P}                         words absent from the post (counted with repetition)
    excess   = max(0, |Y| − (|K| + length_slack))       words beyond a budget of |K| + 2
    r*(x, y) = w_coverage · coverage − w_invented · invented − w_excess · excess

with defaults ``w_coverage = 4``, ``w_invented = 1``, ``w_excess = 0.5``, ``length_slack = 2``: the ideal summary
scores 4, an empty one 0, and each invented word costs a quarter of the full coverage bonus.

What is generated
-----------------
* **SFT rows** (:meth:`SyntheticTestbed.sft_rows`): ``{id, prompt, label}``; the label is a *reference writer's*
  summary. Writers have a quality ``q ~ U(ref_quality_min, 1)`` (``ref_quality_min = 1``: a single writer): each key
  word is kept with probability ``q · ref_keep`` (at least one kept); with probability ``ref_filler + (1 − q)/2`` one
  or two post filler words are inserted, with probability ``ref_invent + (1 − q)/2`` one invented key word of the same
  topic. The SFT policy imitates this mixture, so it sits below the ideal summary (r* = 4): headroom.
* **Comparison rows** (:meth:`SyntheticTestbed.comparison_rows`): ``{info, summaries, choice, worker, batch,
  split, extra: {confidence}}``. With ``pair_source = "sft_like"`` (the default) both summaries of a pair are drawn
  from the same writers as the SFT targets, i.e. they look like what the SFT policy produces; a fraction
  ``near_pair_fraction`` of pairs are one small edit apart instead (small edit distance, small reward gap), and a
  fraction ``tie_fraction`` are built with *equal* r* (a kept key word swapped for a dropped one, or two words
  swapped: r* ignores order), so p* = ½ exactly; tied pairs are labelled once. ``pair_source = "perturbation"`` is
  the first testbed's generator (edits of the ideal summary of quality U(0.15, 1), ``ref_pair_fraction`` of pairs
  with the reference), kept as a labelled setting: preference training on it did not move r* above SFT.
  Labels follow **Bradley–Terry on r*** with a temperature:
  ``p* = P(summary 1 preferred) = σ((r*_1 − r*_0) / temperature)`` and ``choice ~ Bernoulli(p*)``, so a larger
  ``temperature`` makes labels noisier and pairs with ``p* ≈ ½`` are genuinely non-deterministic. The labeller's
  *strength* is ``u = 2|p* − ½| + N(0, confidence_noise²)`` binned into {1, 2, 3, 4} at 0.25, 0.5, 0.75 (it depends
  on the pair, not on which way the coin fell), written in the published directional 1–9 form:
  ``confidence = 5 − strength`` if ``choice == 0`` else ``5 + strength``. A fraction ``repeat_fraction`` of pairs
  are labelled again by a second worker (independent draw), as in the real data.
* **OOD rows** (:meth:`SyntheticTestbed.ood_rows`): ``{id, article, highlights}`` "news" articles of 45–58 words
  (longer than posts) whose 5–7 key words mix two topics (an unseen topic mixture); highlights are the key words
  (``ood_reference = "ideal"``, r*-optimal: every policy loses to them) or a reference writer's summary
  (``"noisy"``, realistic quality), split in two lines, each ending with " .".

Learnability (measured, SFT only; 2026-11-27)
---------------------------------------------
A GPT-2 of 2 layers × 128 dims (0.44M parameters, word-level vocabulary, batch 32, AdamW, prompt-masked loss)
trained on 4,000 SFT rows of this testbed (seed 0), scored by greedy decoding on 300 held-out prompts
(references: r* ≈ 2.9; ideal: 4; empty summary: 0):

=====================================  ======  =====  ========  ========
setting                                steps   lr     mean r*   coverage
=====================================  ======  =====  ========  ========
default posts (30–50 words, 3–6 keys)  1200    1e-3   1.46      0.48
shorter posts (16–28 words, 2–5 keys)  1200    1e-3   2.05      0.54
default posts                          1313    3e-3   −0.43     0.08
same, 4 layers (0.84M parameters)      1200    1e-3   −0.45     0.11
=====================================  ======  =====  ========  ========

The learning rate matters most (3e-3 never leaves the "guess topic words" plateau in this budget; it does after
~2,500 steps on a GPU), and deeper models need more steps. With ``torch.set_num_threads(2)`` on an otherwise
quiet 16-core host the 2-layer model ran ≈ 525 SFT steps/min on the default posts (1313 steps in 150 s; the 4-layer
one 683), so 1,200 steps is ≈ 2.3 min on 2 cores; shorter posts
(``min_post_words=16, max_post_words=28, min_keys=2, max_keys=5``) are both faster per step and learnt sooner.

Preference learning moves r* above SFT: from the shorter-posts SFT model above (r* 2.05), 150 DPO steps
(β = 0.1, batch 32, 4,000 testbed comparisons, D_all) gave r* 2.20 at lr 5e-5 (coverage 0.54 → 0.68; greedy
summaries beat SFT's on 37 % of prompts, lose on 20 %), while lr 1e-4 / 2e-4 over-lengthened the summaries
(mean 5.5 / 7.0 words, more invented words) and lowered r* to 1.75 / 1.31: the length/invention penalties of r* are
what a method that over-optimises the preference data pays for.

The recalibrated testbed (the ``mini`` profile since 2026-11-30; measured with ``/tmp``-run scripts of that day,
2 busy CPU cores, seed 0, 300 held-out prompts; r* of greedy / T = 0.7 samples):

==============================================================  ==========  =========================
setting                                                         SFT r*      DPO (β 0.1, 120 steps) − SFT
==============================================================  ==========  =========================
30–50-word posts, writers q ~ U(0.3, 1), sft_like pairs, T 0.25  −0.86/−1.27  −0.86 ± 0.13 / −1.02 ± 0.11
16–28-word posts, writers q ~ U(0.7, 1), sft_like pairs, T 0.25  2.15/1.54    +0.36 ± 0.11 / +0.11 ± 0.10
==============================================================  ==========  =========================

With long posts the small model never learns to copy key words from the post, and DPO then teaches it "more topic
words", i.e. invented ones; with shorter posts SFT copies and DPO moves r* up (the gate of :mod:`drdo_lib.gate`).

Usage::

    from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed
    tb = SyntheticTestbed(SyntheticConfig(seed=0, temperature=1.0))
    rows = tb.comparison_rows(1000, split="train")     # raw summarize_from_feedback rows
    tb.true_reward(rows[0]["info"]["post"], rows[0]["summaries"][0]["text"])
    paths = tb.write("runs/mini/data/synthetic", n_train=4000, n_valid=1000, n_sft=4000, n_ood=200)

Everything is a deterministic function of ``SyntheticConfig`` (string-seeded ``random.Random`` streams, one per
split and kind, independent of ``PYTHONHASHSEED``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from drdo_lib.config import write_text_atomic
from drdo_lib.data.formats import format_tldr_prompt

__all__ = [
    "SyntheticConfig",
    "SyntheticTestbed",
    "TOPIC_WORDS",
    "FILLER_WORDS",
    "TEMPLATE_WORDS",
    "post_from_prompt",
]

#: Key (content) words per topic; the topic name is the subreddit. Disjoint from each other and from the fillers.
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "relationships": (
        "girlfriend", "boyfriend", "wife", "husband", "wedding", "breakup", "date", "trust", "jealous", "ex",
        "parents", "mother", "father", "sister", "brother", "friendship", "argument", "divorce", "texting",
        "cheating", "anniversary", "apartment", "holiday", "birthday",
    ),
    "pets": (
        "dog", "cat", "puppy", "kitten", "vet", "leash", "collar", "litter", "treats", "barking", "walks", "fur",
        "bird", "hamster", "rabbit", "fish", "tank", "cage", "kennel", "shelter", "adoption", "fleas", "scratching",
        "training",
    ),
    "cooking": (
        "recipe", "oven", "pasta", "sauce", "garlic", "onion", "butter", "flour", "bread", "soup", "chicken", "rice",
        "pan", "knife", "salt", "pepper", "cheese", "dough", "grill", "spices", "dinner", "breakfast", "kitchen",
        "baking",
    ),
    "fitness": (
        "gym", "running", "weights", "squat", "protein", "diet", "calories", "muscle", "cardio", "stretching",
        "marathon", "coach", "injury", "knee", "shoulder", "workout", "treadmill", "bench", "yoga", "swimming",
        "cycling", "sleep", "routine", "energy",
    ),
    "gaming": (
        "console", "controller", "level", "boss", "quest", "server", "multiplayer", "guild", "patch", "graphics",
        "keyboard", "mouse", "headset", "strategy", "puzzle", "tournament", "stream", "character", "inventory",
        "map", "sword", "shooter", "lag", "achievement",
    ),
    "money": (
        "rent", "salary", "loan", "debt", "budget", "savings", "bank", "credit", "taxes", "mortgage", "insurance",
        "bills", "invoice", "paycheck", "landlord", "deposit", "interest", "job", "raise", "fees", "refund",
        "scholarship", "tuition", "retirement",
    ),
    "travel": (
        "flight", "airport", "hotel", "passport", "visa", "luggage", "train", "beach", "mountain", "hostel", "tour",
        "museum", "ticket", "border", "island", "camping", "backpack", "cruise", "ferry", "guidebook", "roadtrip",
        "tent", "hiking", "souvenir",
    ),
}

#: Function and generic words that pad posts; a good summary copies none (or at most ``length_slack``) of them.
FILLER_WORDS: tuple[str, ...] = (
    "i", "my", "me", "we", "our", "you", "he", "she", "they", "it", "the", "a", "an", "and", "but", "so", "because",
    "then", "now", "just", "really", "very", "always", "never", "sometimes", "today", "yesterday", "last", "week",
    "year", "was", "is", "am", "are", "have", "had", "got", "get", "went", "go", "said", "told", "think", "feel",
    "know", "want", "need", "like", "about", "with", "for", "to", "of", "in", "on", "at", "after", "before", "again",
    "still", "also", "maybe", "what", "how", "why", "do", "did", "not", "help", "advice", "question", "problem",
    "situation", "thing", "some", "all", "more", "time", "day", "good", "bad", "new", "old", "little", "long",
)

#: Whitespace tokens of the TL;DR template and the OOD highlight terminator.
TEMPLATE_WORDS: tuple[str, ...] = ("SUBREDDIT:", "TITLE:", "POST:", "TL;DR:", ".")

_TITLE_FILLER = ("help", "advice", "question", "problem", "about", "my", "with", "need", "new", "the")
_SPLIT_CODES = {"train": "a", "valid1": "b", "valid2": "c", "test": "d", "sft_train": "e", "sft_valid": "f",
                "sft_test": "g", "ood": "h"}
_ALL_KEYS = frozenset(w for ws in TOPIC_WORDS.values() for w in ws)
#: How the two summaries of a comparison pair are drawn (SyntheticConfig.pair_source).
PAIR_SOURCES = ("sft_like", "perturbation")


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic testbed (all generation is a deterministic function of these)."""

    seed: int = 0  # master seed; every split/kind gets its own string-seeded stream derived from it
    temperature: float = 1.0  # Bradley–Terry temperature: p* = σ((r*_1 − r*_0)/temperature); higher = noisier
    confidence_noise: float = 0.15  # std of labeller noise added to 2|p* − ½| before binning into strength 1..4
    null_confidence_fraction: float = 0.0  # fraction of comparison rows written with extra.confidence = null
    repeat_fraction: float = 0.1  # fraction of pairs labelled a second time by another worker
    pair_source: str = "sft_like"  # how pair summaries are drawn: sft_like (the SFT targets' own mixed-quality
    #   process, i.e. what the SFT policy imitates) | perturbation (the first testbed: edits of the ideal summary)
    tie_fraction: float = 0.0  # fraction of pairs built with equal r* (p* = ½ exactly), each labelled once
    near_pair_fraction: float = 0.4  # fraction of pairs whose two summaries are one small edit apart
    ref_pair_fraction: float = 0.25  # perturbation pairs: fraction where one summary is the noisy reference
    n_workers: int = 16  # size of the labeller pool (worker ids)
    min_post_words: int = 30  # post length range (words), key words included
    max_post_words: int = 50
    min_keys: int = 3  # number of distinct key words per post
    max_keys: int = 6
    ref_keep: float = 0.75  # noisy reference: probability of keeping each key word (the best writer's)
    ref_filler: float = 0.3  # noisy reference: probability of inserting 1–2 filler words from the post
    ref_invent: float = 0.15  # noisy reference: probability of inserting one invented key word
    ref_quality_min: float = 1.0  # mixed-quality writers: each reference's quality q ~ U(ref_quality_min, 1);
    #   key words are kept with probability q·ref_keep, filler/invention probabilities grow by (1 − q)
    ood_reference: str = "ideal"  # OOD highlights: ideal (every key word; r*-optimal) | noisy (a reference writer's)
    w_coverage: float = 4.0  # r*: weight of key-word coverage (fraction in [0, 1])
    w_invented: float = 1.0  # r*: penalty per word absent from the post
    w_excess: float = 0.5  # r*: penalty per word beyond |K| + length_slack
    length_slack: int = 2  # r*: words allowed beyond the number of key words before the length penalty starts
    max_summary_words: int = 16  # every generated summary is truncated to this many words

    def __post_init__(self) -> None:
        def frac(name: str) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"SyntheticConfig.{name} must be a probability in [0, 1], got {v!r}")

        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature > 0):
            raise ValueError(f"SyntheticConfig.temperature must be a finite number > 0, got {self.temperature!r}")
        if not (isinstance(self.confidence_noise, (int, float)) and self.confidence_noise >= 0):
            raise ValueError(f"SyntheticConfig.confidence_noise must be >= 0, got {self.confidence_noise!r}")
        for name in ("null_confidence_fraction", "repeat_fraction", "near_pair_fraction", "ref_pair_fraction",
                     "ref_keep", "ref_filler", "ref_invent", "tie_fraction", "ref_quality_min"):
            frac(name)
        if self.pair_source not in PAIR_SOURCES:
            raise ValueError(f"SyntheticConfig.pair_source must be one of {PAIR_SOURCES}, got {self.pair_source!r}")
        if self.ood_reference not in ("ideal", "noisy"):
            raise ValueError(f"SyntheticConfig.ood_reference must be ideal or noisy, got {self.ood_reference!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"SyntheticConfig.seed must be an int, got {self.seed!r}")
        if self.n_workers < 2:
            raise ValueError(f"SyntheticConfig.n_workers must be >= 2 (repeat labels need another worker), "
                             f"got {self.n_workers}")
        if not 1 <= self.min_keys <= self.max_keys <= 10:
            raise ValueError(f"SyntheticConfig needs 1 <= min_keys <= max_keys <= 10, got {self.min_keys}, "
                             f"{self.max_keys}")
        if not self.max_keys + 5 <= self.min_post_words <= self.max_post_words <= 58:
            raise ValueError("SyntheticConfig needs max_keys + 5 <= min_post_words <= max_post_words <= 58 (so a "
                             f"TL;DR prompt fits in 64 word tokens), got {self.min_post_words}, {self.max_post_words}")
        if self.max_summary_words < self.max_keys:
            raise ValueError(f"SyntheticConfig.max_summary_words ({self.max_summary_words}) must be >= max_keys "
                             f"({self.max_keys}) so the ideal summary fits")
        for name in ("w_coverage", "w_invented", "w_excess"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.length_slack < 0:
            raise ValueError(f"SyntheticConfig.length_slack must be >= 0, got {self.length_slack!r}")


def post_from_prompt(prompt_or_post: str) -> str:
    """The post text of a TL;DR prompt (between ``POST:`` and ``TL;DR:``), or the string itself if it has none."""
    text = prompt_or_post
    i = text.find("POST:")
    if i >= 0:
        text = text[i + len("POST:"):]
    j = text.rfind("TL;DR:")
    if j >= 0:
        text = text[:j]
    return text.strip()


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class SyntheticTestbed:
    """Seeded generator of the synthetic summarisation task (see the module docstring for r* and the schemas)."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config if config is not None else SyntheticConfig()
        self.topics: tuple[str, ...] = tuple(TOPIC_WORDS)
        self.key_words = _ALL_KEYS
        self._workers = [f"synthw{i:03d}" for i in range(self.config.n_workers)]

    # ------------------------------------------------------------------ vocabulary and reward
    @property
    def vocabulary(self) -> list[str]:
        """Every whitespace token that can appear in a generated prompt, response, article or highlight (sorted)."""
        words = set(TEMPLATE_WORDS) | set(FILLER_WORDS) | set(_TITLE_FILLER) | set(_ALL_KEYS)
        words |= {f"r/{t}" for t in self.topics} | {"r/news"}
        return sorted(words)

    def key_words_of(self, prompt_or_post: str) -> list[str]:
        """The distinct key words of a post, in order of first appearance."""
        seen: dict[str, None] = {}
        for w in post_from_prompt(prompt_or_post).split():
            if w in _ALL_KEYS:
                seen.setdefault(w)
        return list(seen)

    def true_reward(self, prompt_or_post: str, summary: str) -> float:
        """r*(x, y) of the module docstring; ``prompt_or_post`` may be the full TL;DR prompt or the bare post."""
        c = self.config
        post = post_from_prompt(prompt_or_post).split()
        post_set = set(post)
        keys = {w for w in post_set if w in _ALL_KEYS}
        y = summary.split()
        coverage = len(keys & set(y)) / len(keys) if keys else 0.0
        invented = sum(1 for w in y if w not in post_set)
        excess = max(0, len(y) - (len(keys) + c.length_slack))
        return c.w_coverage * coverage - c.w_invented * invented - c.w_excess * excess

    def true_rewards(self, prompts: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """Vector of r*(x_i, y_i) (float64, shape (N,))."""
        if len(prompts) != len(summaries):
            raise ValueError(f"true_rewards: {len(prompts)} prompts but {len(summaries)} summaries")
        return np.fromiter((self.true_reward(p, s) for p, s in zip(prompts, summaries)), dtype=np.float64,
                           count=len(prompts))

    def ideal_summary(self, prompt_or_post: str) -> str:
        """The key words of the post in order: the r*-maximising summary (used as a sanity reference)."""
        return " ".join(self.key_words_of(prompt_or_post))

    # ------------------------------------------------------------------ generation primitives
    def _rng(self, kind: str) -> random.Random:
        return random.Random(f"drdo-synthetic:{self.config.seed}:{kind}")

    def _post(self, rng: random.Random, keys: list[str], length: int) -> tuple[list[str], list[str]]:
        n_keys = len(keys)
        rng.shuffle(keys)
        words = rng.choices(FILLER_WORDS, k=length - n_keys)
        positions = sorted(rng.sample(range(length), n_keys))
        post: list[str] = []
        fi = ki = 0
        for i in range(length):
            if ki < n_keys and positions[ki] == i:
                post.append(keys[ki])
                ki += 1
            else:
                post.append(words[fi])
                fi += 1
        return post, keys  # keys are in post order

    def _new_post(self, rng: random.Random) -> dict:
        c = self.config
        topic = rng.choice(self.topics)
        keys = rng.sample(TOPIC_WORDS[topic], rng.randint(c.min_keys, c.max_keys))
        post, keys = self._post(rng, keys, rng.randint(c.min_post_words, c.max_post_words))
        title = rng.sample(_TITLE_FILLER, rng.randint(1, 3)) + [keys[0]]
        return {"subreddit": topic, "title": " ".join(title), "post": post, "keys": keys}

    def _invented(self, rng: random.Random, topic: str, post_set: set[str]) -> str:
        choices = [w for w in TOPIC_WORDS[topic] if w not in post_set]
        return rng.choice(choices)

    def _reference(self, rng: random.Random, p: dict) -> list[str]:
        """A reference writer's summary: quality q ~ U(ref_quality_min, 1) (q = 1 when ref_quality_min = 1, the
        first testbed's single writer); each key word kept with probability q·ref_keep (at least one), 1–2 post
        filler words inserted with probability ref_filler + (1 − q)/2, one invented word with probability
        ref_invent + (1 − q)/2."""
        c = self.config
        keys = p["keys"]
        q = 1.0 if c.ref_quality_min >= 1.0 else rng.uniform(c.ref_quality_min, 1.0)
        kept = [w for w in keys if rng.random() < q * c.ref_keep] or [rng.choice(keys)]
        if rng.random() < min(1.0, c.ref_filler + (1 - q) / 2):
            fillers = [w for w in p["post"] if w not in _ALL_KEYS]
            for _ in range(rng.randint(1, 2)):
                kept.insert(rng.randint(0, len(kept)), rng.choice(fillers))
        if rng.random() < min(1.0, c.ref_invent + (1 - q) / 2):
            kept.insert(rng.randint(0, len(kept)), self._invented(rng, p["subreddit"], set(p["post"])))
        return kept[: c.max_summary_words]

    def _tied(self, rng: random.Random, p: dict, a: list[str]) -> list[str] | None:
        """A different summary with exactly a's r*: one kept key word swapped for a dropped one (same coverage,
        length and invented words), else two words of a swapped (r* ignores order); None if a has one word."""
        dropped = [w for w in p["keys"] if w not in a]
        kept_idx = [i for i, w in enumerate(a) if w in p["keys"]]
        if dropped and kept_idx:
            b = list(a)
            b[rng.choice(kept_idx)] = rng.choice(dropped)
            return b
        if len(set(a)) > 1:
            for _ in range(20):
                i, j = rng.sample(range(len(a)), 2)
                if a[i] != a[j]:
                    b = list(a)
                    b[i], b[j] = b[j], b[i]
                    return b
        return None

    def _candidate(self, rng: random.Random, p: dict, q: float) -> list[str]:
        c = self.config
        keys = p["keys"]
        y = [w for w in keys if rng.random() < q] or [rng.choice(keys)]
        fillers = [w for w in p["post"] if w not in _ALL_KEYS]
        for _ in range(sum(rng.random() < (1 - q) * 0.6 for _ in range(3))):
            y.insert(rng.randint(0, len(y)), rng.choice(fillers))
        for _ in range(sum(rng.random() < (1 - q) * 0.5 for _ in range(2))):
            y.insert(rng.randint(0, len(y)), self._invented(rng, p["subreddit"], set(p["post"])))
        if rng.random() < (1 - q) * 0.5 and len(y) > 1:
            i, j = rng.sample(range(len(y)), 2)
            y[i], y[j] = y[j], y[i]
        return y[: c.max_summary_words]

    def _small_edit(self, rng: random.Random, p: dict, y: list[str]) -> list[str]:
        y = list(y)
        op = rng.randrange(4)
        if op == 0 and len(y) > 1:  # drop a word
            del y[rng.randrange(len(y))]
        elif op == 1:  # insert a post filler word
            fillers = [w for w in p["post"] if w not in _ALL_KEYS]
            y.insert(rng.randint(0, len(y)), rng.choice(fillers))
        elif op == 2:  # replace a word by an invented key word
            y[rng.randrange(len(y))] = self._invented(rng, p["subreddit"], set(p["post"]))
        else:  # add a missing key word, or insert an invented one if none is missing
            missing = [w for w in p["keys"] if w not in y]
            w = rng.choice(missing) if missing else self._invented(rng, p["subreddit"], set(p["post"]))
            y.insert(rng.randint(0, len(y)), w)
        return y[: self.config.max_summary_words]

    def _label(self, rng: random.Random, r0: float, r1: float) -> tuple[int, int | None]:
        c = self.config
        p1 = _sigmoid((r1 - r0) / c.temperature)
        choice = 1 if rng.random() < p1 else 0
        u = 2.0 * abs(p1 - 0.5) + rng.gauss(0.0, c.confidence_noise)
        strength = min(4, max(1, 1 + int(math.floor(4.0 * u))))
        conf = 5 + strength if choice == 1 else 5 - strength
        if c.null_confidence_fraction > 0 and rng.random() < c.null_confidence_fraction:
            return choice, None
        return choice, conf

    # ------------------------------------------------------------------ public row generators
    def comparison_rows(self, n: int, split: str = "train") -> list[dict]:
        """``n`` raw ``summarize_from_feedback`` comparison rows of ``split`` (train | valid1 | valid2 | test)."""
        if split not in ("train", "valid1", "valid2", "test"):
            raise ValueError(f"comparison_rows: split must be train, valid1, valid2 or test, got {split!r}")
        if n < 0:
            raise ValueError(f"comparison_rows: n must be >= 0, got {n}")
        c = self.config
        rng = self._rng(f"comparisons:{split}")
        code = _SPLIT_CODES[split]
        rows: list[dict] = []
        i = 0
        while len(rows) < n:
            p = self._new_post(rng)
            post_text = " ".join(p["post"])
            sft_like = c.pair_source == "sft_like"
            u = rng.random()
            if sft_like:
                a, pol_a = self._reference(rng, p), "writer"
            elif u < c.ref_pair_fraction:
                a, pol_a = self._reference(rng, p), "ref"
            else:
                q = rng.uniform(0.15, 1.0)
                a, pol_a = self._candidate(rng, p, q), f"synth_q{q:.1f}"
            tied = c.tie_fraction > 0 and rng.random() < c.tie_fraction
            b = self._tied(rng, p, a) if tied else None
            if b is not None:
                pol_b = "tie"
            else:
                tied = False
                near = rng.random() < c.near_pair_fraction
                for _ in range(20):  # the two summaries of a pair always differ (identical pairs are unusable)
                    if near:
                        b, pol_b = self._small_edit(rng, p, a), "synth_edit"
                    elif sft_like:
                        b, pol_b = self._reference(rng, p), "writer"
                    else:
                        q = rng.uniform(0.15, 1.0)
                        b, pol_b = self._candidate(rng, p, q), f"synth_q{q:.1f}"
                    if b != a:
                        break
                else:
                    b, pol_b = a + [self._invented(rng, p["subreddit"], set(p["post"]))], "synth_edit"
            if rng.random() < 0.5:
                a, b, pol_a, pol_b = b, a, pol_b, pol_a
            sa, sb = " " + " ".join(a), " " + " ".join(b)
            r0, r1 = self.true_reward(post_text, sa), self.true_reward(post_text, sb)
            n_labels = 2 if (rng.random() < c.repeat_fraction and not tied) else 1  # a tied pair: one label
            workers = rng.sample(self._workers, n_labels)
            for w in workers:
                if len(rows) >= n:
                    break
                choice, conf = self._label(rng, r0, r1)
                rows.append({
                    "info": {"id": f"t3_syn{code}{i:06x}", "post": post_text, "title": p["title"],
                             "subreddit": p["subreddit"]},
                    "split": split,
                    "summaries": [{"text": sa, "policy": pol_a, "note": None},
                                  {"text": sb, "policy": pol_b, "note": None}],
                    "choice": choice,
                    "worker": w,
                    "batch": f"synthetic_{split}",
                    "extra": {"confidence": conf},
                })
            i += 1
        return rows

    def sft_rows(self, n: int, split: str = "train") -> list[dict]:
        """``n`` CarperAI-schema SFT rows ``{id, prompt, label}``; the label is a noisy reference (no leading space)."""
        if split not in ("train", "valid", "test"):
            raise ValueError(f"sft_rows: split must be train, valid or test, got {split!r}")
        rng = self._rng(f"sft:{split}")
        code = _SPLIT_CODES[f"sft_{split}"]
        rows = []
        for i in range(n):
            p = self._new_post(rng)
            # CarperAI prompts end with "TL;DR: " (trailing space) and labels have no leading space.
            prompt = format_tldr_prompt(p["subreddit"], p["title"], " ".join(p["post"])) + " "
            rows.append({"id": f"t3_syn{code}{i:06x}", "prompt": prompt, "label": " ".join(self._reference(rng, p))})
        return rows

    def ood_rows(self, n: int) -> list[dict]:
        """``n`` cnn_dailymail-schema rows ``{id, article, highlights}``: longer articles, two-topic key-word mix."""
        rng = self._rng("ood")
        rows = []
        for i in range(n):
            topics = rng.sample(self.topics, 2)
            n_keys = rng.randint(5, 7)
            keys = rng.sample(TOPIC_WORDS[topics[0]], n_keys // 2) + rng.sample(TOPIC_WORDS[topics[1]],
                                                                                 n_keys - n_keys // 2)
            post, keys = self._post(rng, keys, rng.randint(45, 58))
            if self.config.ood_reference == "noisy":  # a reference writer's summary of the article
                keys = self._reference(rng, {"keys": keys, "post": post, "subreddit": topics[0]})
            half = (len(keys) + 1) // 2
            highlights = " ".join(keys[:half]) + " .\n" + " ".join(keys[half:]) + " ."
            rid = hashlib.sha1(f"{self.config.seed}:ood:{i}".encode()).hexdigest()
            rows.append({"id": rid, "article": " ".join(post), "highlights": highlights})
        return rows

    # ------------------------------------------------------------------ files
    def write(self, folder: str | Path, n_train: int = 4000, n_valid: int = 1000, n_sft: int = 4000,
              n_sft_test: int = 500, n_ood: int = 200) -> dict[str, Path]:
        """Write the testbed as JSON Lines in the layout of a local data folder; returns ``{name: path}``.

        ``summarize_from_feedback_comparisons/synthetic_train.jsonl`` (split "train"),
        ``summarize_from_feedback_comparisons/synthetic_valid.jsonl`` (first fifth "valid1", the rest "valid2"),
        ``openai_summarize_tldr/carperai_format_train.jsonl`` and ``…_test.jsonl``,
        ``cnn_dailymail/cnn_dailymail_synthetic.jsonl`` and ``synthetic_config.json`` (the settings used); a file with
        zero rows is not written (and a stale one is removed).
        """
        folder = Path(folder)
        n_valid1 = n_valid // 5
        files = {
            "comparisons_train": (folder / "summarize_from_feedback_comparisons" / "synthetic_train.jsonl",
                                  self.comparison_rows(n_train, "train")),
            "comparisons_valid": (folder / "summarize_from_feedback_comparisons" / "synthetic_valid.jsonl",
                                  self.comparison_rows(n_valid1, "valid1")
                                  + self.comparison_rows(n_valid - n_valid1, "valid2")),
            "sft_train": (folder / "openai_summarize_tldr" / "carperai_format_train.jsonl", self.sft_rows(n_sft)),
            "sft_test": (folder / "openai_summarize_tldr" / "carperai_format_test.jsonl",
                         self.sft_rows(n_sft_test, "test")),
            "ood": (folder / "cnn_dailymail" / "cnn_dailymail_synthetic.jsonl", self.ood_rows(n_ood)),
        }
        out: dict[str, Path] = {}
        for name, (path, rows) in files.items():
            if not rows:  # an empty file would be "no usable rows" for the loaders: leave it out
                if path.exists():
                    path.unlink()
                continue
            _write_jsonl(path, rows)
            out[name] = path
        cfg_path = folder / "synthetic_config.json"
        write_text_atomic(cfg_path, json.dumps(dataclasses.asdict(self.config), indent=2, sort_keys=True))
        out["config"] = cfg_path
        return out


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Write under this process's own temporary name, then rename into place: a reader sees a whole file."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
