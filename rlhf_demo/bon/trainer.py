"""Best-of-N distillation: fine-tune the policy on the best of N samples of the reference, with
``trl.SFTTrainer``, one metrics record per optimizer step.

1. Sample: each training prompt x_p, cut to a few tokens, is answered N times by the reference π_ref
   (batched ``generate``, one seeded ``torch.Generator``).
2. Score and keep: the run's reward scores every x_p + y_p,i; the best answer of each prompt is kept
   (``keep="above-mean"``: every answer above its prompt's mean) — ``winners.py``.
3. Fine-tune: LoRA on the kept (x_p, y_p*) with the plain likelihood loss on the answer's tokens,

       L = −(1/T) Σ_p Σ_t log π(y*_p,t | x_p, y*_p,<t)        (T: the kept answers' tokens)

   which pulls π towards the best-of-N policy π_N (Gui et al. 2024, "BoNBoN alignment", arXiv
   2406.00832; Touvron et al. 2023, Llama 2's rejection-sampling fine-tuning). π_N's own KL to π_ref
   is at most log N − (N−1)/N (``decoding.best_of_n.kl_bound``), so the method trades reward for KL
   about as well as best-of-N when the imitation is good: no reward model in the loop, no value
   model, no on-policy sampling during training.

The sampling is training time: the clock starts before it (``_make_callback`` moves the TRL clock's
start back by the set-up's seconds), so ``time_s`` and the time budget count it.

What is simplified here:
- One round: the samples come from the reference only (no expert iteration from the current policy).
- Plain-text continuations (no chat template), EOS banned: every answer has ``response_tokens`` tokens,
  and the fine-tuning set holds the sampled token ids as they are (no decode and re-encode).
- LoRA only: the reference is the same model with its adapter switched off (TRL's way with peft).
- A constant learning rate, no gradient accumulation, one process.

Like every trainer it does no I/O: ``train()`` yields records (keys in ``runs/records.py`` and
``bon/stream.py``) and ``runs.folder.write_run`` writes the run folder. The held-out evaluation is
PPO's, DPO's and GRPO's (``evaluate.py``), so its runs land on the same reward–KL axes in the Runs tab.
"""

from __future__ import annotations

import time

from rlhf_demo.bon import stream
from rlhf_demo.bon.algorithm import sampling_line
from rlhf_demo.bon.winners import Round, sample_round
from rlhf_demo.decoding.best_of_n import kl_bound
from rlhf_demo.decoding.sampling import make_generator
from rlhf_demo.models.lora import lora_config
from rlhf_demo.training.setup_progress import SetupStopped
from rlhf_demo.training.trl_base import PromptRun, finish, quiet_datasets, trl_args


class BoNTrainer(PromptRun):
    """``trainer = BoNTrainer(cfg); for record in trainer.train(): ...`` (``prompts`` default: ``cfg.prompts``;
    the set-up is ``training.trl_base.PromptRun``'s).

    After the loop: ``status``, ``message``, ``step_no``, ``time_s``, ``last_eval``, ``before_after``,
    ``policy`` (a ``models.lora.TrainablePolicy``), ``round`` (the sampling round, ``winners.Round``)
    and ``restored`` (the step put back by the KL stop)."""

    name, what = "bon-train", "Best-of-N distillation"

    def prepare(self) -> None:
        """The sampling round's state, filled by ``build_trl_trainer`` in TRL's thread."""
        self.round: Round | None = None
        self._shown = False  # whether a record has carried the kept samples
        self._t0 = 0.0
        self.setup_s = 0.0  # sampling, scoring and building TRL's trainer: counted as training time
        self.note = f"{len(self.queries)} prompts × N {self.cfg.num_samples}"

    def record(self, logs: dict) -> dict:
        """``bon.stream.record``; the first step's record also holds the kept samples (``samples``: what
        the policy imitates, each with its reward)."""
        rec = stream.record(logs)
        if self.round is not None and not self._shown:
            self._shown = True
            rec["samples"] = [{k: r[k] for k in ("query", "response", "reward")} for r in self.round.kept]
        return rec

    def fixed(self) -> dict:
        """The sampling round's figures on every record."""
        return stream.round_record(self.round.stats(), kl_bound(self.cfg.num_samples)) if self.round is not None else {}

    def run_info(self) -> dict:
        info = super().run_info()
        if self.round is not None:
            info.update(kept=len(self.round.examples), sampling_s=round(self.round.seconds, 1))
        return info

    def _make_callback(self, evaluate, out_q, clock):
        """TRL's stream callback, its clock moved back by the set-up's seconds (sampling, scoring, building
        TRL's trainer) once training begins, so they count as training time (in ``time_s`` and the budget)."""
        callback = super()._make_callback(evaluate, out_q, clock)
        begin = callback.on_train_begin

        def on_train_begin(args, state, control, **kw):
            out = begin(args, state, control, **kw)  # the step-0 evaluation, then the clock starts
            clock.start -= self.setup_s
            return out

        callback.on_train_begin = on_train_begin
        return callback

    def _sampling_progress(self, done: int, total: int) -> None:
        """After each sampled batch (``done`` of ``total`` query × sample rows): a Stop ends the set-up,
        else a progress line in prompts whose N answers are drawn ("sampling the best of 16: 24/96 prompts …")."""
        if self._should_stop():
            raise SetupStopped("stopped while sampling")
        n = self.cfg.num_samples
        self.say(0.1 + 0.8 * done / total, sampling_line(n, done // n, total // n, time.perf_counter() - self._t0))

    def build_trl_trainer(self):
        """Sample and keep the winners (``winners.sample_round``), then trl.SFTTrainer on them configured for
        this machine (bf16 and gradient checkpointing off on CPU), LoRA on the attention projections."""
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        cfg, bundle = self.cfg, self._bundle
        self._t0 = time.perf_counter()
        gen = make_generator(cfg.seed, bundle.device)
        self.say(0.1, sampling_line(cfg.num_samples, 0, len(self.queries), 0.0))
        self.round = sample_round(
            bundle.model,
            bundle.tokenizer,
            self.queries,
            cfg.num_samples,
            cfg.response_tokens,
            self.reward_fn,
            gen,
            keep=cfg.keep,
            progress=self._sampling_progress,
        )
        if not self.round.examples:
            raise ValueError("no sample was kept: every prompt's N rewards were equal")
        args = trl_args(
            SFTConfig,
            cfg,
            bundle.device,
            "rlhf-bon-",
            per_device_train_batch_size=cfg.batch_size,
            max_steps=cfg.steps,
            gradient_checkpointing=False,  # TRL defaults it on; slower here
            completion_only_loss=True,  # the loss on the answer's tokens only (completion_mask)
            max_length=None,
        )
        self.say(0.9, f"kept {len(self.round.examples)} of {len(self.round.rows)} samples; building TRL's SFT trainer…")
        quiet_datasets()
        trainer = finish(
            SFTTrainer(
                model=bundle.model,
                args=args,
                train_dataset=Dataset.from_list(self.round.examples),
                processing_class=bundle.tokenizer,
                peft_config=lora_config(bundle.model, cfg.lora_r, cfg.lora_alpha),
            )
        )
        self.setup_s = time.perf_counter() - self._t0
        return trainer
