"""Pairwise LLM judge (Tables 1 and 3) and the gold-reward judge of the synthetic testbed, behind one function.

``judge_pairs(prompts, responses_a, responses_b, references=None, *, template, model, base_url=None, cache_dir, ...)``
returns a DataFrame with one row per pair: ``winner`` ("a", "b", or None), ``outcome`` ("a", "b", "tie",
"discarded"), ``swapped`` (B was shown first), ``raw`` (the judge's text) and bookkeeping columns.

Protocol (paper Sec. 6 and Appendix E): the two responses are shown in a seeded random A/B order per pair
(``order="random"``), or in both orders (``order="both"``: a pair is won only when both orders agree; disagreement
is a tie, and the share of agreeing pairs is the position consistency). An answer without a readable
``Preferred: A|B`` is *discarded*: it leaves the denominator and is counted, as the paper did for its < 10
unjudged TL;DR samples.

The remote judge talks to any OpenAI-compatible server through the ``openai`` client:
- the API key is read from the environment variable named by ``api_key_env`` and nowhere else; it is never
  logged, cached, or put in the DataFrame. ``api_key_env`` may be left out only for api.openai.com (it is then
  ``OPENAI_API_KEY``): any other ``base_url`` must name its variable, so the OpenAI key is never sent to another
  server unless ``api_key_env="OPENAI_API_KEY"`` says so (a keyless local server: name any unset variable, and a
  placeholder key is sent);
- transient failures (429, 5xx, timeouts, dropped connections) are retried with exponential backoff and jitter
  (``Retry-After`` honoured up to ``backoff_max``); other errors stop the run;
- at most ``max_concurrency`` requests are in flight (a thread pool);
- every finished judgement is written at once, atomically, to ``cache_dir`` under the SHA-256 of the full request
  (base_url, model, messages, decoding parameters), so an interrupted run loses nothing finished and a rerun sends
  only the missing requests;
- before any request the cost of the uncached ones is estimated (~4 characters per prompt token, ``max_tokens``
  output tokens each, prices in USD per million tokens from ``prices``), logged, and checked against ``max_cost``.

``model="gold"`` needs no network: ``reward_fn(prompt, response) -> float`` (e.g. the synthetic testbed's
``true_reward``) scores both responses and the higher wins; equal rewards are ties.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from drdo_lib.errors import install_log_redaction, redact, redacted_repr
from drdo_lib.judge_prompts import DEFAULT_PARAMS, TEMPLATES, build_messages, parse_alpaca, parse_preferred
from drdo_lib.winrates import bootstrap_ci

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"


def is_openai_url(base_url: str | None) -> bool:
    """True for ``None`` (the default endpoint) and any https URL on api.openai.com."""
    if base_url is None:
        return True
    parts = urllib.parse.urlsplit(base_url)
    return parts.scheme == "https" and (parts.hostname or "").lower() == "api.openai.com"

#: USD per million (input, output) tokens; a setting (``prices=``), checked only for the cost estimate.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4-1106-preview": (10.00, 30.00),
    "gpt-4-turbo-2024-04-09": (10.00, 30.00),
}


class CostLimitExceeded(RuntimeError):
    """The estimated cost of the uncached requests is above ``max_cost``; nothing was sent."""


@dataclasses.dataclass(frozen=True)
class JudgeSettings:
    """Settings of one judged comparison (the keyword arguments of :func:`judge_pairs` besides the data)."""

    template: str  # "tldr_reference" (paper Fig. 5), "vs_human" (Fig. 6) or "alpaca" (AlpacaEval annotator)
    model: str  # judge model id ("gpt-4o", "gpt-4-turbo", a local model name), or "gold" for the reward judge
    base_url: str | None = None  # OpenAI-compatible endpoint; None = api.openai.com
    order: str = "random"  # "random": one judgement per pair in a seeded random A/B order; "both": both orders
    seed: int = 0  # seeds the A/B order
    max_concurrency: int = 8  # requests in flight at most
    api_key_env: str | None = None  # NAME of the environment variable holding the key (never the key itself);
    #   None = OPENAI_API_KEY, allowed only for api.openai.com: another base_url must name its variable
    temperature: float | None = None  # None = template default (0 for the paper's prompts, 1 for AlpacaEval's)
    max_tokens: int | None = None  # None = template default (256 paper prompts, 1 AlpacaEval)
    timeout: float = 60.0  # seconds before a request counts as timed out (and is retried)
    max_retries: int = 6  # retries of a transient failure before the run stops
    backoff_base: float = 1.0  # first retry waits ~backoff_base s, doubling each time (with jitter)
    backoff_max: float = 60.0  # cap on one wait (also on a server's Retry-After)
    max_cost: float | None = None  # USD; refuse to start when the estimated cost of uncached requests is above
    tie_tol: float = 0.0  # gold judge: |r_a - r_b| <= tie_tol is a tie

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {self.template!r}")
        if not self.model:
            raise ValueError("model must be a model id or 'gold'")
        if self.order not in ("random", "both"):
            raise ValueError(f"order must be 'random' or 'both', got {self.order!r}")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0 or self.timeout <= 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("max_retries, backoff_base, backoff_max must be >= 0 and timeout > 0")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.max_cost is not None and self.max_cost < 0:
            raise ValueError(f"max_cost must be >= 0, got {self.max_cost}")
        if self.api_key_env is not None and (not self.api_key_env
                                             or not self.api_key_env.replace("_", "").isalnum()):
            raise ValueError("api_key_env must be the NAME of an environment variable, e.g. 'OPENAI_API_KEY'")
        if self.model != "gold" and self.api_key_env is None and not is_openai_url(self.base_url):
            raise ValueError(
                f"the judge at base_url={redact(self.base_url)!r} is not api.openai.com: name the environment variable "
                f"that holds its key with api_key_env= (eval config: judge_api_key_env); {OPENAI_KEY_ENV} is sent only "
                f"to api.openai.com unless api_key_env={OPENAI_KEY_ENV!r} is set explicitly")

    def __repr__(self) -> str:  # a password in base_url is never shown
        return redacted_repr(self)

    @property
    def key_env(self) -> str:
        """The environment variable the key is read from (``api_key_env``, or OPENAI_API_KEY for api.openai.com)."""
        return self.api_key_env if self.api_key_env is not None else OPENAI_KEY_ENV

    def request_params(self) -> dict[str, Any]:
        """Decoding parameters sent with every request (template defaults, overridden where set)."""
        params = dict(DEFAULT_PARAMS[self.template])
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params


# ----------------------------------------------------------------------------------------------- cache
def request_key(base_url: str | None, model: str, messages: list[dict], params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the full request (no credentials are part of it)."""
    payload = {"base_url": (base_url or DEFAULT_BASE_URL).rstrip("/"), "model": model, "messages": messages,
               "params": dict(sorted(params.items()))}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    """One JSON file per finished judgement, ``<dir>/<key[:2]>/<key>.json``, written via a temp file + rename.

    An entry that cannot be read or lacks ``response.text`` is a miss (logged with its path): it is requested again
    and overwritten."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            entry = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):  # a torn file cannot happen with rename, but
            log.warning("unreadable cache entry %s; it will be requested again", p)  # never trust disk
            return None
        response = entry.get("response") if isinstance(entry, dict) else None
        if not (isinstance(response, dict) and isinstance(response.get("text"), str)
                and isinstance(response.get("top_logprobs", None), (list, type(None)))):
            log.warning("malformed cache entry %s (no response text); it will be requested again", p)
            return None
        return entry

    def put(self, key: str, entry: dict) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f, ensure_ascii=False, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# ------------------------------------------------------------------------------------------- cost estimate
def estimate_cost(requests: Sequence[dict], model: str, max_tokens: int,
                  prices: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Rough cost of ``requests`` (each with ``messages``): ~4 characters per input token, ``max_tokens`` out.

    Returns ``n_requests``, ``input_tokens``, ``output_tokens`` and ``usd`` (NaN when ``model`` has no price).
    """
    prices = DEFAULT_PRICES if prices is None else prices
    chars = sum(len(m["content"]) + 16 for r in requests for m in r["messages"])  # + per-message overhead
    tin, tout = int(math.ceil(chars / 4)), max_tokens * len(requests)
    pin, pout = prices.get(model, (float("nan"), float("nan")))
    return {"n_requests": len(requests), "input_tokens": tin, "output_tokens": tout,
            "usd": (tin * pin + tout * pout) / 1e6}


