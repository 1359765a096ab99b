"""A toy policy gradient: REINFORCE with a baseline and a KL penalty, on a softmax over a few words.

A softmax policy π_θ = softmax(θ) over a handful of words, rewards r(w) set by hand. One step draws B
words y_i ~ π_θ and ascends with the log-derivative trick (REINFORCE, Williams 1992):

    score_i  = r(y_i) − β_kl · (log π_θ(y_i) − log π_ref(y_i))     (the per-sample KL penalty, k1)
    b_i      = mean of the other samples' scores (leave-one-out baseline, RLOO) or 0
    A_i      = score_i − b_i
    Δθ       = lr · (1/B) Σ_i A_i · ∇_θ log π_θ(y_i),   ∇_θ log π_θ(y) = onehot(y) − π_θ

so a positive A_i raises its word's logit (by lr·A_i·(1 − π(y_i))/B) and lowers all others; a
negative A_i does the opposite. The maximum-likelihood update on the same samples,
Δθ_ML = lr · (1/B) Σ_i ∇_θ log π_θ(y_i), is REINFORCE with every A_i = 1: it raises whatever was
sampled, regardless of reward. The stochastic gradient is unbiased for ∇J (the log-ratio in the score
is held constant; its own gradient has mean zero), so with β_kl > 0 the policy drifts to the analytic
π* ∝ π_ref · exp(r/β_kl) of ``theory.optimal`` and fluctuates around it (less with a larger batch or
smaller lr). The leave-one-out baseline is Kool et al. 2019 ("Buy 4 REINFORCE samples, get a baseline
for free!"), as in TRL's RLOO trainer.

What is simplified: one "prompt", single-token "responses", exact softmax gradients, no PPO clipping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F

from rlhf_demo.theory.optimal import TheoryInputError, optimal_log_policy, policy_stats

MAX_WORDS = 12
"""Most words in the toy vocabulary."""
MAX_TOY_BATCH = 256
"""Most words sampled per step."""
MAX_TOY_STEPS = 5000
"""Most steps of one run."""


@dataclass
class ToyConfig:
    """A softmax policy over a handful of words, trained with REINFORCE (see the module docstring)."""

    words: tuple[str, ...] = ("great", "good", "fine", "bad", "awful")
    """the toy vocabulary (2…MAX_WORDS distinct words)"""
    rewards: tuple[float, ...] = (1.0, 0.5, 0.0, -0.5, -1.0)
    """reward of each word (positive and negative allowed)"""
    ref_probs: tuple[float, ...] | None = None
    """reference π_ref over the words (normalised); None = uniform. The policy starts at π_ref."""
    lr: float = 0.5
    """learning rate of the logits θ"""
    batch_size: int = 8
    """words sampled per step, 1…MAX_TOY_BATCH"""
    baseline: bool = True
    """subtract the leave-one-out mean score (RLOO); needs batch_size ≥ 2 to have an effect"""
    kl_beta: float = 0.0
    """β of the per-sample KL penalty to π_ref; 0 = none (then the policy heads to the best word)"""
    seed: int = 0
    """step t draws with a generator seeded from (seed, t): same settings, same run"""

    def validate(self) -> ToyConfig:
        words = [str(w).strip() for w in self.words]
        if not 2 <= len(words) <= MAX_WORDS:
            raise TheoryInputError(f"the toy needs 2…{MAX_WORDS} words, got {len(words)}")
        if any(not w for w in words) or len(set(words)) != len(words):
            raise TheoryInputError("toy words must be non-empty and distinct")
        if len(self.rewards) != len(words):
            raise TheoryInputError(f"give one reward per word: {len(words)} words, {len(self.rewards)} rewards")
        if not all(isinstance(r, (int, float)) and math.isfinite(r) for r in self.rewards):
            raise TheoryInputError("rewards must be finite numbers")
        if self.ref_probs is not None:
            if len(self.ref_probs) != len(words):
                raise TheoryInputError(f"give one reference probability per word ({len(words)})")
            if not all(isinstance(p, (int, float)) and math.isfinite(p) and p > 0 for p in self.ref_probs):
                raise TheoryInputError("reference probabilities must be positive numbers")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or not 0 < self.lr <= 100:
            raise TheoryInputError(f"learning rate must be in (0, 100], got {self.lr!r}")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= MAX_TOY_BATCH:
            raise TheoryInputError(f"samples per step N must be 1…{MAX_TOY_BATCH}, got {self.batch_size!r}")
        if not isinstance(self.kl_beta, (int, float)) or not math.isfinite(self.kl_beta) or self.kl_beta < 0:
            raise TheoryInputError(f"KL penalty β must be ≥ 0 and finite (0 = no penalty), got {self.kl_beta!r}")
        self.words = tuple(words)
        return self

    @property
    def reward_tensor(self) -> torch.Tensor:  # [W]
        return torch.tensor(self.rewards, dtype=torch.float64)

    @property
    def log_ref(self) -> torch.Tensor:  # [W]
        if self.ref_probs is None:
            return torch.full((len(self.words),), -math.log(len(self.words)), dtype=torch.float64)
        p = torch.tensor(self.ref_probs, dtype=torch.float64)
        return (p / p.sum()).log()

    def optimal_probs(self) -> torch.Tensor | None:
        """π* ∝ π_ref·exp(r/β_kl) when β_kl > 0 (else None: the optimum is the best word alone)."""
        if self.kl_beta <= 0:
            return None
        return optimal_log_policy(self.log_ref, self.reward_tensor, self.kl_beta).exp()


@dataclass
class ToyStep:
    """One REINFORCE step: the state before, the samples and their updates, the state after.

    per_sample_update: [B, W] each sample's contribution lr·A_i·(onehot(y_i) − π)/B to Δθ
    """

    step: int
    words: tuple[str, ...]
    probs_before: torch.Tensor  # [W]
    samples: torch.Tensor  # [B] word indices
    rewards: torch.Tensor  # [B] r(y_i)
    log_ratio: torch.Tensor  # [B] log π(y_i) − log π_ref(y_i)
    scores: torch.Tensor  # [B] r − β·log_ratio
    baselines: torch.Tensor  # [B]
    advantages: torch.Tensor  # [B]
    per_sample_update: torch.Tensor  # [B, W]
    logits_after: torch.Tensor  # [W] θ + Δθ
    probs_after: torch.Tensor  # [W]
    probs_ml: torch.Tensor  # [W] after the maximum-likelihood step on the same samples
    metrics: dict = field(default_factory=dict)

    def samples_table(self) -> pd.DataFrame:
        """One row per sample: its word, reward, score, baseline, advantage, the change of its own
        logit from this sample alone, and the direction it pushes its word."""
        rows = []
        for i, w in enumerate(self.samples.tolist()):
            d = float(self.per_sample_update[i, w])
            rows.append(
                {
                    "sample": i + 1,
                    "word": self.words[w],
                    "reward": float(self.rewards[i]),
                    "log_ratio": float(self.log_ratio[i]),
                    "score": float(self.scores[i]),
                    "baseline": float(self.baselines[i]),
                    "advantage": float(self.advantages[i]),
                    "delta_own_logit": d,
                    "push": "up" if d > 0 else ("down" if d < 0 else "none"),
                }
            )
        return pd.DataFrame(rows)

    def probs_table(self, optimal: torch.Tensor | None = None) -> pd.DataFrame:
        """Columns word, before, reinforce, max_likelihood (and optimal if given): one row per word."""
        out = pd.DataFrame(
            {
                "word": list(self.words),
                "before": self.probs_before.numpy(),
                "reinforce": self.probs_after.numpy(),
                "max_likelihood": self.probs_ml.numpy(),
            }
        )
        if optimal is not None:
            out["optimal"] = optimal.numpy()
        return out


STEP_STREAM = 1_000_003
"""The toy's draws at step t come from a generator seeded with ``seed · STEP_STREAM + t`` (a prime spacing
two seeds' streams apart; the number the toy always used)."""


