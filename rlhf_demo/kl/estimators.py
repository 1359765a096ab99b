"""KL divergence between a policy π and a reference π_ref: exact per position, and the sample
estimators k1, k2, k3 of John Schulman, "Approximating KL Divergence" (2020),
http://joschu.net/blog/kl-approx.html.

With x ~ π and the log-ratio ``logr = log π(x) − log π_ref(x)``:

    k1 = logr                          unbiased, high variance, can be negative
    k2 = ½ · logr²                     biased (low bias when π ≈ π_ref), always ≥ 0
    k3 = (r − 1) − log r,  r = π_ref/π = exp(−logr)
       = expm1(−logr) + logr           unbiased, always ≥ 0 (since eˣ ≥ 1 + x); expm1 keeps it
                                        accurate for tiny log-ratios

Exact KL at one position, summed over the whole vocabulary V:

    KL(π‖π_ref) = Σ_v π(v) · (log π(v) − log π_ref(v))

All functions are pure tensor maths (torch only).
"""

from __future__ import annotations

import torch


def k1(logr: torch.Tensor) -> torch.Tensor:
    """k1 = log π(x) − log π_ref(x)."""
    return logr


def k2(logr: torch.Tensor) -> torch.Tensor:
    """k2 = ½ (log π(x) − log π_ref(x))²."""
    return 0.5 * logr.pow(2)


def k3(logr: torch.Tensor) -> torch.Tensor:
    """k3 = (r − 1) − log r with r = π_ref(x)/π(x), written ``expm1(−logr) + logr`` for accuracy."""
    return torch.expm1(-logr) + logr


ESTIMATORS = {"k1": k1, "k2": k2, "k3": k3}


def exact_kl(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Exact KL(π‖π_ref) over the last (vocabulary) axis.

    logp, logp_ref: [..., V] log-probabilities (log_softmax of each model's logits).
    Returns [...]: Σ_v exp(logp_v) (logp_v − logp_ref_v), clamped at 0 against rounding.
    Tokens with π(v) = 0 contribute 0 (also where π_ref(v) = 0).
    """
    p = logp.exp()
    diff = torch.where(p > 0, logp - logp_ref, torch.zeros_like(logp))
    return (p * diff).sum(-1).clamp_min(0.0)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Σ x·mask along ``dim`` (mask of 0/1 or bool, same shape as x)."""
    return (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over the positions where mask is 1."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1)
