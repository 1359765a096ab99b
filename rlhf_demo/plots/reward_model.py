"""The reward model's training curves: which record columns go in which panel (``training.training_figure``
draws them; ◆ = held-out pairs, never trained on). No torch here."""

from __future__ import annotations

REWARD_PANELS: list[tuple[str, list[str]]] = [
    ("Bradley–Terry loss −log σ(r_c − r_r) (◆ held-out)", ["loss", "eval/loss"]),
    ("Pair accuracy: share with r_c > r_r (◆ held-out)", ["accuracy", "eval/accuracy"]),
    ("Margin r_c − r_r (◆ held-out)", ["margin", "eval/margin"]),
    ("Scores of the batch's texts (mean, min, max)", ["mean_reward", "min_reward", "max_reward"]),
]
