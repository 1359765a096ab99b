"""The estimator lab: how well k1, k2, k3 estimate KL(π‖π_ref) from samples (the KL tab's panel 2).

``estimator_lab``: N responses are sampled from π (full vocabulary, temperature T,
EOS allowed: positions after an EOS are masked). For each sample i the sequence estimates
K_j(i) = Σ_t k_j(t) are compared with its exact value E(i) = Σ_t kl_exact(t). Because the mask at t
depends only on y<t, E[K1] = E[K3] = E[E] = KL(π‖π_ref) over whole responses; K2 is biased. As in
Schulman's table we report bias/true and stdev/true, with "true" = mean of E(i) (the exact KL
averaged over the sampled prefixes, a far lower-variance estimate of the same quantity).

A "policy temperature" T ≠ 1 makes π = softmax(logits/T): with the base model as both policy and
reference this gives a non-zero, exactly known KL without any trained model.

Reference: Schulman, "Approximating KL Divergence" (http://joschu.net/blog/kl-approx.html); the
per-position quantities are ``kl.analysis.per_position``, the estimators ``kl.estimators``.

Memory: one scoring pass holds both models' logits for every position of ``batch_size`` responses
(``costs.kl_peak_bytes``); on a shared server ``check_request_size`` refuses a request whose pass
would exceed ``limits.Limits.max_request_bytes``, or whose prompt is longer than ``max_prompt_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd
import torch

from rlhf_demo.classroom import costs
from rlhf_demo.classroom import limits as limits_mod
from rlhf_demo.config import KnobConfig, knob
from rlhf_demo.decoding.sampling import sample_responses
from rlhf_demo.kl.analysis import (
    ESTIMATOR_NAMES,
    MAX_RESPONSE_TOKENS,
    KLInputError,
    check_same_tokenizer,
    check_temperature,
    encode_prompt,
    logprobs_pair,
    per_position,
)
from rlhf_demo.kl.estimators import masked_sum

MAX_SAMPLES = 64
"""Estimator lab: most responses sampled at once."""


@dataclass
class EstimatorLabConfig(KnobConfig):
    """Settings of the estimator lab (defaults take a few seconds on 2 CPU cores); its messages name a
    knob as the KL tab's widget does."""

    NAME: ClassVar[str] = "estimator lab"
    ERROR: ClassVar[type[ValueError]] = KLInputError
    SAY: ClassVar[str] = "label"

    n_samples: int = knob(16, "Responses sampled from the policy.", kind="int", lo=1, hi=MAX_SAMPLES, label="Number of samples N")
    response_tokens: int = knob(
        16,
        "Tokens per response at most (EOS may end one earlier).",
        kind="int",
        lo=1,
        hi=MAX_RESPONSE_TOKENS,
        label="Response length (tokens)",
    )
    policy_temperature: float = knob(
        1.0,
        "π = softmax(logits / T); with the base model as both models, T ≠ 1 gives a known non-zero KL.",
        kind="float",
        lo=0.0,
        label="Policy temperature T",
    )
    seed: int = knob(0, "Seed of the sampler (same seed, same responses).", kind="int", lo=0, label="Seed")
    batch_size: int = knob(
        16,
        "Responses scored per forward pass (memory: ``costs.kl_peak_bytes(batch, prompt, tokens)``).",
        kind="int",
        lo=1,
        label="Batch size",
        ui=False,
    )

    def check(self) -> None:
        check_temperature(self.policy_temperature)


@dataclass
class EstimatorLabResult:
    """samples: one row per response: sample, response, n_tokens, kl_exact, k1, k2, k3 (sequence sums).
    summary: one row per estimator: estimator, mean, true, bias, std, bias_rel, std_rel, frac_negative,
    min. ``true`` = mean of the exact per-sample values."""

    samples: pd.DataFrame
    summary: pd.DataFrame
    true_kl: float
    config: EstimatorLabConfig = field(default_factory=EstimatorLabConfig)


