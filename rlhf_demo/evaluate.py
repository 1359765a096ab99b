"""Held-out evaluation shared by PPO and DPO: mean reward and KL(π‖π_ref) on prompts never trained on.

For each of ``n_prompts`` held-out openings (cut to ``query_tokens`` tokens) we sample
``samples_per_prompt`` responses of ``response_tokens`` tokens from the policy (temperature 1,
special tokens banned, a fixed seed so every evaluation of every run sees the same random stream),
score query+response with the reward function, and measure the KL to the reference on those same
samples:

    kl     = mean over samples of Σ_t KL(π(·|x, y<t) ‖ π_ref(·|x, y<t))   exact per position, summed
    kl_k1  = mean over samples of Σ_t (log π(y_t) − log π_ref(y_t))       the k1 estimate (TRL's objective/kl)

Both estimate the sequence-level KL(π‖π_ref) in nats per response; ``kl`` has far lower variance and
is never negative. ``distinct2`` = distinct word bigrams / all word bigrams over the responses (a
fluency/diversity check: collapsed "love love love" text drives it down). ``on_topic`` = the share of
responses that still name something of a film (a word starting with one of ``FILM_WORDS``: "movie",
"plot", "actress", ...): a policy that drifts off topic to collect sentiment ("…can greatly impact
customer satisfaction and overall business success.") drives it down. With a gold reward
(``gold_fn``, PPO's ``gold_reward``) the same texts are scored by it too: ``gold_reward_mean``.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from rlhf_demo.config import KnobConfig, knob
from rlhf_demo.data.prompts import builtin_prompts, truncate_prompt
from rlhf_demo.decoding.sampling import Batch, decode_queries, decode_responses, response_logits, sample_responses
from rlhf_demo.kl.estimators import exact_kl, masked_sum
from rlhf_demo.rewards.functions import score_pairs


@dataclass
class EvalConfig(KnobConfig):
    """The held-out evaluation every trainer runs (the same for every run, so runs compare); settable in
    code and by the benchmarks, offered by no face."""

    NAME: ClassVar[str] = "evaluation"

    n_prompts: int = knob(32, "Held-out prompts used (the built-in held-out split has 45).", kind="int", lo=1, hi=1024, cli=False, ui=False)
    samples_per_prompt: int = knob(2, "Responses sampled per prompt (32 × 2 = 64 samples).", kind="int", lo=1, hi=1024, cli=False, ui=False)
    query_tokens: int = knob(4, "Each held-out opening is cut to this many tokens.", kind="int", lo=1, hi=1024, cli=False, ui=False)
    response_tokens: int = knob(12, "Tokens per sampled response.", kind="int", lo=1, hi=1024, cli=False, ui=False)
    temperature: float = knob(1.0, "Sampling temperature of the evaluated policy.", kind="float", lo=1e-3, hi=100.0, cli=False, ui=False)
    seed: int = knob(
        1234, "Seed of the evaluation's sampler: every evaluation sees the same stream.", kind="int", lo=0, cli=False, ui=False
    )
    batch_size: int = knob(32, "Responses sampled and scored per forward pass.", kind="int", lo=1, hi=1024, cli=False, ui=False)

    def check(self) -> None:
        if self.n_prompts * self.samples_per_prompt > 1024:
            raise ValueError("evaluation is limited to 1024 samples")


@contextmanager
def as_reference(policy, reference=None):
    """Yield the reference model: ``reference`` if given, else ``policy`` with its LoRA adapter off."""
    if reference is not None:
        yield reference
    elif hasattr(policy, "disable_adapter"):
        with policy.disable_adapter():
            yield policy
    else:
        raise ValueError("no reference model: pass one, or use a LoRA (peft) policy")


@contextmanager
def eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def heldout_queries(tokenizer, cfg: EvalConfig, prompts: list[str] | None = None) -> list[list[int]]:
    prompts = prompts or builtin_prompts("heldout")
    chosen = prompts[: cfg.n_prompts]
    return [truncate_prompt(tokenizer, p, cfg.query_tokens) for p in chosen for _ in range(cfg.samples_per_prompt)]


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams (0 when there are none)."""
    grams = [tuple(w[i : i + n]) for t in texts for w in [t.split()] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


FILM_WORDS = (
    "film",
    "movie",
    "cinema",
    "cinematic",
    "actor",
    "actress",
    "acting",
    "cast",
    "plot",
    "story",
    "stories",
    "scene",
    "director",
    "directed",
    "directing",
    "character",
    "script",
    "screenplay",
    "screen",
    "performance",
    "watch",
    "ending",
    "sequel",
    "genre",
    "drama",
    "comedy",
    "comedic",
    "thriller",
    "horror",
    "documentary",
    "soundtrack",
    "dialogue",
    "narrative",
    "role",
    "starring",
    "hollywood",
    "oscar",
    "audience",
    "viewer",
    "theater",
    "theatre",
    "animation",
    "animated",
    "trailer",
    "pacing",
    "villain",
    "hero",
    "protagonist",
    "camera",
    "cinematograph",
    "visual",
    "episode",
    "musical",
    "cartoon",
    "premiere",
    "blockbuster",
)
"""Word beginnings that read as "about a film" (so "films", "characters", "watched" count too)."""


def on_topic(text: str, keywords: tuple[str, ...] = FILM_WORDS) -> bool:
    """Whether ``text`` has a word (lower-cased letters and hyphens) that begins with one of ``keywords``."""
    return any(w.startswith(keywords) for w in re.findall(r"[a-z][a-z-]*", text.lower()))


def on_topic_share(texts: list[str], keywords: tuple[str, ...] = FILM_WORDS) -> float:
    """Share of ``texts`` that are ``on_topic`` (0 when there are none): a keyword check, not a classifier."""
    return sum(on_topic(t, keywords) for t in texts) / len(texts) if texts else 0.0


@torch.no_grad()
def sequence_kl(policy, batch: Batch, reference=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (exact KL summed over positions [B], k1 summed [B]) on an already sampled batch."""
    logits = response_logits(policy, batch).float()  # [B, R, V]
    logp = F.log_softmax(logits, -1)
    with as_reference(policy, reference) as ref:
        logp_ref = F.log_softmax(response_logits(ref, batch).float(), -1)  # [B, R, V]
    tokens = batch.response_ids.unsqueeze(-1)  # [B, R, 1]
    logr = (logp.gather(2, tokens) - logp_ref.gather(2, tokens)).squeeze(-1)  # [B, R]
    mask = batch.response_mask.float()
    return masked_sum(exact_kl(logp, logp_ref), mask), masked_sum(logr, mask)


def evaluate_policy(
    policy,
    tokenizer,
    reward_fn,
    cfg: EvalConfig | None = None,
    reference=None,
    prompts: list[str] | None = None,
    gold_fn=None,
    cancel=None,
) -> dict | None:
    """Held-out mean reward and KL of ``policy`` (see the module docstring). Returns a flat dict:
    reward_mean, reward_std, reward_sem, kl, kl_k1, distinct2, on_topic, n, and ``samples`` (query, response, reward);
    with ``gold_fn`` also gold_reward_mean (and each sample's gold_reward). ``cancel()`` is asked before each
    batch of ``cfg.batch_size`` prompts: when it says True the evaluation stops and returns None (half an
    evaluation would not be comparable with the others)."""
    cfg = (cfg or EvalConfig()).validate()
    queries = heldout_queries(tokenizer, cfg, prompts)
    rewards, golds, kls, k1s, rows = [], [], [], [], []
    with eval_mode(policy):
        for start in range(0, len(queries), cfg.batch_size):
            if cancel is not None and cancel():
                return None
            chunk = queries[start : start + cfg.batch_size]
            batch = sample_responses(policy, tokenizer, chunk, cfg.response_tokens, temperature=cfg.temperature, seed=cfg.seed + start)
            q_txt, r_txt = decode_queries(tokenizer, batch), decode_responses(tokenizer, batch)
            scores = score_pairs(reward_fn, q_txt, r_txt)
            gold = None if gold_fn is None else scores if gold_fn is reward_fn else score_pairs(gold_fn, q_txt, r_txt)
            kl, k1 = sequence_kl(policy, batch, reference)
            rewards += list(scores)
            kls += kl.tolist()
            k1s += k1.tolist()
            rows += [{"query": q, "response": r, "reward": s} for q, r, s in zip(q_txt, r_txt, scores)]
            if gold is not None:
                golds += [float(g) for g in gold]
                for row, g in zip(rows[-len(r_txt) :], gold):
                    row["gold_reward"] = float(g)
    t = torch.tensor(rewards, dtype=torch.float64)
    n = len(rewards)
    std = float(t.std()) if n > 1 else 0.0
    gold_mean = {"gold_reward_mean": sum(golds) / n} if gold_fn is not None and n else {}
    return {
        "reward_mean": float(t.mean()),
        "reward_std": std,
        "reward_sem": std / math.sqrt(n) if n else 0.0,
        **gold_mean,
        "kl": float(sum(kls) / n),
        "kl_k1": float(sum(k1s) / n),
        "distinct2": distinct_n([r["response"] for r in rows]),
        "on_topic": on_topic_share([r["response"] for r in rows]),
        "n": n,
        "samples": rows,
        "eval_config": asdict(cfg),
    }
