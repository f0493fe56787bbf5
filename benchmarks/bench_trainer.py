"""Step time and peak memory: our PreferenceTrainer (DRDO) vs TRL's DPOTrainer.

    python benchmarks/bench_trainer.py                 # defaults: ~59M-parameter GPT-2, 4 pairs, 2 threads, CPU
    python benchmarks/bench_trainer.py --threads 2 --batch 4 --steps 6 --warmup 2 --rounds 2 --device cpu
    python benchmarks/bench_trainer.py --model smollm2-135m-instruct --prompt-words 64 --response-words 16 --batch 2

Each configuration runs in its own subprocess (same model config, seed, batch, sequence lengths and thread count):

- ``drdo``      our trainer, DRDO loss, student with a reward head, precomputed oracle rewards (no other model);
- ``trl_live``  ``trl.DPOTrainer`` with a live reference model (a copy of the policy, forward under no_grad);
- ``trl_pre``   ``trl.DPOTrainer(precompute_ref_log_probs=True)`` (reference log-probs computed before training);
- ``bare``      a bare policy-only loop on the same batches, no ``Trainer``: one forward of chosen + rejected with
                response-span logits (as our trainer), summed log-probs, ``-log σ(z_w − z_l)``, backward, AdamW step
                (no clipping, no scheduler, no reward head, no metrics) — the floor of any reference-free method.

``--model`` picks the network: ``gpt2-bench`` (default: a GPT-2 from a config, ``--layers``/``--dim``/``--vocab``,
word-level tokenizer) or ``smollm2-135m-instruct`` (the real pretrained SmolLM2-135M-Instruct, 134.5M parameters,
its own BPE tokenizer; fetched and converted once by :mod:`drdo_lib.smollm`; the random words are then drawn from
the tokenizer's single-token English words, so ``--prompt-words`` ≈ prompt tokens).

Step time: median wall time of the optimizer steps after ``--warmup`` steps (measured by a callback between
``on_step_begin`` and ``on_step_end``; forward, backward and optimizer step of one batch); ``--timer cpu`` measures
the worker's CPU time instead (for a machine shared with other jobs, with ``--threads 1``). The workers run
``--rounds`` times, interleaved (drdo, trl_live, trl_pre, bare, drdo, ...), and each configuration's smallest
per-round median is kept, so that load from other processes on a shared machine penalises no configuration in
particular. Peak memory: peak resident
set size of the worker (``ru_maxrss``) minus its resident size just before the model is built (after imports and
data preparation, identical in every worker), i.e. the memory the training itself needs: weights, gradients, Adam
states, activations, and for ``trl_live`` the reference model. Both totals are printed as well. With
``--device cuda`` the peak is ``torch.cuda.max_memory_allocated`` instead.

Activation checkpointing (``--activation-checkpointing``, default on, as in the paper profiles and TRL's
``DPOConfig``; ``--no-activation-checkpointing`` for the other setting) is set identically in every worker, and each
worker checks after training that it was in effect.

The data imitate TL;DR (long prompts, short summaries): random words from a ``--vocab``-word vocabulary, prompts of
``--prompt-words`` words and responses of ``--response-words``. The script ends with exactly four lines::

    step drdo/trl_live_ref = X
    step drdo/trl_precomputed_ref = Y
    peak_memory drdo/trl_live_ref = Z
    step drdo/bare_policy = W
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKERS = ("drdo", "trl_live", "trl_pre", "bare")
MODELS = ("gpt2-bench", "smollm2-135m-instruct")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _clock(a: argparse.Namespace) -> float:
    """Seconds for the step timer: wall clock, or with ``--timer cpu`` this process's CPU time (all its threads),
    which other processes' load on a shared machine barely changes (use it with ``--threads 1``: waiting OpenMP
    threads spin, and their spinning is CPU time too)."""
    return time.process_time() if a.timer == "cpu" else time.perf_counter()


def _rows(n: int, vocab: list[str], prompt_words: int, response_words: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": "POST: " + " ".join(rng.choices(vocab, k=prompt_words)) + " TL;DR:",
             "chosen": " " + " ".join(rng.choices(vocab, k=response_words)),
             "rejected": " " + " ".join(rng.choices(vocab, k=response_words)),
             "oracle_chosen_reward": rng.gauss(0, 1), "oracle_rejected_reward": rng.gauss(0, 1)} for _ in range(n)]


def worker(a: argparse.Namespace) -> dict:
    import datasets
    import torch
    import transformers
    import trl  # noqa: F401  (imported by every worker, so the baselines match)
    from transformers import TrainerCallback

    from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer, count_parameters

    torch.set_num_threads(a.threads)
    transformers.set_seed(0)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    if a.model == "gpt2-bench":
        vocab = [f"w{i}" for i in range(a.vocab)]
        tok = build_tokenizer("tiny-gpt2", vocab_words=vocab + ["POST:", "TL;DR:"], vocab_size=a.vocab + 64)
        size = {"n_layer": a.layers, "n_embd": a.dim, "n_head": a.dim // 64, "n_positions": 512}
        name = "tiny-gpt2"
    else:  # a real pretrained model: its own tokenizer; words = its single-token lowercase English words
        tok = build_tokenizer(a.model)
        vocab = sorted(t[1:] for t in tok.get_vocab() if t.startswith("\u0120") and t[1:].isalpha() and t[1:].islower()
                       and len(t) > 3)[: a.vocab]
        size, name = None, a.model
    n = a.batch * (a.warmup + a.steps)
    rows = datasets.Dataset.from_list(_rows(n, vocab, a.prompt_words, a.response_words, seed=1))
    timings: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = _clock(a)

        def on_step_end(self, args, state, control, **kw):
            timings.append(_clock(a) - self.t0)

    common = dict(per_device_train_batch_size=a.batch, gradient_accumulation_steps=1, max_steps=a.warmup + a.steps,
                  learning_rate=1e-5, lr_scheduler_type="constant", optim="adamw_torch", logging_steps=10_000,
                  save_strategy="no", report_to="none", disable_tqdm=True, seed=0, data_seed=0,
                  dataloader_num_workers=0, use_cpu=a.device == "cpu", bf16=a.bf16,
                  # Explicit for every worker: TRL's DPOConfig turns activation checkpointing ON by default while
                  # transformers' TrainingArguments leave it off, so unset it would compare different trade-offs.
                  activation_checkpointing=a.activation_checkpointing,
                  activation_checkpointing_kwargs={"use_reentrant": False} if a.activation_checkpointing else None)
    out_dir = tempfile.mkdtemp(prefix=f"bench_{a.worker}_")
    if a.worker == "drdo":
        from drdo_lib.data.tokenize import tokenize_preference_dataset
        from drdo_lib.policy import PolicyConfig
        from drdo_lib.trainer import PreferenceTrainer

        ds, _ = tokenize_preference_dataset(rows, tok, max_prompt_length=500, max_length=512)
        baseline = _rss_mb()
        model = CausalLMWithRewardHead.from_causal_lm(build_causal_lm(name, tok, seed=0, size=size), 0)
        cfg = PolicyConfig(methods=["drdo"], per_device_train_batch_size=a.batch, max_steps=a.warmup + a.steps)
        args = transformers.TrainingArguments(output_dir=out_dir, remove_unused_columns=False, **common)
        trainer = PreferenceTrainer(model, cfg, "drdo", args=args, train_dataset=ds, pad_token_id=tok.pad_token_id,
                                    callbacks=[StepTimer()])
    elif a.worker == "bare":
        return _bare_worker(a, rows, tok, lambda: build_causal_lm(name, tok, seed=0, size=size))
    else:
        from trl import DPOConfig, DPOTrainer

        ds = rows.select_columns(["prompt", "chosen", "rejected"])
        baseline = _rss_mb()
        model = build_causal_lm(name, tok, seed=0, size=size)
        pre = a.worker == "trl_pre"
        ref = None
        if not pre:
            ref = build_causal_lm(name, tok, seed=0, size=size)
        args = DPOConfig(output_dir=out_dir, max_length=512, precompute_ref_log_probs=pre, beta=0.1, **common)
        trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tok,
                             callbacks=[StepTimer()])
    params = count_parameters(model)
    t0 = time.perf_counter()
    trainer.train()
    lm = getattr(trainer.model, "lm", trainer.model)
    checkpointing = bool(getattr(lm, "is_gradient_checkpointing", False))
    if checkpointing != a.activation_checkpointing:
        raise RuntimeError(f"{a.worker}: activation checkpointing is {checkpointing}, asked {a.activation_checkpointing}")
    total = time.perf_counter() - t0
    peak_train = _peak_rss_mb() - baseline
    if a.device == "cuda":  # GPU memory: torch's allocator peak (the host RSS is not what matters there)
        peak_train = torch.cuda.max_memory_allocated() / 2**20
    timed = sorted(timings[a.warmup:])
    median = timed[len(timed) // 2] if len(timed) % 2 else 0.5 * (timed[len(timed) // 2 - 1] + timed[len(timed) // 2])
    return {"worker": a.worker, "parameters": params, "threads": torch.get_num_threads(), "batch_pairs": a.batch,
            "step_s": median, "step_s_all": timings, "train_s": total,
            "rss_baseline_mb": baseline, "peak_rss_mb": _peak_rss_mb(),
            "peak_train_mb": peak_train, "device": str(trainer.args.device), "checkpointing": checkpointing}


def _bare_worker(a: argparse.Namespace, rows, tok, build) -> dict:
    """The floor of a reference-free method: the policy's forward + backward + AdamW step on the same batches, with
    nothing else (no Trainer, reward head, reference, clipping, scheduler or metrics)."""
    import torch

    from drdo_lib import losses as L
    from drdo_lib.data.tokenize import collate_preference, tokenize_preference_dataset
    from drdo_lib.models import count_parameters

    ds, _ = tokenize_preference_dataset(rows, tok, max_prompt_length=500, max_length=512)
    device = torch.device(a.device)
    baseline = _rss_mb()
    model = build().to(device)
    if a.activation_checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    timings: list[float] = []
    t_all = time.perf_counter()
    for step in range(a.warmup + a.steps):
        batch = collate_preference([ds[i] for i in range(step * a.batch, (step + 1) * a.batch)], tok.pad_token_id,
                                   padding_side="right")
        t0 = _clock(a)
        ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]]).to(device)
        att = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]]).to(device)
        resp = torch.cat([batch["chosen_response_mask"], batch["rejected_response_mask"]]).to(device)
        keep = ids.shape[1] - max(int(resp.float().argmax(-1).min()) - 1, 0)  # response-span logits only
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(input_ids=ids, attention_mask=att, logits_to_keep=keep, use_cache=False).logits
        start = ids.shape[1] - logits.shape[1]
        z = L.sequence_logps(logits.float(), ids[:, start:], resp[:, start:], reduction="sum")
        n = batch["chosen_input_ids"].shape[0]
        loss = -torch.nn.functional.logsigmoid(z[:n] - z[n:]).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(_clock(a) - t0)
    total = time.perf_counter() - t_all
    peak_train = _peak_rss_mb() - baseline
    if a.device == "cuda":
        peak_train = torch.cuda.max_memory_allocated() / 2**20
    timed = sorted(timings[a.warmup:])
    median = timed[len(timed) // 2] if len(timed) % 2 else 0.5 * (timed[len(timed) // 2 - 1] + timed[len(timed) // 2])
    return {"worker": "bare", "parameters": count_parameters(model), "threads": torch.get_num_threads(),
            "batch_pairs": a.batch, "step_s": median, "step_s_all": timings, "train_s": total,
            "rss_baseline_mb": baseline, "peak_rss_mb": _peak_rss_mb(), "peak_train_mb": peak_train,
            "device": str(device), "checkpointing": bool(model.is_gradient_checkpointing)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", choices=MODELS, default="gpt2-bench",
                   help="gpt2-bench (a GPT-2 from a config: --layers/--dim/--vocab) or smollm2-135m-instruct (the real "
                        "pretrained model; --layers/--dim ignored, --vocab caps the word list)")
    p.add_argument("--threads", type=int, default=2, help="torch threads in every worker (default 2)")
    p.add_argument("--batch", type=int, default=4, help="preference pairs per step (default 4)")
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps (default 6)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    p.add_argument("--layers", type=int, default=10, help="transformer layers (default 10)")
    p.add_argument("--dim", type=int, default=640, help="hidden size (default 640; heads = dim / 64)")
    p.add_argument("--vocab", type=int, default=16000, help="vocabulary words (default 16000)")
    p.add_argument("--prompt-words", type=int, default=192, help="words per prompt (default 192)")
    p.add_argument("--response-words", type=int, default=40, help="words per response (default 40)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device (default cpu)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    p.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=True,
                   help="activation (gradient) checkpointing in every worker (default on: TRL's DPOConfig default and "
                        "the paper profiles configs/tldr.yaml, configs/ultrafeedback.yaml)")
    p.add_argument("--timer", choices=["wall", "cpu"], default="wall",
                   help="step timer: wall clock (default) or the worker's CPU time (robust to other jobs on a shared "
                        "machine; use with --threads 1)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of the three workers (default 2)")
    p.add_argument("--json", default=None, help="also write all measurements to this JSON file")
    a = p.parse_args()
    if a.worker:
        print("BENCH_RESULT " + json.dumps(worker(a)), flush=True)
        return
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(a.threads)}
    if a.model != "gpt2-bench":  # fetch + convert once here, not in (and timed by) a worker
        sys.path.insert(0, str(REPO))
        from drdo_lib.models import resolve_model_name

        resolve_model_name(a.model)
    passthrough = [f"--model={a.model}", f"--threads={a.threads}", f"--batch={a.batch}", f"--steps={a.steps}",
                   f"--warmup={a.warmup}",
                   f"--layers={a.layers}", f"--dim={a.dim}", f"--vocab={a.vocab}", f"--prompt-words={a.prompt_words}",
                   f"--response-words={a.response_words}", f"--device={a.device}", f"--timer={a.timer}",
                   "--activation-checkpointing" if a.activation_checkpointing else "--no-activation-checkpointing"]
    passthrough += ["--bf16"] if a.bf16 else []
    rounds: dict[str, list[dict]] = {w: [] for w in WORKERS}
    for _ in range(a.rounds):
        for w in WORKERS:
            proc = subprocess.run([sys.executable, __file__, "--worker", w, *passthrough], env=env,
                                  capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT ")]
            if proc.returncode != 0 or not line:
                sys.exit(f"worker {w} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
            rounds[w].append(json.loads(line[-1][len("BENCH_RESULT "):]))
    results = {}
    for w, rs in rounds.items():
        best = dict(min(rs, key=lambda r: r["step_s"]))
        best["step_s_rounds"] = [r["step_s"] for r in rs]
        best["peak_train_mb"] = min(r["peak_train_mb"] for r in rs)  # memory is deterministic up to allocator noise
        results[w] = best
    arch = f"GPT-2 {a.layers} layers x {a.dim}, vocab {a.vocab}" if a.model == "gpt2-bench" else a.model
    print(f"model: {arch}, {results['bare']['parameters']:,} parameters "
          f"(+ reward head for drdo); batch {a.batch} pairs of ~{a.prompt_words}+{a.response_words} words; "
          f"{a.threads} threads; device {results['drdo']['device']}; {a.steps} timed steps after {a.warmup} "
          f"({a.timer} time); "
          f"activation checkpointing {'on' if a.activation_checkpointing else 'off'} in every worker")
    print(f"{'config':10s} {'step s':>8s} {'per round':>20s} {'peak RSS MB':>12s} {'baseline MB':>12s} "
          f"{'train MB':>9s}")
    for w, r in results.items():
        per = ", ".join(f"{x:.3f}" for x in r["step_s_rounds"])
        print(f"{w:10s} {r['step_s']:8.3f} {per:>20s} {r['peak_rss_mb']:12.0f} {r['rss_baseline_mb']:12.0f} "
              f"{r['peak_train_mb']:9.0f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=2))
    d, live, pre, bare = results["drdo"], results["trl_live"], results["trl_pre"], results["bare"]
    print(f"step drdo/trl_live_ref = {d['step_s'] / live['step_s']:.3f}")
    print(f"step drdo/trl_precomputed_ref = {d['step_s'] / pre['step_s']:.3f}")
    print(f"peak_memory drdo/trl_live_ref = {d['peak_train_mb'] / live['peak_train_mb']:.3f}")
    print(f"step drdo/bare_policy = {d['step_s'] / bare['step_s']:.3f}")


if __name__ == "__main__":
    main()
