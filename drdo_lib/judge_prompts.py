"""Judge prompt templates (reproduced verbatim, cited) and the parsers of the judge's answer.

Three templates, selected by name in :func:`drdo_lib.judge.judge_pairs`:

``"tldr_reference"``
    The DRDO paper's Fig. 5 ("Summarization GPT-4 win rate prompt (C)", Appendix E): two summaries of a post,
    judged while referring to the human-written reference summary. Used for Table 1 (GPT-4o).
``"vs_human"``
    The paper's Fig. 6 ("... (vs human written)"): a policy summary against the human-written one, no reference.
    Used for the "Gold vs ..." rows of Table 1.
``"alpaca"``
    AlpacaEval 2.0's default annotator (``weighted_alpaca_eval_gpt4_turbo``), whose prompt is the file
    ``alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt`` of the ``alpaca-eval``
    package (v0.6.6, Apache-2.0, Li et al. 2023, https://github.com/tatsu-lab/alpaca_eval). ``alpaca-eval`` 0.6.6
    imports only beside ``setuptools<81`` (it needs ``pkg_resources``), so it is an optional extra (``[alpaca]``,
    used for the length-controlled win rate) and the template is reproduced here byte for byte, so the judge works
    without it; ``tests/test_judge.py`` compares it with the installed file when the package is present. The answer is one token, ``m`` (first output better) or ``M``
    (second output better); the request asks for ``max_tokens=1``, ``temperature=1`` and the top-5 log-probs as
    the upstream config does, and the verdict is the more likely of ``m``/``M`` (upstream ``logprob_parser``).

Fidelity notes for the paper's prompts. The figure text is kept in ``FIG5_TEXT`` / ``FIG6_TEXT`` exactly as the
paper prints it, including the `` \\ `` marks that the typeset figure uses where it wraps a long line (the same
figure style as the DPO paper's Appendix C.2 prompts). The prompt sent to the judge is that text with each wrap mark
joined by one space (:func:`paper_prompt`); nothing else changes. The whole prompt is sent as one ``user`` message
(the paper names no system prompt). Placeholders are filled in one pass, so text inside a post that happens to look
like a placeholder (``<summary>``) is never substituted.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

TEMPLATES = ("tldr_reference", "vs_human", "alpaca")

#: Paper Fig. 5, verbatim (Appendix E of the DRDO paper).
FIG5_TEXT = """Which of the following summaries do a better job of summarizing the most \\ important points in the given forum post, without including unimportant \\ or irrelevant details? Make your decision while referring to the reference \\ (human-written) summary. A good summary is both precise and concise.

Post:
<post>

Reference Summary:
<golden summary>

Summary A:
<Summary A>
Summary B:
<Summary B>

FIRST provide a one-sentence comparison of the two summaries, explaining \\ which you prefer and why. SECOND, on a new line, state only "A" or "B" to \\ indicate your choice. Your response should use the format:
Comparison: <one-sentence comparison and explanation>
Preferred: <"A" or "B">"""

#: Paper Fig. 6, verbatim. As printed, slot A holds the human ("golden") summary and slot B the policy's; the
#: paper swaps the order per pair, so here the two slots are simply "first shown" and "second shown".
FIG6_TEXT = """Which of the following summaries does a better job of summarizing the most \\ important points in the given news article, without including unimportant \\ or irrelevant details? A good summary is both precise and concise.

Post:
<post>

Summary A:
<golden summary>
Summary B:
<summary>