def summarize_estimates(samples: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Schulman-style table from per-sample sequence values (columns kl_exact, k1, k2, k3)."""
    true = float(samples["kl_exact"].mean())
    rows = []
    for name in ("kl_exact",) + ESTIMATOR_NAMES:
        x = samples[name].astype(float)
        mean = float(x.mean())
        std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
        rows.append(
            {
                "estimator": name,
                "mean": mean,
                "true": true,
                "bias": mean - true,
                "std": std,
                "bias_rel": (mean - true) / true if true > 0 else float("nan"),
                "std_rel": std / true if true > 0 else float("nan"),
                "frac_negative": float((x < 0).mean()),
                "min": float(x.min()),
            }
        )
    return pd.DataFrame(rows), true


def check_request_size(tokenizer, prompt: str, *, rows: int, response_tokens: int, limits=None) -> None:
    """On a shared server: the prompt within ``max_prompt_tokens`` and one scoring pass of ``rows``
    responses within ``max_request_bytes`` (``limits.LimitError``, a ValueError, with one line); nothing
    in local use. The KL tab's per-token panel calls it too (rows = 1)."""
    lim = limits or limits_mod.current()
    if not lim.shared:
        return
    q = len(encode_prompt(tokenizer, prompt))
    costs.check_prompt_tokens(q, lim)
    costs.check_request(
        costs.kl_peak_bytes(rows, q, response_tokens),
        "this request",
        "lower N samples or the tokens per response, or shorten the prompt",
        lim,
    )


@torch.no_grad()
def estimator_lab(policy, reference, prompt: str, cfg: EstimatorLabConfig | None = None) -> EstimatorLabResult:
    """Sample N responses from π and compare k1/k2/k3 sequence estimates with the exact values."""
    cfg = (cfg or EstimatorLabConfig()).validate()
    check_same_tokenizer(policy.tokenizer, reference.tokenizer)
    tok = policy.tokenizer
    q = encode_prompt(tok, prompt)
    check_request_size(tok, prompt, rows=min(cfg.n_samples, cfg.batch_size), response_tokens=cfg.response_tokens)
    t = float(cfg.policy_temperature)
    rows = []
    for start in range(0, cfg.n_samples, cfg.batch_size):
        n = min(cfg.batch_size, cfg.n_samples - start)
        batch = sample_responses(
            policy.model, tok, [q] * n, cfg.response_tokens, temperature=t, seed=cfg.seed + start, ban_special_tokens=False
        )  # [n, Q + R]
        logp, logp_ref = logprobs_pair(policy, reference, batch, t)  # [n, R, V]
        vals = per_position(logp, logp_ref, batch.response_ids)  # each [n, R]
        mask = batch.response_mask.to(logp.dtype)  # [n, R]
        sums = {k: masked_sum(vals[k].double(), mask.double()).cpu() for k in ("kl_exact",) + ESTIMATOR_NAMES}
        for i in range(n):
            r_ids = batch.response_ids[i][batch.response_mask[i].bool()].tolist()
            rows.append(
                {
                    "sample": start + i,
                    "response": tok.decode(r_ids, skip_special_tokens=True),
                    "n_tokens": len(r_ids),
                    **{k: float(v[i]) for k, v in sums.items()},
                }
            )
    samples = pd.DataFrame(rows)
    summary, true = summarize_estimates(samples)
    return EstimatorLabResult(samples, summary, true, cfg)


WHY_K1_NEGATIVE = """**Why k1 can be negative and k3 cannot.** k1 = log π(y) − log π_ref(y) is the log-ratio of the
one token that was drawn: whenever π_ref happens to like that token more than π does, it is negative.
Only its *average* over y ~ π is the KL (≥ 0). k3 = (r − 1) − log r with r = π_ref(y)/π(y) adds r − 1,
whose average under π is Σ π_ref − 1 = 0 (so no bias is added), and since log r ≤ r − 1 for every r > 0
each single k3 is ≥ 0: lower variance, never negative. k2 = ½(log r)² is ≥ 0 too, but biased.
(Schulman, "Approximating KL Divergence".)"""
