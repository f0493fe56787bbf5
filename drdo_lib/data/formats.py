"""Text templates shared by the loaders, the synthetic testbed and the tokenisation code.

The TL;DR template is the one of ``CarperAI/openai_summarize_tldr`` and of the paper's TL;DR experiments::

    SUBREDDIT: r/{subreddit}
    TITLE: {title}
    POST: {post}
    TL;DR:

:func:`format_tldr_prompt` returns it *without* a trailing space: in the normalised rows every response starts with
a space (as the ``summarize_from_feedback`` summaries do), so ``prompt + response`` is the published string.
"""
from __future__ import annotations

__all__ = ["format_tldr_prompt", "normalise_subreddit", "TLDR_TEMPLATE"]

TLDR_TEMPLATE = "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"


def normalise_subreddit(subreddit: str) -> str:
    """``"r/relationships"`` and ``"relationships"`` both give ``"relationships"`` (some raw rows carry the prefix)."""
    s = subreddit.strip()
    return s[2:] if s.lower().startswith("r/") else s


def format_tldr_prompt(subreddit: str, title: str, post: str) -> str:
    """The TL;DR prompt of a Reddit post, ending with ``"TL;DR:"`` (no trailing space).

    >>> format_tldr_prompt("r/pets", "my dog", "he barks")
    'SUBREDDIT: r/pets\\nTITLE: my dog\\nPOST: he barks\\nTL;DR:'
    """
    for name, value in (("subreddit", subreddit), ("title", title), ("post", post)):
        if not isinstance(value, str):
            raise TypeError(f"format_tldr_prompt: {name} must be a str, got {type(value).__name__}")
    return TLDR_TEMPLATE.format(subreddit=normalise_subreddit(subreddit), title=title.strip(), post=post.strip())