# ------------------------------------------------------------------------------------------- remote calls
_TRANSIENT_STATUS = {408, 409, 429}


class JudgeServerError(RuntimeError):
    """The judge server answered 200 with a body the judge cannot use (no ``choices``, or not JSON); the message
    quotes the start of the answer. Retried like a transient failure (a restarting server often does this)."""


def _server_url(settings: "JudgeSettings") -> str:
    return redact(settings.base_url or DEFAULT_BASE_URL)


def _excerpt(text: Any, n: int = 300) -> str:
    text = redact(str(text))
    return repr(text[:n] + ("..." if len(text) > n else ""))


def _is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, JudgeServerError)):
        return True  # timeouts, dropped connections, a 200 without a usable body
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _TRANSIENT_STATUS or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    try:
        value = response.headers.get("retry-after") if response is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _make_client(settings: JudgeSettings):
    import openai

    install_log_redaction()  # the HTTP client logs request URLs: credentials in base_url are masked there
    env = settings.key_env
    key = os.environ.get(env)
    if not key:
        if is_openai_url(settings.base_url):
            raise RuntimeError(f"the judge needs an API key in the environment variable {env}")
        key = "unused"  # local OpenAI-compatible servers usually ignore the key; the client wants a value
        log.info("no %s in the environment; sending a placeholder key to %s", env, _server_url(settings))
    return openai.OpenAI(api_key=key, base_url=settings.base_url or DEFAULT_BASE_URL, timeout=settings.timeout,
                         max_retries=0)