def toy_step(cfg: ToyConfig, logits: torch.Tensor, step: int) -> ToyStep:
    """One REINFORCE step from logits θ [W] (pure: returns the new logits, never mutates)."""
    W, B = len(cfg.words), cfg.batch_size
    gen = torch.Generator().manual_seed(int(cfg.seed) * STEP_STREAM + int(step))
    theta = logits.double()
    log_pi = F.log_softmax(theta, -1)  # [W]
    pi = log_pi.exp()
    idx = torch.multinomial(pi, B, replacement=True, generator=gen)  # [B]
    r = cfg.reward_tensor[idx]  # [B]
    log_ratio = log_pi[idx] - cfg.log_ref[idx]  # [B]
    scores = r - cfg.kl_beta * log_ratio  # [B]
    if cfg.baseline and B > 1:
        baselines = (scores.sum() - scores) / (B - 1)  # [B] leave-one-out mean
    else:
        baselines = torch.zeros_like(scores)
    adv = scores - baselines  # [B]
    grad_logp = F.one_hot(idx, W).double() - pi  # [B, W] ∇θ log π(y_i)
    per_sample = cfg.lr * adv[:, None] * grad_logp / B  # [B, W]
    new_theta = theta + per_sample.sum(0)  # [W]
    ml_theta = theta + cfg.lr * grad_logp.mean(0)  # [W]
    probs_after = F.softmax(new_theta, -1)
    metrics = toy_metrics(cfg, new_theta)
    metrics.update({"step": step + 1, "batch_reward_mean": float(r.mean())})
    return ToyStep(
        step + 1,
        cfg.words,
        pi,
        idx,
        r,
        log_ratio,
        scores,
        baselines,
        adv,
        per_sample,
        new_theta,
        probs_after,
        F.softmax(ml_theta, -1),
        metrics,
    )


