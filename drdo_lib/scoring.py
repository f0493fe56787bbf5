"""Scoring responses with a reward model (the Oracle, an ensemble member): :class:`RewardScorer` reads the reward at
the EOS appended to each response, tokenised exactly as the training pairs are (:func:`encode_responses`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from drdo_lib.data.tokenize import spaced_response
from drdo_lib.generation import encode_prompts

__all__ = ["RewardScorer", "encode_responses"]


def encode_responses(tokenizer, prompts: Sequence[str], responses: Sequence[str], *, max_prompt_length: int,
                     max_length: int) -> list[list[int]]:
    """``prompt_ids + response_ids + [eos]`` as :mod:`drdo_lib.data.tokenize` builds training pairs (BOS when the
    tokenizer adds one; a space before a response that follows a prompt not ending in whitespace). Sequences longer
    than ``max_length`` lose the start of the prompt, so the reward is always read at the response's EOS."""
    pids = encode_prompts(tokenizer, prompts, max_prompt_length)
    fixed = [spaced_response(p, r) for p, r in zip(prompts, responses)]
    rids = tokenizer(fixed, add_special_tokens=False)["input_ids"] if fixed else []
    out = []
    for p, r in zip(pids, rids):
        seq = p + r + [tokenizer.eos_token_id]
        if len(seq) > max_length:
            seq = seq[len(seq) - max_length:]
        out.append(seq)
    return out


class RewardScorer:
    """``scorer(prompts, responses) -> np.ndarray`` of a :class:`~drdo_lib.models.CausalLMWithRewardHead` (the oracle).

    The reward is read at the EOS appended to each response (right padding; the model finds the last real token
    from the attention mask). ``model`` is a reward-model directory or a loaded model (then pass ``tokenizer``).
    """

    def __init__(self, model, tokenizer=None, *, batch_size: int = 32, max_prompt_length: int = 512,
                 max_length: int = 1024, device: str = "auto", dtype: str = "auto", progress: bool = True):
        from drdo_lib.hf import resolve_device, resolve_dtype

        if isinstance(model, (str, Path)):
            from drdo_lib.models import load_model

            model, tokenizer = load_model(model, with_reward_head=True)
        if tokenizer is None:
            raise ValueError("RewardScorer needs the tokenizer of a loaded model")
        dev = resolve_device(device)
        self.model = model.to(device=dev, dtype=resolve_dtype(dtype, dev)).eval()
        self.tokenizer, self.device = tokenizer, dev
        self.batch_size, self.max_prompt_length, self.max_length = batch_size, max_prompt_length, max_length
        self.progress = progress

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        seqs = encode_responses(self.tokenizer, prompts, responses, max_prompt_length=self.max_prompt_length,
                                max_length=self.max_length)
        # sort by length so batches pad little; scatter back afterwards
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out = np.empty(len(seqs), dtype=np.float64)
        starts = range(0, len(seqs), self.batch_size)
        for s in tqdm(starts, desc="reward", disable=not self.progress or len(starts) < 4, leave=False):
            idx = order[s:s + self.batch_size]
            batch = [seqs[i] for i in idx]
            T = max(len(x) for x in batch)
            ids = torch.full((len(batch), T), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), T), dtype=torch.long)
            for j, x in enumerate(batch):
                ids[j, :len(x)] = torch.as_tensor(x)
                mask[j, :len(x)] = 1
            r = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), return_logits=False)
            out[idx] = r["rewards"].float().cpu().numpy()
        return out

    def single(self, prompt: str, response: str) -> float:
        """One reward (the ``reward_fn(prompt, response)`` signature of :func:`drdo_lib.judge.judge_pairs`)."""
        return float(self([prompt], [response])[0])