FIRST provide a one-sentence comparison of the two summaries, explaining \\ which you prefer and why. SECOND, on a new line, state only "A" or "B" to \\ indicate your choice. Your response should use the format:
Comparison: <one-sentence comparison and explanation>
Preferred: <"A" or "B">"""

#: Placeholder names of each paper figure: (post, reference or None, first-shown slot, second-shown slot).
_FIG_SLOTS = {
    "tldr_reference": ("<post>", "<golden summary>", "<Summary A>", "<Summary B>"),
    "vs_human": ("<post>", None, "<golden summary>", "<summary>"),
}

#: AlpacaEval's ``alpaca_eval_clf.txt`` (v0.6.6), verbatim, in its ChatML-like text form.
ALPACA_CLF_TEXT = '''<|im_start|>system
You are a highly efficient assistant, who evaluates and selects the best large language model (LLMs) based on the quality of their responses to a given instruction. This process will be used to create a leaderboard reflecting the most accurate and human-preferred answers.
<|im_end|>
<|im_start|>user
I require a leaderboard for various large language models. I'll provide you with prompts given to these models and their corresponding outputs. Your task is to assess these responses, and select the model that produces the best output from a human perspective.

## Instruction

{
    "instruction": """{instruction}""",
}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific model, identified by a unique model identifier.

{
    {
        "model_identifier": "m",
        "output": """{output_1}"""
    },
    {
        "model_identifier": "M",
        "output": """{output_2}"""
    }
}

## Task

Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the best output. Answer by providing the model identifier of the best model. We will use your output as the name of the best model, so make sure your output only contains one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, ...): m or M.

## Best Model Identifier
<|im_end|>'''

#: Request parameters per template (besides model and messages). Paper prompts: greedy decoding, room for the
#: one-sentence comparison. AlpacaEval: its upstream ``completions_kwargs``.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "tldr_reference": {"temperature": 0.0, "max_tokens": 256},
    "vs_human": {"temperature": 0.0, "max_tokens": 256},
    "alpaca": {"temperature": 1.0, "max_tokens": 1, "logprobs": True, "top_logprobs": 5},
}


def paper_prompt(figure_text: str) -> str:
    """Join the figure's line-wrap marks (`` \\ ``) with one space: the text actually sent to the judge."""
    return figure_text.replace(" \\ ", " ")


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace each placeholder once, in a single pass (inserted text is never scanned again)."""
    pattern = re.compile("|".join(re.escape(k) for k in sorted(values, key=len, reverse=True)))
    seen: set[str] = set()

    def sub(m: re.Match) -> str:
        key = m.group(0)
        if key in seen:  # every placeholder occurs once in these templates; a second hit is literal text
            return key
        seen.add(key)
        return values[key]

    out = pattern.sub(sub, template)
    missing = set(values) - seen
    if missing:
        raise RuntimeError(f"template placeholders not found: {sorted(missing)}")
    return out


def chatml_to_messages(prompt: str) -> list[dict[str, str]]:
    """AlpacaEval's ``prompt_to_chatml`` for plain roles: ``<|im_start|>role\\ncontent<|im_end|>`` → messages."""
    prompt = prompt.strip()
    if not (prompt.startswith("<|im_start|>") and prompt.endswith("<|im_end|>")):
        raise ValueError("not a ChatML prompt")
    messages = []
    for part in prompt.split("<|im_start|>")[1:]:
        role, rest = part.split("\n", 1)
        messages.append({"role": role.strip(), "content": rest.split("<|im_end|>", 1)[0].strip()})
    return messages


def build_messages(template: str, prompt: str, first: str, second: str,
                   reference: str | None = None) -> list[dict[str, str]]:
    """Chat messages asking the judge to compare ``first`` (shown as A / ``m``) with ``second`` (B / ``M``).

    ``prompt`` is the post (paper templates) or the instruction (``alpaca``); ``reference`` is the human-written
    summary, required by ``tldr_reference`` and ignored otherwise.
    """
    if template == "alpaca":
        # AlpacaEval fills {instruction}, {output_1}, {output_2} by first-occurrence str.replace, in turn; the
        # single-pass fill gives the same text unless an inserted text itself contains one of those placeholders
        # (then upstream would substitute inside it; here it stays literal).
        text = _fill(ALPACA_CLF_TEXT, {"{instruction}": prompt, "{output_1}": first, "{output_2}": second})
        return chatml_to_messages(text)
    if template not in _FIG_SLOTS:
        raise ValueError(f"unknown template {template!r}; choose one of {TEMPLATES}")
    post_key, ref_key, a_key, b_key = _FIG_SLOTS[template]
    values = {post_key: prompt, a_key: first, b_key: second}
    if ref_key is not None:
        if reference is None:
            raise ValueError(f"template {template!r} needs the human reference summary (references=...)")
        values[ref_key] = reference
    fig = FIG5_TEXT if template == "tldr_reference" else FIG6_TEXT
    return [{"role": "user", "content": _fill(paper_prompt(fig), values)}]


