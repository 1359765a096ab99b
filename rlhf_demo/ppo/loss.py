"""The pure maths of PPO for language models (torch only, no models, no I/O).

Shapes: B = episodes in the batch, R = response tokens. ``mask`` [B, R] is 1 on real response tokens.

References
----------
- lm-human-preferences (Ziegler et al. 2019), ``train_policy.py``: per-token KL penalty with the
  score added at the last token, and the adaptive KL controller.
- "The N Implementation Details of RLHF with PPO" (Huang et al. 2023) and TRL's old ``ppo_trainer.py``:
  whitening, GAE on token-level rewards, clipped value loss.
- cleanrl ``ppo.py``: clipped surrogate, ``approx_kl`` = mean((r − 1) − log r)
  (http://joschu.net/blog/kl-approx.html).
"""

from __future__ import annotations

import torch

from rlhf_demo.kl.estimators import k1, k3, masked_mean


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL estimate [B, R] from the sampled tokens' log-probs under π and π_ref.

    k1 = log π − log π_ref (unbiased, can be negative); k3 = (r − 1) − log r, r = π_ref/π (≥ 0)."""
    logr = logprobs - ref_logprobs  # [B, R]
    if estimator == "k1":
        return k1(logr)
    if estimator == "k3":
        return k3(logr)
    raise ValueError(f"unknown KL estimator {estimator!r}: use k1 or k3")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row of ``mask`` [B, R] → [B] (0 for an empty row)."""
    R = mask.shape[1]
    positions = torch.arange(R, device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values


def compute_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, beta: float, estimator: str = "k1"
):
    """Token-level rewards as in lm-human-preferences ``compute_rewards``:

        kl_t        = estimate of log π(y_t) − log π_ref(y_t)
        non_score_t = −β · kl_t                  on every response token
        reward_t    = non_score_t  (+ score on the last real token)

    scores [B] (on the last real token); logprobs, ref_logprobs, mask [B, R]. Returns (rewards,
    non_score_reward, kl), each [B, R], zero where mask is 0.
    """
    mask = mask.to(logprobs.dtype)
    kl = kl_per_token(logprobs, ref_logprobs, estimator) * mask  # [B, R]
    non_score_reward = -beta * kl  # [B, R]
    rewards = non_score_reward.clone()
    last = last_token_index(mask)  # [B]
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards * mask, non_score_reward, kl


def whiten(
    x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8, total=lambda s: s
) -> torch.Tensor:
    """(x − mean) / std over the masked entries (mean kept when ``shift_mean`` is False).

    Uses the unbiased variance, like TRL's ``masked_whiten``. Masked entries come back as 0.
    ``total``: how a sum becomes the whole batch's (``training.distributed.sum_all`` when the batch is
    split over processes, so each share is whitened with the whole batch's mean and variance)."""
    if mask is None:
        mask = torch.ones_like(x)
    mask = mask.to(x.dtype)
    n = total(mask.sum())
    mean = total((x * mask).sum()) / n
    var = total((((x - mean) * mask) ** 2).sum()) / (n - 1).clamp_min(1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95):
    """Generalised advantage estimation (Schulman et al. 2016) over the response tokens.

        δ_t = r_t + γ·V_{t+1} − V_t            (V past the last real token = 0: the episode ends)
        A_t = δ_t + γλ·A_{t+1}
        returns_t = A_t + V_t

    rewards, values, mask: [B, R]. Returns (advantages, returns), [B, R], zero where mask is 0.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    B, R = rewards.shape
    advantages = torch.zeros_like(rewards)
    last_adv = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(R)):
        next_value = values[:, t + 1] if t + 1 < R else torch.zeros_like(last_adv)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_adv = (delta + gamma * lam * last_adv) * mask[:, t]
        advantages[:, t] = last_adv
    returns = advantages + values
    return advantages * mask, returns * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cliprange: float) -> dict:
    """PPO's clipped surrogate (Schulman et al. 2017), as a loss to minimise:

        ratio             = exp(log π − log π_old)
        pg_loss_unclipped = −A · ratio
        pg_loss_clipped   = −A · clip(ratio, 1 − ε, 1 + ε)
        pg_loss           = mean(max(pg_loss_unclipped, pg_loss_clipped))

    Also returns diagnostics: ``clipfrac`` (share of tokens where clipping is active), ``approx_kl``
    = mean((ratio − 1) − log ratio) (k3 of π_old vs π; cleanrl), ``ratio`` mean, and per token
    (detached, [b, R]) ``ratio_per_token`` and ``clipped``: pg_loss_clipped > pg_loss_unclipped, the
    clipped branch wins the max and the token's gradient is zero (the inspector's store, ``tokens.py``).
    """
    logratio = logprobs - old_logprobs  # [b, R]
    ratio = torch.exp(logratio)
    pg_loss_unclipped = -advantages * ratio
    pg_loss_clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_loss_unclipped, pg_loss_clipped), mask)
    with torch.no_grad():
        clipped = pg_loss_clipped > pg_loss_unclipped  # [b, R]
        clipfrac = masked_mean(clipped.float(), mask)
        approx_kl = masked_mean((ratio - 1) - logratio, mask)
        ratio_mean = masked_mean(ratio, mask)
    return {
        "loss": pg_loss,
        "clipfrac": clipfrac,
        "approx_kl": approx_kl,
        "ratio": ratio_mean,
        "ratio_per_token": ratio.detach(),
        "clipped": clipped,
    }


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, cliprange_value: float) -> dict:
    """Clipped value loss (TRL / OpenAI baselines):

    v_clipped        = V_old + clip(V − V_old, −ε_v, ε_v)
    v_loss_unclipped = (V − returns)²
    v_loss_clipped   = (v_clipped − returns)²
    v_loss           = ½ · mean(max(v_loss_unclipped, v_loss_clipped))
    """
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    v_loss_unclipped = (values - returns) ** 2
    v_loss_clipped = (v_clipped - returns) ** 2
    v_loss = 0.5 * masked_mean(torch.max(v_loss_unclipped, v_loss_clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((v_loss_clipped > v_loss_unclipped).float(), mask)
    return {"loss": v_loss, "clipfrac": clipfrac}


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last axis: logsumexp(z) − Σ p·z. [..., V] → [...]."""
    logits = logits.float()
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def entropy_from_logprobs(logp: torch.Tensor) -> torch.Tensor:
    """Entropy −Σ_v p_v·log p_v from log-probabilities (a log_softmax already computed). [..., V] → [...]."""
    return -(logp.exp() * logp).sum(-1)