def _create(client, settings: JudgeSettings, messages: list[dict], params: dict):
    """One request; a 200 answer without a usable choice, or with a body that is not JSON, raises
    :class:`JudgeServerError` quoting the answer."""
    try:
        resp = client.chat.completions.create(model=settings.model, messages=messages, **params)
    except json.JSONDecodeError as e:
        raise JudgeServerError(f"the judge server at {_server_url(settings)} answered a body that is not JSON "
                               f"({e.msg}): {_excerpt(e.doc)}") from None
    choices = getattr(resp, "choices", None)
    if not choices or getattr(choices[0], "message", None) is None:
        raise JudgeServerError(f"the judge server at {_server_url(settings)} answered without a choice: "
                               f"{_excerpt(resp)}")
    return resp


def _complete(client, settings: JudgeSettings, messages: list[dict], params: dict, rng: random.Random) -> dict:
    """One chat completion with retries; returns the cache entry's ``response`` part."""
    for attempt in range(settings.max_retries + 1):
        try:
            resp = _create(client, settings, messages, params)
            choice = resp.choices[0]
            top = None
            if getattr(choice, "logprobs", None) is not None and choice.logprobs.content:
                top = [{"token": t.token, "logprob": t.logprob} for t in choice.logprobs.content[0].top_logprobs]
            usage = resp.usage.model_dump() if getattr(resp, "usage", None) is not None else None
            return {"text": choice.message.content or "", "top_logprobs": top, "usage": usage,
                    "attempts": attempt + 1}
        except Exception as exc:  # noqa: BLE001 - classified right below
            if not _is_transient(exc) or attempt == settings.max_retries:
                raise
            wait_s = min(settings.backoff_max, settings.backoff_base * 2 ** attempt) * (0.5 + rng.random())
            hinted = _retry_after(exc)
            if hinted is not None:
                wait_s = max(wait_s, min(hinted, settings.backoff_max))
            log.warning("judge request failed (%s: %s); retry %d/%d in %.2fs", type(exc).__name__,
                        redact(str(exc))[:300], attempt + 1, settings.max_retries, wait_s)
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def _split_cached(jobs: list[dict], cache: JudgeCache) -> list[dict]:
    """Fill cached responses into ``jobs``; return the jobs that still need a request."""
    todo = []
    for job in jobs:
        hit = cache.get(job["key"])
        job["cached"] = hit is not None
        if hit is not None:
            job["response"] = hit["response"]
        else:
            todo.append(job)
    return todo


