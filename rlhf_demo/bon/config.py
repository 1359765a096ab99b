"""Best-of-N distillation's settings, in the convention every trainer follows (``rlhf_demo/config.py``): one
dataclass with help, kinds and ranges in the fields' metadata, ``check()``, presets as named overrides.

Names follow PPO's and GRPO's where the quantity is the same (``reward``, ``query_tokens``,
``response_tokens``, ``lr``, ``kl_stop``); ``num_samples`` is the N of best-of-N (the Playground's name).

Presets
-------
- ``quick-cpu`` (default): N = 16 answers of 12 tokens to each training prompt, the best of each kept,
  LoRA r8 fine-tuned on them at lr 1e-3 in batches of 16, stop at 2.5 nats held-out KL, a 5-minute
  budget (sampling included). Measured: ``bench/bon_learnability.py``, docs/experiments.md,
  "Best-of-N distillation".
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
KEEP = ("best", "above-mean")
"""Which samples of a prompt are trained on: its best one (best-of-N), or every one above its mean."""


@dataclass
class BoNConfig(TrainerConfig):
    algo = "bon"

    model: str = model_knob()
    reward: str = reward_knob(
        "Reward on query + response text that picks the best of the N samples (and that the held-out evaluation "
        "reports); rm:RUN_DIR = a reward model from `train --algo reward`. Choices"
    )
    prompts: str = prompts_knob()
    seed: int = seed_knob()
    steps: int = steps_knob(
        200,
        f"Optimizer steps of the fine-tuning (each = one batch of kept samples; the kept set is passed over "
        f"as often as it takes), at most {MAX_STEPS}.",
        MAX_STEPS,
    )
    max_seconds: float = max_seconds_knob()

    num_samples: int = knob(
        16,
        "N: answers sampled from the reference for each training prompt; the best is kept. The best-of-N "
        "policy this imitates is at most log N − (N−1)/N nats from the reference (N = 16: 1.83).",
        kind="int",
        lo=2,
        hi=256,
        group="Sampling",
        label="N (samples per prompt)",
    )
    keep: str = knob(
        "best",
        "Which samples of a prompt are trained on: 'best' (its argmax: best-of-N distillation) or 'above-mean' "
        "(every sample whose reward is above its prompt's mean: more data, a softer target).",
        kind="choice",
        choices=KEEP,
        group="Sampling",
        label="Keep",
    )
    query_tokens: tuple = query_tokens_knob("Sampling")
    response_tokens: int = response_tokens_knob(12, "Tokens per sampled answer (EOS banned: every answer has this length).", "Sampling")

    batch_size: int = batch_size_knob(16, "Kept samples per optimizer step.", "Batch size (samples per step)", hi=512)
    lr: float = lr_knob(1e-3, "AdamW learning rate of the LoRA weights (TRL's SFT default, 2e-5, is for full fine-tuning).")
    max_grad_norm: float = max_grad_norm_knob()

    lora_r: int = lora_r_knob()
    lora_alpha: int = lora_alpha_knob()

    eval_every: int = eval_every_knob(5, "steps")
    eval_at_seconds: tuple = eval_at_seconds_knob()
    eval_at_start: bool = eval_at_start_knob(True)
    kl_stop: float = kl_stop_knob()
    fine_eval_from: float = fine_eval_from_knob()
    device: str = device_knob()
    report_to: str = report_to_knob()

    PRESETS = {
        "quick-cpu": {"kl_stop": 2.5, "max_seconds": 300.0},
    }
    PRESET_LABELS = {
        "quick-cpu": "Quick CPU demo (best of N = 16, 12 tokens, stop at 2.5 nats)",
    }
    DEFAULT_PRESET = "quick-cpu"


DISTILL = (
    "**Where best-of-N distillation's policy comes from.** Each training prompt is answered N times by the "
    "reference; the reward scores every answer and only the best one is kept. Fine-tuning on those winners "
    "(plain next-token likelihood, TRL's SFTTrainer) teaches the policy to answer the way best-of-N picks, "
    "without sampling N at inference. Best-of-N itself is at most log N − (N−1)/N nats from the reference "
    "(the dashed line on the KL panel); the distilled policy lands near it when it imitates well, and beyond "
    "it when it over-fits the few winners."
)