# "Preferred: A", "**Preferred:** B", 'Preferred: "A"', "Preferred: <A>", "preferred - b.", "Preferred: Summary A" ...
_PREFERRED = re.compile(r"preferred\s*\**\s*[:\-=]?\s*\**\s*[\"'<\[(*`]*\s*(?:(?:summary|response|output)\s+)?([AB])\b"
                        r"[\"'>\])*`]*(.*)$", re.IGNORECASE)
_BARE = re.compile(r"^[\s\"'<\[(*`]*([AB])[\"'>\])*`.\s]*$")
#: An explanation may follow an upper-case verdict letter after one of these separators ("Preferred: A (shorter)").
_SEPARATORS = ("(", "-", "–", "—", ",", ";", ":", "because")
#: Words that make a verdict line a non-verdict ("Preferred: A tie", "Preferred: B — both are equal").
_NOT_A_VERDICT = re.compile(r"\b(tie|tied|neither|both|equal(ly)?|same|either|none)\b", re.IGNORECASE)


def parse_preferred(text: str | None) -> str | None:
    """The judge's choice ``"A"``/``"B"`` from a paper-template answer, or None when it is not an unambiguous verdict.

    Reads the last line that starts with ``Preferred`` (markdown emphasis, quotes and brackets around the letter
    and a leading "Summary" are tolerated). Counted as a verdict: the letter alone (``Preferred: A``, ``**b**``,
    ``"B".``), or an upper-case letter followed by an explanation after a separator (``Preferred: A (more
    concise)``). Unreadable (None; discarded and counted by the caller): a lower-case letter with words after it
    (``Preferred: a tie`` reads the English article, not option A), a letter followed directly by a word
    (``Preferred: A tie``), any line naming both letters (``A or B``) or a tie word (tie, neither, both, equal,
    same, either, none), and a missing ``Preferred`` line — except for an answer that is only the letter (``"B"``).
    """
    if not text:
        return None
    lines = [ln.strip().lstrip("*#>-• ").strip() for ln in text.strip().splitlines()]
    for ln in reversed(lines):
        if not ln.lower().startswith("preferred"):
            continue
        m = _PREFERRED.match(ln)
        if m is None:
            return None
        letter, rest = m.group(1), m.group(2).strip().rstrip(".!").strip()
        if _NOT_A_VERDICT.search(ln) or re.search(r"\b[AB]\b", rest):  # a tie, or both letters named
            return None
        if rest and (letter.islower() or not rest.lower().startswith(_SEPARATORS)):
            return None  # "a tie", "A tie", "A is better": not the bare verdict the prompt asks for
        return letter.upper()
    m = _BARE.match(text)
    return m.group(1).upper() if m else None


def parse_alpaca(text: str | None, top_logprobs: Sequence[Mapping[str, Any]] | None = None
                 ) -> tuple[str | None, float]:
    """AlpacaEval verdict: (``"A"`` if ``m`` wins, ``"B"`` if ``M``, None if unreadable; P(second better)).

    With log-probs (the first generated token's top-k list), the verdict is the more likely of ``m``/``M`` and the
    probability is P(M) / (P(m) + P(M)), as upstream's ``logprob_parser`` computes it; without them the single
    generated token decides and the probability is 0 or 1 (NaN when unreadable).
    """
    if top_logprobs:
        probs = {"m": 0.0, "M": 0.0}
        for item in top_logprobs:
            tok = str(item.get("token", "")).strip()
            if tok in probs:
                probs[tok] += math.exp(float(item["logprob"]))
        total = probs["m"] + probs["M"]
        if total > 0:
            p_second = probs["M"] / total
            if p_second == 0.5:
                return None, 0.5
            return ("B" if p_second > 0.5 else "A"), p_second
    tok = (text or "").strip()
    if tok == "m":
        return "A", 0.0
    if tok == "M":
        return "B", 1.0
    return None, float("nan")