def _run_requests(jobs: list[dict], settings: JudgeSettings, cache: JudgeCache,
                  prices: Mapping[str, tuple[float, float]] | None = None) -> None:
    """Fill ``job["response"]`` for every job, from the cache or the server (writing the cache as each ends)."""
    todo = _split_cached(jobs, cache)
    params = settings.request_params()
    est = estimate_cost(todo, settings.model, params["max_tokens"], prices)
    cost = "price unknown" if math.isnan(est["usd"]) else f"~${est['usd']:.2f}"
    log.info("judge %s at %s: %d requests (%d cached); estimated %d input + %d output tokens, %s",
             settings.model, _server_url(settings), len(jobs), len(jobs) - len(todo),
             est["input_tokens"], est["output_tokens"], cost)
    if settings.max_cost is not None and todo:
        if math.isnan(est["usd"]):
            raise CostLimitExceeded(f"max_cost is set but model {settings.model!r} has no price; pass prices=")
        if est["usd"] > settings.max_cost:
            raise CostLimitExceeded(f"estimated ${est['usd']:.2f} for {len(todo)} requests > max_cost "
                                    f"${settings.max_cost:.2f}; nothing was sent")
    if not todo:
        return
    client = _make_client(settings)
    seeds = np.random.default_rng(settings.seed).integers(0, 2**31, size=len(todo))

    def work(job: dict, jitter_seed: int) -> None:
        response = _complete(client, settings, job["messages"], params, random.Random(int(jitter_seed)))
        entry = {"request": {"base_url": _server_url(settings).rstrip("/"),
                             "model": settings.model, "messages": job["messages"], "params": params},
                 "response": response}
        cache.put(job["key"], entry)
        job["response"] = response

    try:
        with ThreadPoolExecutor(max_workers=settings.max_concurrency) as pool, \
                tqdm(total=len(todo), desc=f"judge {settings.model}", unit="req") as bar:
            futures = [pool.submit(work, job, s) for job, s in zip(todo, seeds)]
            try:
                for fut in as_completed(futures):
                    fut.result()  # re-raises a non-transient failure; requests in flight finish and are cached
                    bar.update(1)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        client.close()


# ----------------------------------------------------------------------------------------------- verdicts
_NULLABLE = ("winner", "winner_unswapped", "winner_swapped", "consistent")


def _frame(rows: list[dict]) -> pd.DataFrame:
    """DataFrame whose verdict columns keep ``None`` (object dtype; pandas would turn it into NaN)."""
    df = pd.DataFrame(rows)
    for col in _NULLABLE:
        if col in df:
            df[col] = pd.Series([r[col] for r in rows], index=df.index, dtype=object)
    return df


def _verdict(template: str, response: dict, swapped: bool) -> tuple[str | None, float, bool]:
    """(winner in the caller's a/b terms or None, P(b better) or NaN, tie) from one response."""
    if template == "alpaca":
        shown, p_second = parse_alpaca(response["text"], response.get("top_logprobs"))
        tie = shown is None and p_second == 0.5
    else:
        shown, p_second, tie = parse_preferred(response["text"]), float("nan"), False
        if shown is not None:
            p_second = 1.0 if shown == "B" else 0.0
    if shown is None:
        return None, (0.5 if tie else float("nan")), tie
    winner = {"A": "a", "B": "b"}[shown]
    if swapped:
        winner = {"a": "b", "b": "a"}[winner]
        p_second = 1.0 - p_second
    return winner, p_second, False


def _gold_pairs(prompts, responses_a, responses_b, reward_fn, settings: JudgeSettings) -> pd.DataFrame:
    rows = []
    for i, (x, ya, yb) in enumerate(tqdm(list(zip(prompts, responses_a, responses_b)), desc="gold judge",
                                         unit="pair", disable=len(prompts) < 200)):
        ra, rb = float(reward_fn(x, ya)), float(reward_fn(x, yb))
        if abs(ra - rb) <= settings.tie_tol:
            winner, outcome = None, "tie"
        else:
            winner = "a" if ra > rb else "b"
            outcome = winner
        rows.append({"pair": i, "winner": winner, "outcome": outcome, "swapped": False,
                     "raw": f"r_a={ra:.6g} r_b={rb:.6g}", "reward_a": ra, "reward_b": rb, "p_b": float(rb > ra)
                     if outcome != "tie" else 0.5, "cached": False})
    return _frame(rows)