def toy_metrics(cfg: ToyConfig, logits: torch.Tensor) -> dict:
    """Expected reward, KL(π‖π_ref), objective and (with β_kl > 0) total-variation distance to π*:

    tv_to_optimal = ½ Σ_w |π(w) − π*(w)|      (NaN without a KL penalty)
    """
    log_pi = F.log_softmax(logits.double(), -1)  # [W]
    stats = policy_stats(log_pi, cfg.log_ref, cfg.reward_tensor, cfg.kl_beta)
    opt = cfg.optimal_probs()
    stats["tv_to_optimal"] = float(0.5 * (log_pi.exp() - opt).abs().sum()) if opt is not None else float("nan")
    return stats


def toy_initial_logits(cfg: ToyConfig) -> torch.Tensor:
    """The policy starts at the reference: θ = log π_ref [W]."""
    return cfg.log_ref.clone()


def toy_run(cfg: ToyConfig, steps: int, logits: torch.Tensor | None = None, start_step: int = 0) -> Iterator[ToyStep]:
    """Run ``steps`` REINFORCE steps, yielding each ToyStep (the UI, CLI and tests watch the same loop)."""
    cfg.validate()
    check_steps(steps)
    theta = toy_initial_logits(cfg) if logits is None else logits.double()
    if theta.shape != (len(cfg.words),):
        raise TheoryInputError("the words changed since the policy was made: press Reset")
    for s in range(start_step, start_step + steps):
        rec = toy_step(cfg, theta, s)
        theta = rec.logits_after
        yield rec


def check_steps(steps) -> int:
    """``steps`` as an int in 1…MAX_TOY_STEPS, or a TheoryInputError."""
    if not isinstance(steps, int) or not 1 <= steps <= MAX_TOY_STEPS:
        raise TheoryInputError(f"steps must be 1…{MAX_TOY_STEPS}, got {steps!r}")
    return steps
