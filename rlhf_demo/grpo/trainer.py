"""GRPO: Group Relative Policy Optimization with ``trl.GRPOTrainer`` (Shao et al. 2024, DeepSeekMath,
https://arxiv.org/abs/2402.03300), one metrics record per optimizer step.

Each step takes B / G prompts and samples G completions o_1..o_G of each from the current policy;
the reward (the same functions as PPO's: VADER, a learned reward model ``rm:RUN_DIR``, ...) scores
every prompt + completion text r_i. The group is the baseline (no value model):

    A_i   = (r_i − mean(r_1..r_G)) / std(r_1..r_G)          (scale_rewards="group"; "none": no division)
    ρ_i,t = π(o_i,t | q, o_i,<t) / π_old(o_i,t | q, o_i,<t)
    L     = −(1/G) Σ_i (1/|o_i|) Σ_t [ min(ρ_i,t A_i, clip(ρ_i,t, 1−ε, 1+ε) A_i) − β · ρ_i,t · k3_i,t ]
    k3    = π_ref/π − log(π_ref/π) − 1                      (per token, never negative)

The KL term is weighed by ρ (TRL 1.16's ``use_bias_correction_kl``, on by default: its gradient is then
the unbiased reverse-KL gradient, DeepSeek-V3.2); DeepSeekMath's loss has β · k3 alone.

With one step per batch (``num_iterations`` = 1) π_old = π and the clip never acts: the update is a
plain policy gradient with a group-normalised advantage plus the KL term. TRL logs ``reward``
(the batch mean of r), ``reward_std``, ``kl`` (the batch mean of ρ·k3, nats per token, when β > 0),
``frac_reward_zero_std`` (groups whose G rewards are equal: no signal), ``entropy`` and more.

What is simplified here:
- Plain-text continuations only (no chat template): a prompt is a movie-review opening cut to a few
  tokens (as PPO's queries), the completion continues it; EOS is banned so every completion has
  ``response_tokens`` tokens. The reward scores the decoded text, so a reward model with another
  tokenizer works.
- LoRA only: the reference is the same model with its adapter switched off (TRL's way with peft);
  no full fine-tuning (TRL would rebuild a reference from a path the embedded model lacks).
- Generation with transformers' ``generate`` (no vLLM), a constant learning rate, no gradient
  accumulation, one process.

Like every trainer it does no I/O: ``train()`` yields records (keys in ``runs/records.py`` and
``grpo/stream.py``) and ``runs.folder.write_run`` writes the run folder. The held-out evaluation is
PPO's and DPO's (``evaluate.py``), so GRPO runs land on the same reward–KL axes in the Runs tab.
TRL's loop runs in a worker thread; the records come back through a queue.
"""

from __future__ import annotations

from rlhf_demo.grpo import stream
from rlhf_demo.models.lora import lora_config
from rlhf_demo.training.trl_base import PromptRun, finish, quiet_datasets, trl_args

BATCH_ROWS = 16
"""Completions of the step kept in its record (``samples``) for the UI and samples.jsonl."""


class GroupReward:
    """TRL's reward-function interface ``f(prompts, completions, **kw) -> list[float]`` over one of ours
    (texts → scores), remembering the last batch it scored."""

    __name__ = "reward"  # TRL names its per-function metrics after it: rewards/reward/mean

    def __init__(self, reward_fn):
        self.reward_fn = reward_fn
        self.last: list[dict] = []

    def __call__(self, prompts, completions, **kw) -> list[float]:
        scores = [float(s) for s in self.reward_fn([p + c for p, c in zip(prompts, completions)])]
        self.last = [{"query": p, "response": c, "reward": s} for p, c, s in zip(prompts, completions, scores)]
        return scores

    def take(self) -> list[dict]:
        rows, self.last = self.last[:BATCH_ROWS], []
        return rows


class GRPOTrainer(PromptRun):
    """``trainer = GRPOTrainer(cfg); for record in trainer.train(): ...`` (``prompts`` default: ``cfg.prompts``;
    the set-up is ``training.trl_base.PromptRun``'s).

    After the loop: ``status``, ``message``, ``step_no``, ``time_s``, ``last_eval``, ``before_after``,
    ``policy`` (a ``models.lora.TrainablePolicy``) and ``restored`` (the step put back by the KL stop)."""

    name, what = "grpo-train", "GRPO"
    queries_as_text = True  # TRL's GRPO takes its prompts as text

    def prepare(self) -> None:
        """The reward as TRL calls it (``GroupReward``); enough prompts for one step."""
        cfg = self.cfg
        if len(self.queries) < cfg.batch_size // cfg.num_generations:
            raise ValueError(f"{len(self.queries)} usable prompts; a step needs {cfg.batch_size // cfg.num_generations}")
        self.group_reward = GroupReward(self.reward_fn)
        self.run_dir = None  # set by runs.folder.write_run: the per-token store goes to RUN/tokens/ (grpo/tokens.py)
        self.note = f"{len(self.queries)} prompts, {cfg.batch_size // cfg.num_generations} × G {cfg.num_generations} per step"

    def record(self, logs: dict) -> dict:
        """``grpo.stream.record`` and ``samples``: what the reward function scored last (the step's
        completions, up to ``BATCH_ROWS``)."""
        rec, rows = stream.record(logs), self.group_reward.take()
        return {**rec, "samples": rows} if rows else rec

    def fixed(self) -> dict:
        """β on every record."""
        return {"beta": self.cfg.beta}

    def build_trl_trainer(self):
        """trl.GRPOTrainer configured for this machine (bf16 and gradient checkpointing off on CPU), LoRA
        on the attention projections."""
        from datasets import Dataset
        from trl import GRPOConfig as TRLConfig

        from rlhf_demo.grpo.capture import KeepingGRPOTrainer

        cfg, bundle = self.cfg, self._bundle
        tok = bundle.tokenizer
        banned = {"suppress_tokens": sorted(set(tok.all_special_ids))} if cfg.ban_special_tokens else {}
        args = trl_args(
            TRLConfig,
            cfg,
            bundle.device,
            "rlhf-grpo-",
            per_device_train_batch_size=cfg.batch_size,
            num_generations=cfg.num_generations,
            max_completion_length=cfg.response_tokens,
            temperature=1.0,
            generation_kwargs=banned or None,
            beta=cfg.beta,
            epsilon=cfg.cliprange,
            num_iterations=cfg.num_iterations,
            scale_rewards=cfg.scale_rewards,
            loss_type=cfg.loss_type,
            max_steps=cfg.steps,
            gradient_checkpointing=False,  # TRL defaults it on; 2.5× slower here
            log_completions=False,
        )
        self.say(0.3, "building TRL's GRPO trainer…")
        quiet_datasets()
        return finish(
            KeepingGRPOTrainer(
                model=bundle.model,
                reward_funcs=[self.group_reward],
                args=args,
                train_dataset=Dataset.from_list([{"prompt": q} for q in self.queries]),
                processing_class=tok,
                peft_config=lora_config(bundle.model, cfg.lora_r, cfg.lora_alpha),
                keep_dir=self.run_dir,
            )
        )