def judge_pairs(prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str],
                references: Sequence[str] | None = None, *, template: str, model: str, base_url: str | None = None,
                cache_dir: str | Path | None, order: str = "random", seed: int = 0, max_concurrency: int = 8,
                reward_fn: Callable[[str, str], float] | None = None,
                prices: Mapping[str, tuple[float, float]] | None = None, **settings: Any) -> pd.DataFrame:
    """Judge each pair (prompt, response a, response b); one DataFrame row per pair.

    Columns: ``pair`` (index), ``winner`` ("a", "b", or None when tied or discarded), ``outcome`` ("a", "b",
    "tie", "discarded"), ``swapped`` (b was shown first; with ``order="both"`` the row's ``raw`` is the unswapped
    answer and ``raw_swapped`` the other), ``raw`` (the judge's text), ``p_b`` (probability b is better: 0/1 from
    the text, AlpacaEval's log-prob weight for ``"alpaca"``), ``cached``; with ``order="both"`` also
    ``winner_unswapped``, ``winner_swapped`` and ``consistent``; for the gold judge ``reward_a``, ``reward_b``.

    ``references`` are the human-written summaries (needed by ``template="tldr_reference"``). Further keyword
    settings are the fields of :class:`JudgeSettings` (``api_key_env``, ``timeout``, ``max_retries``,
    ``backoff_base``, ``backoff_max``, ``max_cost``, ``temperature``, ``max_tokens``, ``tie_tol``); ``prices``
    maps model id to USD per million (input, output) tokens for the cost estimate.
    """
    cfg = JudgeSettings(template=template, model=model, base_url=base_url, order=order, seed=seed,
                        max_concurrency=max_concurrency, **settings)
    n = len(prompts)
    if len(responses_a) != n or len(responses_b) != n or (references is not None and len(references) != n):
        raise ValueError("prompts, responses_a, responses_b (and references) must have the same length")
    if n == 0:
        raise ValueError("nothing to judge: no pairs given")
    if cfg.model == "gold":
        if reward_fn is None:
            raise ValueError("model='gold' needs reward_fn(prompt, response) -> float (e.g. testbed.true_reward)")
        return _gold_pairs(prompts, responses_a, responses_b, reward_fn, cfg)
    if cache_dir is None:
        raise ValueError("a remote judge needs cache_dir (finished judgements are cached there)")
    return _judge_remote(prompts, responses_a, responses_b, references, cfg, JudgeCache(cache_dir), prices)


def _build_jobs(prompts, responses_a, responses_b, references, cfg: JudgeSettings) -> list[dict]:
    """One request per pair (``order="random"``, seeded A/B order) or two (``order="both"``)."""
    n = len(prompts)
    if len(responses_a) != n or len(responses_b) != n or (references is not None and len(references) != n):
        raise ValueError("prompts, responses_a, responses_b (and references) must have the same length")
    if cfg.order == "random":
        orders = [[bool(s)] for s in np.random.default_rng(cfg.seed).random(n) < 0.5]
    else:
        orders = [[False, True] for _ in range(n)]
    params = cfg.request_params()
    jobs = []
    for i in range(n):
        ref = references[i] if references is not None else None
        for swapped in orders[i]:
            first, second = (responses_b[i], responses_a[i]) if swapped else (responses_a[i], responses_b[i])
            messages = build_messages(cfg.template, prompts[i], first, second, ref)
            jobs.append({"pair": i, "swapped": swapped, "messages": messages,
                         "key": request_key(cfg.base_url, cfg.model, messages, params)})
    return jobs


def estimate_judge_cost(prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str],
                        references: Sequence[str] | None = None, *, template: str, model: str,
                        base_url: str | None = None, cache_dir: str | Path | None = None, order: str = "random",
                        seed: int = 0, prices: Mapping[str, tuple[float, float]] | None = None,
                        **settings: Any) -> dict[str, Any]:
    """What :func:`judge_pairs` with the same arguments would send: ``n_requests`` (uncached, distinct),
    ``n_cached``, estimated ``input_tokens``, ``output_tokens`` and ``usd`` (NaN when the model has no price).
    Sends nothing; show it before a paid run."""
    cfg = JudgeSettings(template=template, model=model, base_url=base_url, order=order, seed=seed, **settings)
    if cfg.model == "gold":
        return {"n_requests": 0, "n_cached": 0, "input_tokens": 0, "output_tokens": 0, "usd": 0.0}
    jobs = list({j["key"]: j for j in _build_jobs(prompts, responses_a, responses_b, references, cfg)}.values())
    todo = _split_cached(jobs, JudgeCache(cache_dir)) if cache_dir is not None else jobs
    est = estimate_cost(todo, cfg.model, cfg.request_params()["max_tokens"], prices)
    return {"n_requests": len(todo), "n_cached": len(jobs) - len(todo), **{k: est[k] for k in
                                                                           ("input_tokens", "output_tokens", "usd")}}


