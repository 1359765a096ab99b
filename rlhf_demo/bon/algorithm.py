"""Best-of-N distillation as the shared code sees it (``rlhf_demo.algorithms``): its config and trainer,
its status lines (a step's, and the sampling round's before the first step), the record keys its card
and comparison show, its live plot and its panel. Its memory is not modelled yet (``peak_bytes`` None:
the shared server checks its time and steps only)."""

from __future__ import annotations

from rlhf_demo.algorithms import Algorithm
from rlhf_demo.bon.config import BoNConfig
from rlhf_demo.training.status import NAN, step_head

BON_PANELS: list[tuple[str, list[str]]] = [
    (
        "Reward (◆ held-out; ━ the kept samples', ━ all N samples' of the reference)",
        ["eval/reward_mean", "bon/reward_kept", "bon/reward_all"],
    ),
    ("Held-out KL(π‖π_ref) ◆ (nats / response; ━ best-of-N's bound)", ["eval/kl", "bon/kl_bound"]),
    ("Loss −log π(kept answer) per token", ["loss"]),
    ("Token accuracy on the kept answers", ["mean_token_accuracy"]),
    ("Entropy (nats / token)", ["entropy"]),
]
"""The live plot's panels (``Algorithm.curves``)."""


def status(cfg: BoNConfig, rec: dict, total: int) -> list[str]:
    """A step's headline: the loss, and the kept samples' mean reward against all N's."""
    head = step_head(rec, total, cfg.max_seconds) + f" · loss {rec.get('loss', NAN):.4f}"
    if "bon/reward_kept" in rec:
        head += (
            f" · imitating the best of {cfg.num_samples} (reward {rec['bon/reward_kept']:+.3f}; all samples {rec['bon/reward_all']:+.3f})"
        )
    return [head]


def sampling_line(n: int, done: int, total: int, elapsed: float) -> str:
    """The set-up's line while the reference answers the training prompts (``done`` of ``total`` prompts
    have their N answers): "sampling the best of 16: 24/96 prompts · 12 s · ETA ≈ 36 s" (ETA from the mean
    time per prompt so far: elapsed / done · (total − done); none before the first batch)."""
    line = f"sampling the best of {n}: {done}/{total} prompts · {elapsed:.0f} s"
    return line + (f" · ETA ≈ {elapsed / done * (total - done):.0f} s" if done else "")


ALGORITHM = Algorithm(
    name="bon",
    label="Best-of-N distillation",
    config=BoNConfig,
    trainer="rlhf_demo.bon.trainer:BoNTrainer",
    from_pairs=False,
    what="a policy fine-tuned on the best of N samples of the reference (best-of-N distillation)",
    blurb="sample N answers per prompt from the reference, keep the one the reward likes best, fine-tune on those.",
    status=status,
    card_keys=("loss", "bon/reward_kept", "eval/reward_mean", "eval/kl"),
    compare_keys=(("Loss on the kept answers", "loss"),),
    curves="rlhf_demo.bon.algorithm:BON_PANELS",
    symbol="star",
    panel="rlhf_demo.ui.training_bon",
)
