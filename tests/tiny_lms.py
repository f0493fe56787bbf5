"""Tiny GPT-2 policies and a word-level tokenizer for the evaluation and scoring tests (built from a config, no
download)."""
from __future__ import annotations

import torch

WORDS = "the cat sat on a mat dog ran far away and then came back home".split()


def tiny_tokenizer():
    from drdo_lib.models import build_tokenizer

    return build_tokenizer("tiny-gpt2", vocab_words=WORDS + ["TL;DR:", "POST:", "TL", "DR", ";", ":"])


def tiny_lm(tok, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()