def _judge_remote(prompts, responses_a, responses_b, references, cfg: JudgeSettings, cache: JudgeCache,
                  prices: Mapping[str, tuple[float, float]] | None):
    n = len(prompts)
    jobs = _build_jobs(prompts, responses_a, responses_b, references, cfg)
    # identical requests (duplicated pairs) are sent once
    unique = {}
    for job in jobs:
        unique.setdefault(job["key"], job)
    _run_requests(list(unique.values()), cfg, cache, prices)
    for job in jobs:
        src = unique[job["key"]]
        job["response"], job["cached"] = src["response"], src["cached"]

    rows = []
    by_pair: dict[int, list[dict]] = {}
    for job in jobs:
        by_pair.setdefault(job["pair"], []).append(job)
    for i in range(n):
        verdicts = [(job, *_verdict(cfg.template, job["response"], job["swapped"])) for job in by_pair[i]]
        row = {"pair": i, "cached": all(job["cached"] for job in by_pair[i])}
        if cfg.order == "random":
            job, winner, p_b, tie = verdicts[0]
            outcome = winner if winner is not None else ("tie" if tie else "discarded")
            row.update(winner=winner, outcome=outcome, swapped=job["swapped"], raw=job["response"]["text"],
                       p_b=p_b)
        else:
            (j0, w0, p0, t0), (j1, w1, p1, t1) = verdicts
            if (w0 is None and not t0) or (w1 is None and not t1):
                winner, outcome, consistent = None, "discarded", None
            elif w0 == w1:
                winner, outcome, consistent = w0, (w0 if w0 is not None else "tie"), True
            else:
                winner, outcome, consistent = None, "tie", False
            row.update(winner=winner, outcome=outcome, swapped=False, raw=j0["response"]["text"],
                       raw_swapped=j1["response"]["text"], winner_unswapped=w0, winner_swapped=w1,
                       consistent=consistent, p_b=(p0 + p1) / 2)
        rows.append(row)
    df = _frame(rows)
    n_disc = int((df["outcome"] == "discarded").sum())
    if n_disc:
        log.warning("%d of %d judgements unreadable: discarded from the denominator", n_disc, n)
    return df


# ------------------------------------------------------------------------------------------------ summary
def win_rate_summary(df: pd.DataFrame, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Win rate of a over b from :func:`judge_pairs` output, with a percentile-bootstrap CI over pairs
    (:func:`drdo_lib.winrates.bootstrap_ci`).

    A win scores 1, a tie 1/2, a loss 0; discarded pairs leave the denominator and are counted. Also reports
    ``win_rate_excl_ties`` (wins / (wins + losses)) and, for ``order="both"``, ``position_consistency`` (share of
    pairs judged in both orders whose two verdicts agree).
    """
    if not 0 < ci < 1 or n_boot < 1:
        raise ValueError("ci must be in (0, 1) and n_boot >= 1")
    outcome = df["outcome"]
    wins, losses = int((outcome == "a").sum()), int((outcome == "b").sum())
    ties, discarded = int((outcome == "tie").sum()), int((outcome == "discarded").sum())
    scores = np.concatenate([np.ones(wins), np.zeros(losses), np.full(ties, 0.5)])
    out: dict[str, Any] = {"n": len(df), "judged": len(scores), "wins": wins, "losses": losses, "ties": ties,
                           "discarded": discarded}
    lo, hi = bootstrap_ci(scores, n_boot=n_boot, level=ci, seed=seed)  # (nan, nan) when nothing was judged
    out.update(win_rate=float(scores.mean()) if len(scores) else float("nan"), ci_low=lo, ci_high=hi)
    out["win_rate_excl_ties"] = wins / (wins + losses) if wins + losses else float("nan")
    if "consistent" in df:
        c = df["consistent"].dropna()
        out["position_consistency"] = float(c.astype(bool).mean()) if len(c) else float("nan")
    return out
