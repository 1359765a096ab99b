"""DPO's settings, in the convention every trainer follows (``rlhf_demo/config.py``): one dataclass
with help, kinds and ranges in the fields' metadata, ``check()``, presets as named overrides.

Presets
-------
- ``quick-cpu`` (default): batch 4 (twice the steps per minute of batch 8 for about the same movement
  per step with Adam), lr 1e-3 (5e-4 moved the held-out reward by only ~+0.1 in 3 minutes), 3 epochs
  at most, a 3-minute budget, held-out evaluation every 4 steps and every step once the KL passes
  half of the 6-nat stop; past 6 nats the run stops and keeps the last policy under it.
- ``push-hard``: lr 2e-3, no KL stop: watch the KL run away.
- ``ipo``: the IPO loss (Azar et al. 2023) at β 0.5.
- ``full-finetune``: every weight trains (lr 1e-5), a frozen copy is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_demo.config import TrainerConfig, knob
from rlhf_demo.knobs import (
    batch_size_knob,
    device_knob,
    epoch_steps_knob,
    epochs_knob,
    eval_at_seconds_knob,
    eval_at_start_knob,
    eval_every_knob,
    fine_eval_from_knob,
    full_finetune_knob,
    kl_stop_knob,
    lora_alpha_knob,
    lora_r_knob,
    lr_knob,
    max_grad_norm_knob,
    max_length_knob,
    max_seconds_knob,
    model_knob,
    preferences_knob,
    report_to_knob,
    reward_knob,
    seed_knob,
)

LOSS_TYPES = (
    "sigmoid",
    "ipo",
    "hinge",
    "robust",
    "bco_pair",
    "sppo_hard",
    "nca_pair",
    "apo_zero",
    "apo_down",
    "sigmoid_norm",
    "discopop",
    "exo_pair",
)
"""The single loss types of TRL 1.16's DPOTrainer offered here (``sigmoid`` is the DPO paper's)."""
MAX_STEPS = 10_000


@dataclass
class DPOConfig(TrainerConfig):
    algo = "dpo"

    model: str = model_knob()
    preferences: str = preferences_knob()
    reward: str = reward_knob("Reward of the held-out evaluation (the same one PPO trains on)")
    seed: int = seed_knob()
    steps: int = epoch_steps_knob(MAX_STEPS)
    epochs: float = epochs_knob(1.0, "Passes over the preference pairs (when steps is 0).")
    max_seconds: float = max_seconds_knob()

    batch_size: int = batch_size_knob(8, "Pairs per optimizer step.", "Batch size (pairs per step)", hi=128)
    max_length: int = max_length_knob(32, "Tokens of prompt + response kept; pairs whose prompt alone is this long are dropped.")
    beta: float = knob(
        0.1,
        "β: temperature of the implicit reward r = β·(log π − log π_ref); larger β keeps the policy closer to the reference.",
        kind="float",
        lo=1e-4,
        hi=10.0,
        group="DPO loss",
        label="β",
    )
    loss_type: str = knob(
        "sigmoid",
        "TRL loss: 'sigmoid' is the DPO paper's −log σ(β h); 'ipo', 'hinge', 'robust', ... are variants.",
        kind="choice",
        choices=LOSS_TYPES,
        group="DPO loss",
        label="Loss",
    )
    sft_weight: float = knob(
        0.0,
        "Weight of an extra NLL loss on the chosen responses (TRL's 'sft' term, as in RPO, Pang "
        "et al. 2024): keeps log π(chosen) from falling; 0 = plain DPO.",
        kind="float",
        lo=0.0,
        hi=10.0,
        group="DPO loss",
        label="SFT weight (RPO)",
    )
    label_smoothing: float = knob(
        0.0,
        "Probability that a label is flipped ('robust'; 'exo_pair' needs > 0, e.g. 1e-3).",
        kind="float",
        lo=0.0,
        hi=0.499,
        group="DPO loss",
        label="Label smoothing",
    )
    lr: float = lr_knob(5e-4, "AdamW learning rate (LoRA takes ~100× larger rates than full fine-tuning).")
    max_grad_norm: float = max_grad_norm_knob()

    full_finetune: bool = full_finetune_knob()
    lora_r: int = lora_r_knob()
    lora_alpha: int = lora_alpha_knob()

    eval_every: int = eval_every_knob(10, "steps")
    eval_at_seconds: tuple = eval_at_seconds_knob()
    eval_at_start: bool = eval_at_start_knob(True)
    kl_stop: float = kl_stop_knob(" DPO's KL keeps climbing.")
    fine_eval_from: float = fine_eval_from_knob(" (DPO's KL can jump ~0.4 nats a step)")
    device: str = device_knob()
    report_to: str = report_to_knob()

    PRESETS = {
        "quick-cpu": {"batch_size": 4, "lr": 1e-3, "epochs": 3.0, "eval_every": 4, "kl_stop": 6.0, "max_seconds": 180.0},
        "push-hard": {"lr": 2e-3, "epochs": 2.0, "eval_every": 10},
        "ipo": {"loss_type": "ipo", "beta": 0.5, "lr": 5e-4},
        "full-finetune": {"full_finetune": True, "lr": 1e-5, "batch_size": 4},
    }
    PRESET_LABELS = {
        "quick-cpu": "Quick CPU demo (β 0.1, lr 1e-3, stop at 6 nats)",
        "push-hard": "Push hard (lr 2e-3): watch the KL run away",
        "ipo": "IPO loss",
        "full-finetune": "Full fine-tuning (all weights)",
    }
    DEFAULT_PRESET = "quick-cpu"

    def batch_unit(self) -> int:
        return 1  # pairs per process and step: any whole share

    def check(self) -> None:
        if self.loss_type == "exo_pair" and self.label_smoothing <= 0:
            raise ValueError("the exo_pair loss needs label_smoothing > 0 (the EXO paper uses 1e-3)")


CHOSEN_GOES_DOWN = (
    "**Why can the chosen reward go down?** DPO only asks the *margin* β·[(log π(chosen) − log π_ref(chosen)) − "
    "(log π(rejected) − log π_ref(rejected))] to grow. Pushing the rejected response down is the easiest way, "
    "and the two responses share most of their words, so the chosen log-probability is often dragged down too: "
    "both curves fall, the rejected one faster, and the margin and accuracy still rise. The lost probability mass "
    "goes to other responses, which is why the held-out KL keeps growing."
)
