"""GRPO's settings, in the convention every trainer follows (``rlhf_demo/config.py``): one dataclass
with help, kinds and ranges in the fields' metadata, ``check()``, presets as named overrides.

Names follow PPO's where the quantity is the same (``beta``, ``cliprange``, ``query_tokens``,
``response_tokens``, ``ban_special_tokens``) and TRL's ``GRPOConfig`` where GRPO has its own
(``num_generations``, ``num_iterations``, ``scale_rewards``, ``loss_type``).

Presets
-------
- ``quick-cpu`` (default): 4 prompts × G = 8 completions of 16 tokens per batch (32), 4 optimizer steps
  on each batch (μ = 4: the clip acts) at lr 2e-3, LoRA r8, β 0.04, a 5-minute budget, held-out
  evaluation every 10 steps and every step once the held-out KL passes half of the 6-nat stop; past
  6 nats the run stops and keeps the last policy under it. Measured (three seeds, an Intel Xeon, 2
  cores; ``bench/grpo_learnability.py``, docs/measurements.md, "GRPO"): the kept policies gain +0.31,
  +0.36 and +0.27 held-out at 5.5–5.9 nats in 3–5 minutes (the five reads up to each: +0.26 … +0.29).
  With G = 4 (16 per batch, the preset until 2026-12-07) three seeds gained +0.09 to +0.16 for 5–6
  nats: a group of 4 is a noisy baseline, and each batch carries half the answers for the same
  optimizer steps. One step per batch at lr 1e-3 (μ = 1) moved it by +0.01 at 0.7 nats.
- ``no-kl``: β = 0 and no KL stop (TRL's default β): nothing holds the policy near the reference.
- ``dr-grpo``: Dr. GRPO (Liu et al. 2025): advantages not divided by the group's standard deviation,
  token losses summed and divided by a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_demo.config import TrainerConfig, knob
from rlhf_demo.knobs import (
    batch_size_knob,
    device_knob,
    eval_at_seconds_knob,
    eval_at_start_knob,
    eval_every_knob,
    fine_eval_from_knob,
    kl_stop_knob,
    lora_alpha_knob,
    lora_r_knob,
    lr_knob,
    max_grad_norm_knob,
    max_seconds_knob,
    model_knob,
    prompts_knob,
    query_tokens_knob,
    report_to_knob,
    response_tokens_knob,
    reward_knob,
    seed_knob,
    steps_knob,
)

MAX_STEPS = 2000
LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")
"""TRL 1.16's token-loss aggregations offered here ('grpo' is DeepSeekMath's per-sequence mean)."""


@dataclass
class GRPOConfig(TrainerConfig):
    algo = "grpo"

    model: str = model_knob()
    reward: str = reward_knob(
        "Reward on query + response text, the one GRPO maximises (and the held-out evaluation "
        "reports); rm:RUN_DIR = a reward model from `train --algo reward`. Choices"
    )
    prompts: str = prompts_knob()
    seed: int = seed_knob()
    steps: int = steps_knob(200, f"Optimizer steps (each = one batch of groups), at most {MAX_STEPS}.", MAX_STEPS)
    max_seconds: float = max_seconds_knob()

    batch_size: int = batch_size_knob(
        16,
        "Completions per optimizer step: batch_size / num_generations prompts, each answered num_generations times.",
        "Batch size (completions per step)",
        lo=2,
        hi=512,
    )
    num_generations: int = knob(
        4,
        "Group size G: completions sampled per prompt. Each completion's advantage is its "
        "reward minus its group's mean (divided by the group's std with scale_rewards=group): "
        "the group is the baseline, no value model.",
        kind="int",
        lo=2,
        hi=64,
        group="Rollouts",
        label="Group size G (completions per prompt)",
    )
    query_tokens: tuple = query_tokens_knob("Rollouts")
    response_tokens: int = response_tokens_knob(16, "Tokens per completion (TRL's max_completion_length).", "Rollouts")
    ban_special_tokens: bool = knob(
        True,
        "Suppress EOS and other special tokens so every completion has the full length (as PPO's rollouts).",
        kind="bool",
        group="Rollouts",
        label="Ban EOS / special tokens",
    )

    beta: float = knob(
        0.04,
        "KL coefficient β: the loss adds β·KL(π‖π_ref) per token (k3 estimate, DeepSeekMath "
        "eq. 4). 0 = no penalty, and TRL then logs no batch KL.",
        kind="float",
        lo=0.0,
        hi=10.0,
        group="KL penalty",
        label="β (KL coefficient)",
    )
    cliprange: float = knob(
        0.2,
        "Clip ε of the probability ratio π/π_old (TRL: epsilon); only acts when num_iterations > 1.",
        kind="float",
        lo=1e-3,
        hi=10.0,
        group="Optimisation",
        label="Clip ε (policy ratio)",
    )
    num_iterations: int = knob(
        1,
        "Optimizer steps on each batch of groups (μ in DeepSeekMath; TRL: num_iterations).",
        kind="int",
        lo=1,
        hi=16,
        group="Optimisation",
        label="Steps per batch (μ)",
    )
    scale_rewards: str = knob(
        "group",
        "Advantage scaling: 'group' = (r − mean_group) / std_group (GRPO), 'batch' = "
        "divide by the batch's std, 'none' = no division (Dr. GRPO).",
        kind="choice",
        choices=("group", "batch", "none"),
        group="Optimisation",
        label="Advantage scaling",
    )
    loss_type: str = knob(
        "grpo",
        "How token losses are averaged: 'grpo' per completion then over the batch "
        "(DeepSeekMath), 'dapo'/'bnpo' over all tokens, 'dr_grpo' sum / a constant. With EOS banned "
        "every completion has the same length and they differ little.",
        kind="choice",
        choices=LOSS_TYPES,
        group="Optimisation",
        label="Loss aggregation",
    )
    lr: float = lr_knob(1e-3, "AdamW learning rate of the LoRA weights (TRL's default, 1e-6, is for full fine-tuning).")
    max_grad_norm: float = max_grad_norm_knob()

    lora_r: int = lora_r_knob()
    lora_alpha: int = lora_alpha_knob()

    eval_every: int = eval_every_knob(10, "steps")
    eval_at_seconds: tuple = eval_at_seconds_knob()
    eval_at_start: bool = eval_at_start_knob(True)
    kl_stop: float = kl_stop_knob()
    fine_eval_from: float = fine_eval_from_knob()
    device: str = device_knob()
    report_to: str = report_to_knob()

    PRESETS = {
        "quick-cpu": {"num_generations": 8, "batch_size": 32, "num_iterations": 4, "lr": 2e-3, "kl_stop": 6.0, "max_seconds": 300.0},
        "no-kl": {"beta": 0.0, "kl_stop": 0.0, "max_seconds": 180.0},
        "dr-grpo": {"scale_rewards": "none", "loss_type": "dr_grpo", "kl_stop": 6.0, "max_seconds": 180.0},
    }
    PRESET_LABELS = {
        "quick-cpu": "Quick CPU demo (4 prompts × G 8, 16 tokens, μ 4, β 0.04, stop at 6 nats)",
        "no-kl": "No KL penalty (β = 0): nothing holds the policy back",
        "dr-grpo": "Dr. GRPO (no std scaling, constant normaliser)",
    }
    DEFAULT_PRESET = "quick-cpu"

    def check(self) -> None:
        g = self.num_generations
        if self.batch_size % g:
            near = [m for m in (self.batch_size // g * g, self.batch_size // g * g + g) if m > 0]
            raise ValueError(
                f"batch_size ({self.batch_size} completions per step) must be a multiple of num_generations "
                f"({g} per prompt), e.g. {' or '.join(map(str, near))}"
            )


GROUP_BASELINE = (
    "**Where GRPO's advantage comes from.** Each prompt is answered G times; a completion's advantage is its reward "
    "minus the mean reward of its own group (divided by the group's standard deviation), so the group is the baseline "
    "and there is no value model to train. A group whose G rewards are equal teaches nothing (TRL logs the share of "
    "such groups as frac_reward_zero_std). The KL to the reference is a term of the loss (β·k3 per token), not a "
    "penalty inside the reward as in PPO."
)
