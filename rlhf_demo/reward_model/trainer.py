"""A reward model from preference pairs with ``trl.RewardTrainer``, one metrics record per optimizer step.

The model is the base LM with its LM head replaced by a scalar head: r(x, y) = w · h_T, the last
decoder hidden state at the text's last token (``rewards/learned.py``). For a prompt x with a chosen
response y_c and a rejected one y_r the Bradley–Terry model (Bradley & Terry 1952; Ouyang et al. 2022,
eq. 1; Stiennon et al. 2020) says P(y_c ≻ y_r | x) = σ(r(x, y_c) − r(x, y_r)), and the loss is its
negative log-likelihood over a batch of B pairs:

    Δ_i  = r(x_i, y_c,i) − r(x_i, y_r,i)
    L    = −(1/B) Σ_i log σ(Δ_i)

TRL logs, per step, ``loss`` = L, ``accuracy`` = (1/B) Σ_i [Δ_i > 0], ``margin`` = (1/B) Σ_i Δ_i and
``mean_reward`` / ``min_reward`` / ``max_reward`` over the 2B scores (TRL's ``RewardTrainer.compute_loss``).
The held-out pairs (every ``heldout_every``-th, never trained on) give ``eval/accuracy``,
``eval/margin`` and ``eval/loss`` the same way.

What is simplified here:
- Plain-text continuations only (no chat template): the text scored is prompt + response + EOS.
- LoRA on the attention projections plus a trainable score head (``modules_to_save``); no full
  fine-tuning, no reward centring (TRL's ``center_rewards_coefficient``), no margins from ratings.
- No gradient accumulation, a constant learning rate. Under ``accelerate launch --num_processes N``
  TRL's trainer runs data-parallel with batch_size / N pairs per process (the same global batch);
  only process 0 evaluates (the result is broadcast) and writes (``training/distributed.py``).

Like every trainer it does no I/O: ``train()`` yields records (keys in ``runs/records.py``) and
``runs.folder.write_run`` writes the run folder; the model in ``RUN/policy/`` is a SEQ_CLS LoRA adapter
with ``base_model.txt``, read back by ``rewards.learned.load_reward_model`` (``rm:RUN_DIR``). TRL's loop
runs in a worker thread; the records come back through a queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rlhf_demo.dpo.pairs import load_pairs
from rlhf_demo.models.loading import default_device
from rlhf_demo.models.lora import TrainablePolicy, lora_targets
from rlhf_demo.reward_model import stream
from rlhf_demo.reward_model.config import RewardConfig
from rlhf_demo.reward_model.pairs import prepare_pairs
from rlhf_demo.rewards.learned import load_sequence_classifier, score_texts
from rlhf_demo.training import distributed
from rlhf_demo.training.trl_base import TRLRun, finish, quiet_datasets, trl_args


def pair_metrics(model, tokenizer, pairs: list[dict], batch_size: int = 32) -> dict:
    """Bradley–Terry loss, accuracy and mean margin of ``model`` on ``pairs`` (no gradient), with the
    pairs' scores as rows."""
    r_c = torch.tensor(score_texts(model, tokenizer, [p["prompt"] + p["chosen"] for p in pairs], batch_size))  # [N]
    r_r = torch.tensor(score_texts(model, tokenizer, [p["prompt"] + p["rejected"] for p in pairs], batch_size))  # [N]
    delta = r_c - r_r  # [N]
    rows = [{**p, "reward_chosen": float(c), "reward_rejected": float(r)} for p, c, r in zip(pairs, r_c, r_r)]
    return {
        "accuracy": float((delta > 0).float().mean()),
        "margin": float(delta.mean()),
        "loss": float(-F.logsigmoid(delta).mean()),
        "n": len(pairs),
        "samples": rows,
    }


class RewardTrainer(TRLRun):
    """``trainer = RewardTrainer(cfg); for record in trainer.train(): ...`` (``pairs`` default: ``cfg.preferences``).

    After the loop: ``status``, ``message``, ``step_no``, ``time_s``, ``last_eval`` (held-out accuracy,
    margin, loss), ``policy`` (a ``models.lora.TrainablePolicy`` whose model is the reward model),
    ``rows`` / ``heldout`` (the training and held-out pairs)."""

    name, what = "reward-train", "reward model"
    eval_if_stopped = True  # the held-out pairs are measured at the end however the run ends
    record = staticmethod(stream.record)

    def __init__(
        self,
        cfg: RewardConfig,
        pairs: list[dict] | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
    ):
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
        self.say(0.05, f"loading {cfg.model} with a scalar score head…")
        device = torch.device(cfg.device) if cfg.device else default_device()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the new score head's initialisation
            model, tok = load_sequence_classifier(cfg.model, device)
        self.rows, self.heldout, self.note = prepare_pairs(pairs, tok, cfg.max_length, cfg.heldout_every)
        distributed.share_rows(len(self.rows), "training pairs")
        self.policy = TrainablePolicy(model, tok, cfg.model, device)  # before_after stays []: a reward model writes no text

    def planned_steps(self) -> int:
        if self.cfg.steps:
            return self.cfg.steps
        return max(1, math.ceil(math.ceil(len(self.rows) / self.cfg.batch_size) * self.cfg.epochs))

    def run_info(self) -> dict:
        return {"n_trainable": self.n_trainable, "n_pairs": len(self.rows), "n_heldout": len(self.heldout), "preferences": self.source}

    def evaluate(self) -> dict:
        """Held-out pair accuracy, margin and loss as record keys (``eval/…``), with the pairs' scores."""
        self.last_eval = distributed.broadcast(
            pair_metrics(self.policy.model, self.policy.tokenizer, self.heldout) if distributed.is_main() else None
        )  # process 0 measures
        return {
            **{f"eval/{k}": self.last_eval[k] for k in ("accuracy", "margin", "loss")},
            "eval/n_pairs": self.last_eval["n"],
            "eval/samples": self.last_eval["samples"],
        }

    def build_trl_trainer(self):
        """trl.RewardTrainer configured for this machine (bf16 and gradient checkpointing off on CPU), with
        LoRA on the attention projections and the score head trained in full (``modules_to_save``)."""
        from datasets import Dataset
        from peft import LoraConfig
        from trl import RewardConfig as TRLConfig
        from trl import RewardTrainer as TRLTrainer

        cfg, policy = self.cfg, self.policy
        args = trl_args(
            TRLConfig,
            cfg,
            policy.device,
            "rlhf-reward-",
            per_device_train_batch_size=self.local_batch,
            num_train_epochs=cfg.epochs,
            max_steps=cfg.steps or -1,
            max_length=cfg.max_length,
            activation_checkpointing=False,  # TRL defaults it on; 2.5× slower here
        )
        peft = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=0.0,
            bias="none",
            task_type="SEQ_CLS",
            target_modules=lora_targets(policy.model),
            modules_to_save=["score"],
        )
        self.say(0.3, "tokenising pairs…")
        quiet_datasets()
        return finish(
            TRLTrainer(
                model=policy.model,
                args=args,
                train_dataset=Dataset.from_list(self.rows),
                processing_class=policy.tokenizer,
                peft_config=peft,
            )
        )
