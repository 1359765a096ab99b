"""DPO: learn straight from preference pairs with ``trl.DPOTrainer`` (Rafailov et al. 2023,
https://arxiv.org/abs/2305.18290), one metrics record per optimizer step.

For a prompt x with a chosen response y_c and a rejected one y_r, DPO's loss (``loss_type="sigmoid"``) is

    h   = (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))
    L   = −log σ(β · h)

where log π(y|x) sums the response tokens' log-probabilities (EOS included). TRL logs the
"implicit rewards" r_c = β(log π(y_c) − log π_ref(y_c)) as ``rewards/chosen`` (likewise
``rewards/rejected``), their difference as ``rewards/margins``, the fraction of pairs with r_c > r_r as
``rewards/accuracies``, and the raw sums log π(y) as ``logps/chosen`` / ``logps/rejected``.
The loss only asks for the *margin* to grow: both log-probabilities may fall, the rejected one
faster ("the chosen reward goes down" is normal: ``config.CHOSEN_GOES_DOWN``).

What is simplified here:
- Plain-text continuations only (no chat template): the prompt is a review opening and the
  responses continue it. TRL re-tokenises prompt+response, so token ids can differ slightly from the
  sampled ones.
- No gradient accumulation, a constant learning rate. Under ``accelerate launch --num_processes N``
  TRL's trainer runs data-parallel with batch_size / N pairs per process (the same global batch);
  only process 0 evaluates (the result is broadcast) and writes (``training/distributed.py``).
- LoRA by default; its reference is the same model with the adapter switched off (no second copy).
  Full fine-tuning keeps a frozen copy as the reference.
- The reference log-probabilities are computed once before training, so each step is one
  forward+backward of the policy (with several processes, at each step instead).

Like every trainer it does no I/O: ``train()`` yields records (keys in ``runs/records.py``; TRL's own
names for its quantities) and ``runs.folder.write_run`` writes the run folder; when it sets ``run_dir``,
the training pairs go to ``RUN/pairs.jsonl`` (``pairs.py``) and each step's per-token log-probabilities,
as TRL's loss computed them, to ``RUN/tokens/`` (``trl_keep.py``, ``tokens.py``) for the token inspector
(``inspect.py``). TRL's loop runs in a worker thread; the records come back through a queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rlhf_demo.before_after import before_after
from rlhf_demo.dpo import stream
from rlhf_demo.dpo.config import DPOConfig
from rlhf_demo.dpo.pairs import check_pairs, load_pairs, save_run_pairs
from rlhf_demo.dpo.tokens import save_update, step_table
from rlhf_demo.evaluate import EvalConfig, evaluate_policy
from rlhf_demo.models.loading import load_model
from rlhf_demo.models.lora import TrainablePolicy, lora_config
from rlhf_demo.rewards.functions import make_reward
from rlhf_demo.runs.records import eval_record
from rlhf_demo.training import distributed
from rlhf_demo.training.trl_base import PolicyRun, finish, quiet_datasets, trl_args


class DPOTrainer(PolicyRun):
    """``trainer = DPOTrainer(cfg); for record in trainer.train(): ...`` (``pairs`` default: ``cfg.preferences``).

    After the loop: ``status``, ``message``, ``step_no``, ``time_s``, ``last_eval``, ``before_after``,
    ``policy`` (a ``models.lora.TrainablePolicy``) and ``restored`` (the step put back by the KL stop)."""

    name, what = "dpo-train", "DPO"
    record = staticmethod(stream.record)

    def __init__(
        self,
        cfg: DPOConfig,
        pairs: list[dict] | None = None,
        *,
        reward_fn: Callable | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
        bundle=None,
        reference=None,
    ):
        """``bundle``/``reference``: a ``ModelBundle`` to train in place and a frozen reference model
        (default: fresh copies of ``cfg.model``; never pass the shared read-only models)."""
        super().__init__(stop, progress)
        self.cfg = cfg.validate()
        distributed.init()
        self.local_batch = distributed.share(cfg.batch_size, "batch_size", cfg.batch_unit())  # pairs per process and step
        self.source = "given" if pairs is not None else cfg.preferences
        if pairs is None:
            prefs = load_pairs(cfg.preferences)
            pairs, self.notes = prefs.rows, prefs.errors
        else:
            self.notes = []
        self.reward_fn = reward_fn or make_reward(cfg.reward)
        self.say(0.05, "loading a trainable copy of the policy…")
        bundle = bundle or load_model(cfg.model, device=cfg.device or None)
        self.rows, self.note = check_pairs(pairs, bundle.tokenizer, cfg.max_length)
        distributed.share_rows(len(self.rows), "preference pairs")
        if cfg.full_finetune and reference is None:
            self.say(0.15, "loading a frozen reference copy…")
            reference = load_model(cfg.model, device=bundle.device, dtype=bundle.dtype).model
        if reference is not None:
            reference.eval()
            for p in reference.parameters():
                p.requires_grad_(False)
        self._bundle = bundle
        self.policy = TrainablePolicy(bundle.model, bundle.tokenizer, cfg.model, bundle.device, frozen_reference=reference)
        self.run_dir = None  # set by runs.folder.write_run (process 0): the pairs go to RUN/pairs.jsonl, each step's tokens to RUN/tokens/
        self._trl = None  # TRL's trainer, once built (``trl_keep.KeepingDPOTrainer``)

    def fixed(self) -> dict:
        """β on every record."""
        return {"beta": self.cfg.beta}

    def planned_steps(self) -> int:
        if self.cfg.steps:
            return self.cfg.steps
        return max(1, math.ceil(math.ceil(len(self.rows) / self.cfg.batch_size) * self.cfg.epochs))

    def run_info(self) -> dict:
        return {"n_trainable": self.n_trainable, "n_pairs": len(self.rows), "preferences": self.source, "restored": self.restored}

    def evaluate(self) -> dict:
        """Held-out evaluation: process 0 runs it, every process gets its result (the KL stop reads it)."""
        ev = (
            evaluate_policy(self.policy.model, self.policy.tokenizer, self.reward_fn, EvalConfig(), reference=self.policy.frozen_reference)
            if distributed.is_main()
            else None
        )
        self.last_eval = distributed.broadcast(ev)
        return eval_record(self.last_eval)

    def after_train(self) -> None:
        if self.status != "diverged" and self.step_no > 0 and not self.skip_eval and distributed.is_main():
            self.before_after = before_after(self.policy, self.reward_fn)

    def build_trl_trainer(self):
        """trl.DPOTrainer configured for this machine (bf16 and gradient checkpointing off on CPU); the
        training pairs are written beside the run first (``run_dir``: the token inspector reads them)."""
        if self.run_dir is not None:
            save_run_pairs(self.run_dir, self.rows)
        from datasets import Dataset
        from trl import DPOConfig as TRLConfig

        from rlhf_demo.dpo.trl_keep import KeepingDPOTrainer

        cfg, bundle = self.cfg, self._bundle
        args = trl_args(
            TRLConfig,
            cfg,
            bundle.device,
            "rlhf-dpo-",
            per_device_train_batch_size=self.local_batch,
            num_train_epochs=cfg.epochs,
            max_steps=cfg.steps or -1,
            beta=cfg.beta,
            loss_type=[cfg.loss_type] + (["sft"] if cfg.sft_weight > 0 else []),
            loss_weights=[1.0, cfg.sft_weight] if cfg.sft_weight > 0 else None,
            label_smoothing=cfg.label_smoothing,
            max_length=cfg.max_length,
            # TRL's precomputed reference log-probs go through a per-process temporary file: one process only
            precompute_ref_log_probs=distributed.world_size() == 1,
            precompute_ref_batch_size=32,
            activation_checkpointing=False,  # TRL defaults it on; 2.5× slower here
        )
        peft = None if cfg.full_finetune else lora_config(bundle.model, cfg.lora_r, cfg.lora_alpha)
        self.say(0.3, "tokenising pairs and computing reference log-probabilities…")
        quiet_datasets()
        self._trl = KeepingDPOTrainer(
            model=bundle.model,
            ref_model=self.policy.frozen_reference,
            args=args,
            train_dataset=Dataset.from_list(self.rows),
            processing_class=bundle.tokenizer,
            peft_config=peft,
            keep=self.run_dir is not None,
        )
        return finish(self._trl)

    def _on_step(self, step: int) -> None:
        """After optimizer step ``step``: its pairs' per-token log-probabilities (as its loss computed
        them) to ``RUN/tokens/step-000K.pt`` (``tokens.py``), then the shared checkpoint hook."""
        batch, self._trl.last_batch = self._trl.last_batch, None
        if batch is not None and self.run_dir is not None:
            save_update(self.run_dir, step, step_table(batch, self._bundle.tokenizer, self.cfg.beta))
        super()._on_step(step)
