"""PPO's settings: one dataclass (help, kinds and ranges in each field's metadata), ``check()`` and
presets as named overrides (``rlhf_demo/config.py`` has the convention every trainer follows).

Names follow TRL's old ``PPOConfig`` where it had one (``init_kl_coef`` is our ``beta``,
``cliprange``, ``vf_coef``, ``gamma``, ``lam``, ``ppo_epochs``, ``num_mini_batches``,
``target``/``horizon`` of the adaptive KL controller: our ``kl_target``, ``kl_horizon``). TRL's
``cliprange_value`` is folded into ``cliprange``: one ε clips the policy ratio and the value
prediction, as cleanrl's ``clip_coef`` does (both were 0.2 in every preset).

The reward may be a learned reward model (``rm:RUN_DIR``); ``gold_reward`` is then the score it stands
for, logged beside it on the same texts (``gold_reward_mean``, ``eval/gold_reward_mean``) and never
trained on, so a run shows the proxy rising while the gold score stalls or falls (over-optimisation,
Gao et al. 2022, https://arxiv.org/abs/2210.10760).

Presets
-------
- ``quick-cpu`` (default): the embedded SmolLM2-135M, VADER-positive reward, attention-LoRA r8 on the
  top 8 of 30 layers (the 22 below are shared with the reference and not run again: ``trunk.py``),
  batch 32, 12-token responses, 2 PPO epochs of four mini-batches at lr 1e-3, a fixed β = 0.03, and a
  KL budget of 5.5 nats that undoes an update which crossed it (then half steps until one is
  accepted); the value head learns on detached hidden states, so the critic costs no KL.
- ``no-kl``: the same with β = 0 and no budget: the opposite lesson (reward saturates, KL explodes,
  the text collapses into repetitions).
- ``goodhart``: the quick-cpu settings pushed harder (lr 2e-3, batch 16, 220 s) on the reward model
  ``rm:goodhart-rm`` (the run ``goodhart-rm``, else the newest run of the reward-model preset
  ``goodhart``: ``rewards/learned.py``; trained on pairs the gold labelled), with that gold
  (``data/goodhart.py``: positive + on topic − 2 × repetition + fluency + relevance) logged beside it and
  held-out evaluations from the start (every 6 updates): the over-optimisation panel shows proxy and
  gold against KL. With β = 0 (``--beta 0 --kl-budget 0``) the gold rises, peaks and falls while the
  proxy keeps climbing; with the preset's β and KL budget it stays near the peak (``bench/goodhart.py``).
- ``course``: the Hugging Face course setup (``lvwerra/gpt2-imdb`` fine-tuned in full, reward = the
  POSITIVE logit of ``lvwerra/distilbert-imdb``, batch 128, 4 epochs, adaptive β); needs the Hub and
  a GPU to be pleasant.

Knobs measured "no better" left the product; their figures are in ``docs/experiments.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_demo.config import TrainerConfig, knob
from rlhf_demo.data import goodhart
from rlhf_demo.knobs import (
    device_knob,
    dtype_knob,
    eval_at_seconds_knob,
    eval_at_start_knob,
    eval_every_knob,
    full_finetune_knob,
    lora_alpha_knob,
    lora_r_knob,
    lr_knob,
    max_grad_norm_knob,
    max_seconds_knob,
    model_knob,
    report_to_knob,
    reward_knob,
    seed_knob,
)

MAX_STEPS = 2000
MAX_BATCH = 512


@dataclass
class PPOConfig(TrainerConfig):
    algo = "ppo"

    # --- what to train, on what -------------------------------------------------------------
    model: str = model_knob()
    reward: str = reward_knob(
        "Reward on query + response text, the one PPO maximises (and the held-out evaluation reports); "
        "rm:RUN_DIR = a reward model from `train --algo reward`. Choices"
    )
    gold_reward: str = knob(
        "vader-positive",
        "Gold reward, scored on the same texts as the reward and logged beside it "
        "(gold_reward_mean), never trained on: with a learned reward (rm:RUN_DIR) it shows whether the "
        "proxy's gains are real. Same specs as the reward; 'none' = not computed.",
        kind="str",
        group="Data",
        label="Gold reward (logged only; 'none' = off)",
    )
    prompts: str = knob(
        "builtin",
        "Training prompts: 'builtin' (movie-review openings, held-out ones excluded), a "
        ".txt/.csv/.jsonl file, or hf:DATASET[:COLUMN]. (The UI takes an uploaded file instead.)",
        kind="str",
        group="Data",
        label="Prompts",
        ui=False,
    )
    seed: int = seed_knob()
    steps: int = knob(
        30,
        f"Number of PPO updates (each = one batch of episodes), at most {MAX_STEPS}.",
        kind="int",
        lo=1,
        hi=MAX_STEPS,
        group="Run",
        label="Updates",
    )
    max_seconds: float = max_seconds_knob()

    # --- rollouts -------------------------------------------------------------------------------
    batch_size: int = knob(
        32,
        "Episodes (query → response) per update.",
        kind="int",
        lo=1,
        hi=MAX_BATCH,
        group="Optimisation",
        label="Batch size (episodes per update)",
    )
    query_tokens: tuple = knob(
        (2, 8),
        "Query length in tokens, N or MIN:MAX: each prompt is cut to a length drawn uniformly from the range (the course's LengthSampler).",
        kind="range",
        lo=1,
        hi=256,
        group="Rollouts",
        label="Query tokens (N or MIN:MAX)",
    )
    response_tokens: tuple = knob(
        (12, 12),
        "Response length in tokens, N or MIN:MAX (drawn per batch). Longer responses hold more sentiment words but cost time.",
        kind="range",
        lo=1,
        hi=256,
        group="Rollouts",
        label="Response tokens (N or MIN:MAX)",
    )
    ban_special_tokens: bool = knob(
        True,
        "Suppress EOS and other special tokens so every response has the full length (the course's setup).",
        kind="bool",
        group="Rollouts",
        label="Ban EOS / special tokens",
    )

    # --- KL penalty (lm-human-preferences) --------------------------------------------------------
    beta: float = knob(
        0.03,
        "KL coefficient β (TRL: init_kl_coef): each response token is rewarded −β·(log π − log π_ref). 0 = no penalty (and no controller).",
        kind="float",
        lo=0.0,
        hi=10.0,
        group="KL penalty",
        label="β (KL coefficient)",
    )
    kl_estimator: str = knob(
        "k1",
        "Per-token KL estimate in the penalty: k1 = log π − log π_ref (classic, can be negative), "
        "k3 = (r − 1) − log r with r = π_ref/π (never negative).",
        kind="choice",
        choices=("k1", "k3"),
        group="KL penalty",
        label="KL estimator in the penalty",
    )
    kl_target: float = knob(
        0.0,
        "Adaptive β (Ziegler et al. 2019) toward this KL, in nats per response on the training batch "
        "(exact KL): β ← β·(1 + clip(KL/target − 1, ±0.2)·batch/horizon). 0 = β stays fixed; with "
        "β = 0 there is nothing to adapt and the controller stays off.",
        kind="float",
        lo=0.0,
        hi=1000.0,
        group="KL penalty",
        label="Adaptive-β KL target (0 = fixed β)",
    )
    kl_horizon: float = knob(
        80.0,
        "Horizon (episodes) of the adaptive controller: smaller = β reacts faster. The paper used 10000 over a far longer run.",
        kind="float",
        lo=1.0,
        hi=1e7,
        group="KL penalty",
        label="Controller horizon (episodes)",
    )
    kl_budget: float = knob(
        5.5,
        "KL budget (nats per response, exact, on the batch; 0 = none): when a batch shows the policy "
        "past it, the last update is undone (weights and optimiser state as before it). Before an "
        "evaluation and at the end the last update is judged at once, so the policy evaluated and "
        "saved is one the budget accepted.",
        kind="float",
        lo=0.0,
        hi=1000.0,
        group="KL penalty",
        label="KL budget (0 = none)",
    )
    kl_budget_lr_factor: float = knob(
        0.5,
        "Backtracking after an undone update: the learning rate × this factor, and ÷ it "
        "again (up to lr) each time the budget accepts an update, so the policy creeps up to the "
        "budget instead of stalling under it. 1 = off.",
        kind="float",
        lo=0.01,
        hi=1.0,
        group="KL penalty",
        label="Step after an undo (× learning rate)",
    )

    # --- PPO ---------------------------------------------------------------------------------------
    lr: float = lr_knob(1e-3, "Adam learning rate (LoRA weights and value head). Full fine-tuning wants ~1e-5.")
    ppo_epochs: int = knob(2, "Passes over each batch of episodes.", kind="int", lo=1, hi=16, group="Optimisation", label="PPO epochs")
    num_mini_batches: int = knob(
        4,
        "Mini-batches per epoch (batch_size must divide evenly). More, shorter Adam steps per "
        "batch: the gradient noise of the steps partly cancels, so less KL is spent on it "
        "(measured: 4 × lr 1e-3 bought ~15 % more reward per nat than 2 × lr 2e-3).",
        kind="int",
        lo=1,
        hi=MAX_BATCH,
        group="Optimisation",
        label="Mini-batches",
    )
    cliprange: float = knob(
        0.2,
        "PPO clip ε of the probability ratio π/π_old, and of the value prediction around the "
        "old value (TRL's cliprange_value; one ε for both, as in cleanrl).",
        kind="float",
        lo=1e-3,
        hi=10.0,
        group="Optimisation",
        label="Clip ε (policy ratio and value)",
    )
    vf_coef: float = knob(
        0.1, "Weight of the value loss in the total loss.", kind="float", lo=0.0, hi=100.0, group="Optimisation", label="Value loss weight"
    )
    value_grad_to_policy: bool = knob(
        False,
        "Let the value loss's gradient flow through the shared backbone into the "
        "policy's weights (TRL's value head on the policy). Off: the value head learns on the "
        "policy's hidden states without moving them, so fitting the critic costs no KL.",
        kind="bool",
        group="Optimisation",
        label="Value loss trains the shared backbone too",
    )
    gamma: float = knob(1.0, "Discount γ of GAE (1 = none, usual for text).", kind="float", lo=0.0, hi=1.0, group="Optimisation", label="γ")
    lam: float = knob(0.95, "λ of generalised advantage estimation.", kind="float", lo=0.0, hi=1.0, group="Optimisation", label="λ (GAE)")
    max_grad_norm: float = max_grad_norm_knob()

    # --- parameterisation ------------------------------------------------------------------------------
    full_finetune: bool = full_finetune_knob()
    lora_r: int = lora_r_knob()
    lora_alpha: int = lora_alpha_knob()
    lora_layers: int = knob(
        8,
        "LoRA only on the top N decoder layers (0 = all). The layers below stay equal to the "
        "reference, so their hidden states are taken from generation and only the top N layers run "
        "again in the reference and PPO passes: much faster updates.",
        kind="int",
        lo=0,
        hi=1000,
        group="Model and LoRA",
        label="LoRA on the top N layers (0 = all)",
    )

    # --- evaluation ----------------------------------------------------------------------------------------
    eval_every: int = eval_every_knob(0, "updates")
    eval_at_seconds: tuple = eval_at_seconds_knob()
    eval_at_start: bool = eval_at_start_knob(False)
    eval_final: bool = knob(
        True,
        "Evaluate at the end (held-out reward and KL, and the before/after answers; ~15 s on 2 cores).",
        kind="bool",
        group="Evaluation",
        label="Evaluate at the end",
    )
    device: str = device_knob()
    dtype: str = dtype_knob()
    report_to: str = report_to_knob()

    PRESETS = {
        "quick-cpu": {},
        "no-kl": {"beta": 0.0, "kl_budget": 0.0},
        "goodhart": {
            "reward": f"rm:{goodhart.RM_RUN}",
            "gold_reward": goodhart.GOLD,
            "steps": MAX_STEPS,
            "lr": 2e-3,
            "batch_size": 16,
            "max_seconds": 220.0,
            "eval_every": 6,
            "eval_at_start": True,
        },
        "course": {
            "model": "lvwerra/gpt2-imdb",
            "reward": "hf:lvwerra/distilbert-imdb:POSITIVE",
            "full_finetune": True,
            "lora_layers": 0,
            "lr": 1.41e-5,
            "batch_size": 128,
            "num_mini_batches": 1,
            "ppo_epochs": 4,
            "beta": 0.2,
            "kl_target": 6.0,
            "kl_horizon": 10000.0,
            "kl_budget": 0.0,
            "kl_budget_lr_factor": 1.0,
            "response_tokens": (4, 16),
            "ban_special_tokens": False,
            "steps": 200,
            "value_grad_to_policy": True,
        },
    }
    PRESET_LABELS = {
        "quick-cpu": "Quick CPU demo (SmolLM2-135M, VADER, LoRA, β 0.03 + KL budget)",
        "no-kl": "No KL penalty (β = 0): watch it reward-hack",
        "goodhart": f"Goodhart, step 2: PPO on the reward model {goodhart.RM_RUN}, gold = what the labeller wanted",
        "course": "Course: gpt2-imdb + distilbert-imdb (needs the Hub)",
    }
    DEFAULT_PRESET = "quick-cpu"

    @property
    def adaptive_kl(self) -> bool:
        """The adaptive controller runs when a KL target is set and there is a β to adapt."""
        return self.kl_target > 0 and self.beta > 0

    def batch_unit(self) -> int:
        return self.num_mini_batches  # each process cuts its episodes into the mini-batches

    def check(self) -> None:
        if self.batch_size % self.num_mini_batches:
            raise ValueError(f"batch_size ({self.batch_size}) must be divisible by num_mini_batches ({self.num_mini_batches})")


PRESETS, PRESET_LABELS, DEFAULT_PRESET = PPOConfig.PRESETS, PPOConfig.PRESET_LABELS, PPOConfig.DEFAULT_PRESET


def preset(name: str | None = None, **overrides) -> PPOConfig:
    """A config from a preset name plus overrides (``None`` values are ignored); not yet validated."""
    return PPOConfig.preset(name, **overrides)
