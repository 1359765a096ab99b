"""PPO as the shared code sees it (``rlhf_demo.algorithms``): its config and trainer, its status line,
the record keys its card and comparison show, its live plot, its panel and its memory model."""

from __future__ import annotations

from rlhf_demo.algorithms import Algorithm
from rlhf_demo.classroom.costs import logits_bytes
from rlhf_demo.classroom.limits import VOCAB
from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.training.status import NAN, shows_gold, step_head


def status(cfg: PPOConfig, rec: dict, total: int) -> list[str]:
    """An update's headline (batch reward, its gold when it differs from the reward, KL exact and k1, β), and
    the KL budget's rollbacks."""
    lines = [
        step_head(rec, total, cfg.max_seconds, "Update")
        + f" · batch reward {rec.get('reward_mean', NAN):+.3f}"
        + (f" (gold {rec['gold_reward_mean']:+.3f})" if "gold_reward_mean" in rec and shows_gold(cfg) else "")
        + f" · KL {rec.get('objective/kl_exact', NAN):.2f} nats (k1 {rec.get('objective/kl', NAN):.2f}) · "
        f"β {rec.get('beta', NAN):.3f}"
    ]
    if rec.get("kl_budget/rollback"):
        lines.append(
            f"⟲ The batch showed the policy past the KL budget ({cfg.kl_budget:g} nats): the last update "
            "was undone (back to the policy before it)."
        )
    if rec.get("kl_budget/undone_at_check"):
        lines.append(
            f"⟲ Checked before evaluating: a fresh batch showed the last update past the KL budget "
            f"({rec['kl_budget/check_kl']:.2f} > {cfg.kl_budget:g} nats), so it was undone."
        )
    return lines


def peak_bytes(cfg: PPOConfig, vocab: int = VOCAB) -> float:
    """Bytes of the largest tensors a PPO update holds at once (float32).

    The peak is the rollout's (measured on the tiny model: 7.3·B·R·V floats, whatever the number of
    mini-batches; ``tests/test_limits.py``): the generation's per-step logits and their stacked copy,
    log π_old, the reference's logits and log-softmax, and the exact KL's temporaries (exp, difference,
    product), all [B, R, V]. A mini-batch's logits, log-softmax and their gradients (4·(B/mini-batches)·R·V)
    come after the rollout has freed its own, so they never add to it. Hidden states of every layer for
    every position ride along: (layers + 1)·B·(Q + R)·H with the default model's 30 layers and H = 576."""
    B, R, Q = cfg.batch_size, cfg.response_tokens[1], cfg.query_tokens[1]
    return logits_bytes(B, R, 7.5, vocab) + 4.0 * 31 * B * (Q + R) * 576


ALGORITHM = Algorithm(
    name="ppo",
    label="PPO",
    config=PPOConfig,
    trainer="rlhf_demo.ppo.trainer:PPOTrainer",
    from_pairs=False,
    what="a policy fine-tuned with PPO from a reward function",
    blurb="sample, score with a reward model, push the policy (KL-penalised).",
    status=status,
    card_keys=("reward_mean", "gold_reward_mean", "objective/kl_exact", "beta", "eval/reward_mean", "eval/kl"),
    compare_keys=(("Batch reward", "reward_mean"),),
    curves="rlhf_demo.plots.training:PPO_PANELS",
    bands=True,
    kl_budget_line=True,
    peak_bytes=peak_bytes,
    peak_advice="batch_size × response_tokens",
    symbol="circle",
    panel="rlhf_demo.ui.training_ppo",
    inspector="rlhf_demo.ppo.inspect:inspect",
)
