"""Tests for drdo_lib.data.tokenize: prompt formatting, response masks, length filtering with counts, collation."""
import datasets
import pytest
import torch

from drdo_lib.data.tokenize import (
    TLDR_TEMPLATE,
    collate_preference,
    format_prompt,
    tokenize_preference_dataset,
    tokenize_sft_dataset,
)
from drdo_lib.losses import sequence_logps
from drdo_lib.models import build_tokenizer

P = TLDR_TEMPLATE.format(subreddit="cats", title="my cat", post="the cat sat on the mat")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("tiny-gpt2", [P, "cat sat mat dog ran x y z"])


def rows():
    return [
        dict(id="ok", prompt=P, chosen="cat sat mat", rejected="dog ran", confidence=7),
        dict(id="empty", prompt=P, chosen="  ", rejected="dog", confidence=3),
        dict(id="longprompt", prompt=P + " x" * 40, chosen="cat", rejected="dog", confidence=3),
        dict(id="longresp", prompt=P, chosen="cat", rejected="dog " * 30, confidence=2),
        dict(id="ok2", prompt="x y", chosen="z", rejected="y z x", confidence=9),
    ]


def test_format_prompt_tldr_and_raw(tok):
    row = {"info": {"subreddit": "cats", "title": "my cat", "post": "the cat sat on the mat"}}
    assert format_prompt(row, tok, "tldr") == P
    assert format_prompt({"prompt": "hello"}, tok, "raw") == "hello"
    assert format_prompt("hello", tok, "chat") == "hello"  # no chat template: raw prompt
    with pytest.raises(ValueError):
        format_prompt({"foo": 1}, tok)
    with pytest.raises(ValueError):
        format_prompt("x", tok, "nope")


def test_format_prompt_uses_chat_template(tok):
    t = build_tokenizer("tiny-gpt2", ["hello"])
    t.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    assert format_prompt("hello", t, "chat") == "<user>hello<assistant>"


def test_tokenize_preference_masks_and_counts(tok):
    ds = datasets.Dataset.from_list(rows())
    out, counts = tokenize_preference_dataset(ds, tok, max_prompt_length=40, max_length=48)
    assert counts == {"rows_in": 5, "rows_kept": 2, "dropped_empty_prompt": 0, "dropped_empty_response": 1,
                      "dropped_prompt_too_long": 1, "dropped_too_long": 1}
    assert out["id"] == ["ok", "ok2"]
    r = out[0]
    p_ids = tok(P)["input_ids"]  # with BOS
    c_ids = tok("cat sat mat", add_special_tokens=False)["input_ids"]
    assert r["chosen_input_ids"] == p_ids + c_ids + [tok.eos_token_id]
    assert r["chosen_response_mask"] == [0] * len(p_ids) + [1] * (len(c_ids) + 1)
    assert r["prompt_length"] == len(p_ids)
    assert all(sum(out[i][f"{s}_attention_mask"]) == len(out[i][f"{s}_input_ids"]) for i in range(2) for s in ("chosen", "rejected"))
    # exactly at the limit is kept, one over is dropped ("< max_length tokens before EOS" as in the paper)
    n = len(p_ids) + 3 + 1
    mp = len(p_ids)
    _, c1 = tokenize_preference_dataset(ds.select([0]), tok, max_prompt_length=mp, max_length=n)
    _, c2 = tokenize_preference_dataset(ds.select([0]), tok, max_prompt_length=mp, max_length=n - 1)
    _, c3 = tokenize_preference_dataset(ds.select([0]), tok, max_prompt_length=mp - 1, max_length=n)
    assert c1["rows_kept"] == 1 and c2["dropped_too_long"] == 1 and c3["dropped_prompt_too_long"] == 1


def test_response_mask_matches_sequence_logps_convention(tok):
    ds = datasets.Dataset.from_list(rows()[:1])
    out, _ = tokenize_preference_dataset(ds, tok, max_prompt_length=40, max_length=48)
    b = collate_preference([out[0]], tok.pad_token_id)
    ids, mask = b["chosen_input_ids"], b["chosen_response_mask"]
    torch.manual_seed(0)
    logits = torch.randn(1, ids.shape[1], len(tok))
    z = sequence_logps(logits, ids, mask)
    # independent: sum over response tokens t of log softmax(logits[t-1])[ids[t]]
    lp = torch.log_softmax(logits, -1)
    start = out[0]["prompt_length"]
    expected = sum(lp[0, t - 1, ids[0, t]] for t in range(start, ids.shape[1]))
    assert torch.allclose(z, expected.reshape(1), atol=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_collate_preference_pads_common_length(tok, side):
    ds = datasets.Dataset.from_list(rows())
    out, _ = tokenize_preference_dataset(ds, tok, max_prompt_length=40, max_length=48)
    out = out.add_column("ref_chosen_logp", [-1.5, -2.0]).add_column("ensemble_chosen_rewards", [[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    b = collate_preference([out[0], out[1]], tok.pad_token_id, padding_side=side)
    T = max(len(out[i][f"{s}_input_ids"]) for i in range(2) for s in ("chosen", "rejected"))
    for k in ("chosen_input_ids", "rejected_input_ids", "chosen_attention_mask", "rejected_response_mask"):
        assert b[k].shape == (2, T) and b[k].dtype == torch.long
    assert b["ref_chosen_logp"].dtype == torch.float32 and b["ref_chosen_logp"].tolist() == [-1.5, -2.0]
    assert b["ensemble_chosen_rewards"].shape == (2, 3)
    seq = out[1]["rejected_input_ids"]
    row = b["rejected_input_ids"][1].tolist()
    assert (row[: len(seq)] if side == "right" else row[T - len(seq):]) == seq
    pads = [x for x, m in zip(row, b["rejected_attention_mask"][1].tolist()) if m == 0]
    assert pads == [tok.pad_token_id] * (T - len(seq))
    assert "prompt" not in b and "id" not in b


def test_tokenize_sft(tok):
    ds = datasets.Dataset.from_list([dict(prompt=P, label="cat sat"), dict(prompt=P, label=""), dict(prompt=P, label="x " * 50)])
    out, counts = tokenize_sft_dataset(ds, tok, max_length=40)
    assert out.column_names == ["input_ids", "completion_mask"]
    assert counts["rows_kept"] == 1 and counts["dropped_empty_response"] == 1 and counts["dropped_too_long"] == 1
    r = out[0]
    assert r["input_ids"][-1] == tok.eos_token_id and r["completion_mask"][-3:] == [1, 1, 1]
    assert sum(r["completion_mask"]) == 3


def test_bpe_tokenizer_space_before_response():
    """For a BPE tokenizer the response after 'TL;DR:' starts with a space token, like generated text would."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, "TL": 1, ";": 2, "DR": 3, ":": 4, "Ġcat": 5, "cat": 6, "Ġ": 7}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    t = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<eos>")
    ds = datasets.Dataset.from_list([dict(prompt="TL;DR:", chosen="cat", rejected="cat cat")])
    out, _ = tokenize_preference_dataset(ds, t, max_prompt_length=10, max_length=20, template="raw")
    assert out[0]["chosen_input_ids"] == [1, 2, 3, 4, 5, 0]
