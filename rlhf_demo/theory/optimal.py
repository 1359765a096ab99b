"""The optimal policy of the KL-regularised objective on a finite set of candidates (the π* panel).

The RLHF objective for one prompt is

    J(π) = E_{y~π}[r(y)] − β · KL(π‖π_ref),

and over any finite set of candidates {y_1 … y_K} its maximiser is (e.g. Rafailov et al. 2023, DPO,
eq. 4; Korbak et al. 2022, "RL with KL penalties is better viewed as Bayesian inference")

    π*(y) = π_ref(y) · exp(r(y)/β) / Z(β),    Z(β) = Σ_y π_ref(y) · exp(r(y)/β),

with J(π*) = β · log Z. Here π_ref(y) are the reference's sequence probabilities *renormalised over
the set* (q(y) = exp(log π_ref(y) − logsumexp)); everything is computed in log space
(log π* = log_softmax(log q + r/β)) so tiny sequence probabilities never underflow.
Small β: π* puts its mass on the best reward ("chase reward"); large β: π* → π_ref ("stay put").

The Theory tab's other pieces: ``theory.candidates`` (the K responses sampled from the reference),
``theory.toy`` (a toy REINFORCE that converges to this π*) and ``theory.toy_session``.

What is simplified: π* is the optimum over a finite set of whole responses, not over all texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F


class TheoryInputError(ValueError):
    """Bad input to a Theory panel (β ≤ 0, K/N above the limits, ...): a clear message."""


def check_beta(beta, name: str = "β") -> float:
    """``beta`` as a float if it is a finite positive number, else a TheoryInputError."""
    if not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise TheoryInputError(f"{name} must be a positive number (β → 0 chases reward, large β stays at π_ref), got {beta!r}")
    return float(beta)


def renormalised_log_ref(logp_ref: torch.Tensor) -> torch.Tensor:
    """log q(y) = log π_ref(y) − logsumexp_y' log π_ref(y'): reference probabilities over the set [K]."""
    return logp_ref - torch.logsumexp(logp_ref, -1, keepdim=True)


def optimal_log_policy(logp_ref: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """log π*(y) = log_softmax(log q(y) + r(y)/β) over the K candidates (logp_ref, rewards: [K])."""
    beta = check_beta(beta)
    log_q = renormalised_log_ref(logp_ref.double())
    return F.log_softmax(log_q + rewards.double() / beta, -1)


def policy_stats(log_pi: torch.Tensor, logp_ref: torch.Tensor, rewards: torch.Tensor, beta: float | None = None) -> dict:
    """Expected reward, KL(π‖q) and (if β is given) the objective of a policy π over the set [K]:

    expected_reward = Σ_y π(y)·r(y),   kl = Σ_y π(y)·(log π(y) − log q(y)),   objective = E[r] − β·KL
    """
    log_q = renormalised_log_ref(logp_ref.double())
    pi = log_pi.double().exp()
    expected_reward = float((pi * rewards.double()).sum())
    kl = float((pi * torch.where(pi > 0, log_pi.double() - log_q, torch.zeros_like(log_q))).sum().clamp_min(0))
    out = {"expected_reward": expected_reward, "kl": kl}
    if beta is not None:
        out["objective"] = expected_reward - beta * kl
    return out


def log_partition(logp_ref: torch.Tensor, rewards: torch.Tensor, beta: float) -> float:
    """log Z(β) = logsumexp(log q + r/β); the optimum's objective is β·log Z."""
    beta = check_beta(beta)
    return float(torch.logsumexp(renormalised_log_ref(logp_ref.double()) + rewards.double() / beta, -1))


def default_betas(n: int = 61) -> list[float]:
    """β on a log grid from 0.01 to 100."""
    return [10 ** (-2 + 4 * i / (n - 1)) for i in range(n)]


def beta_sweep(logp_ref: torch.Tensor, rewards: torch.Tensor, betas: list[float] | None = None) -> pd.DataFrame:
    """For each β: expected reward under π*, KL(π*‖π_ref), objective; plus the reference's expected reward."""
    ref_reward = float((renormalised_log_ref(logp_ref.double()).exp() * rewards.double()).sum())
    rows = []
    for b in betas or default_betas():
        stats = policy_stats(optimal_log_policy(logp_ref, rewards, b), logp_ref, rewards, b)
        rows.append({"beta": float(b), **stats, "ref_expected_reward": ref_reward})
    return pd.DataFrame(rows)


def optimal_table(candidates: pd.DataFrame, beta: float) -> pd.DataFrame:
    """``candidates`` (columns response, logp_ref, reward) plus q = renormalised π_ref and pi_star at β."""
    if candidates is None or len(candidates) == 0:
        raise TheoryInputError("no candidates yet: sample some responses first")
    lp = torch.tensor(candidates["logp_ref"].to_numpy(), dtype=torch.float64)
    r = torch.tensor(candidates["reward"].to_numpy(), dtype=torch.float64)
    out = candidates.copy()
    out["q_ref"] = renormalised_log_ref(lp).exp().numpy()
    out["pi_star"] = optimal_log_policy(lp, r, beta).exp().numpy()
    return out


@dataclass
class BetaView:
    """Everything the π* panel shows at one β (candidates from ``theory.candidates``)."""

    beta: float
    table: pd.DataFrame
    """the candidates, best reward first, with q_ref (π_ref renormalised over them) and pi_star"""
    expected_reward: float
    """E_π*[r]"""
    ref_expected_reward: float
    """E_q[r], the reference's expected reward over the set"""
    kl: float
    """KL(π*‖q) in nats"""
    objective: float
    """E_π*[r] − β·KL(π*‖q) (= β·log Z(β))"""
    sweep: pd.DataFrame
    """``beta_sweep`` over ``default_betas()``: the reward–KL trade-off as β varies"""


def beta_view(candidates: pd.DataFrame, beta: float) -> BetaView:
    """π* over ``candidates`` (columns response, logp_ref, reward) at β, its statistics and the β sweep."""
    beta = check_beta(beta)
    table = optimal_table(candidates, beta)
    lp = torch.tensor(table["logp_ref"].to_numpy(), dtype=torch.float64)  # [K]
    r = torch.tensor(table["reward"].to_numpy(), dtype=torch.float64)  # [K]
    stats = policy_stats(optimal_log_policy(lp, r, beta), lp, r, beta)
    ref_reward = float((renormalised_log_ref(lp).exp() * r).sum())
    return BetaView(
        beta,
        table.sort_values("reward", ascending=False, kind="stable").reset_index(drop=True),
        stats["expected_reward"],
        ref_reward,
        stats["kl"],
        stats["objective"],
        beta_sweep(lp, r),
    )
