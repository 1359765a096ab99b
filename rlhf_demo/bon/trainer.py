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

import random
import time
from collections.abc import Callable

from rlhf_demo.before_after import before_after
from rlhf_demo.bon import stream
from rlhf_demo.bon.config import BoNConfig
from rlhf_demo.bon.winners import Round, sample_round
from rlhf_demo.data.prompts import LengthSampler, load_prompts, truncate_prompt
from rlhf_demo.decoding.best_of_n import kl_bound
from rlhf_demo.decoding.sampling import make_generator
from rlhf_demo.evaluate import EvalConfig, evaluate_policy
from rlhf_demo.models.loading import load_model
from rlhf_demo.models.lora import TrainablePolicy, lora_config
from rlhf_demo.rewards.functions import make_reward
from rlhf_demo.runs.records import eval_record
from rlhf_demo.training.setup_progress import SetupStopped, eta_line
from rlhf_demo.training.trl_base import TRLRun, finish, quiet_datasets, trl_args
from rlhf_demo.training.trl_callback import KLStop


def training_queries(tokenizer, prompts: list[str], query_tokens: tuple[int, int], seed: int) -> list[list[int]]:
    """Each training prompt cut once to a length drawn from ``query_tokens`` (seeded), as token ids."""
    rng, draw = random.Random(seed), LengthSampler(*query_tokens)
    ids = [truncate_prompt(tokenizer, p, draw(rng)) for p in prompts]
    return [q for q in ids if tokenizer.decode(q).strip()]


class BoNTrainer(TRLRun):
    """``trainer = BoNTrainer(cfg); for record in trainer.train(): ...`` (``prompts`` default: ``cfg.prompts``).

    After the loop: ``status``, ``message``, ``step_no``, ``time_s``, ``last_eval``, ``before_after``,
    ``policy`` (a ``models.lora.TrainablePolicy``), ``round`` (the sampling round, ``winners.Round``)
    and ``restored`` (the step put back by the KL stop)."""

    name, what = "bon-train", "Best-of-N distillation"

    def __init__(
        self,
        cfg: BoNConfig,
        prompts: list[str] | None = None,
        *,
        reward_fn: Callable | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
        bundle=None,
    ):
        """``bundle``: a ``ModelBundle`` to train in place (default: a fresh copy of ``cfg.model``; never
        pass the shared read-only models)."""
        super().__init__(stop, progress)
        self.cfg = cfg.validate()
        prompts = prompts if prompts is not None else load_prompts(cfg.prompts)
        self.reward_fn = reward_fn or make_reward(cfg.reward)
        self.say(0.05, "loading a trainable copy of the policy…")
        bundle = bundle or load_model(cfg.model, device=cfg.device or None)
        self.queries = training_queries(bundle.tokenizer, prompts, cfg.query_tokens, cfg.seed)
        if not self.queries:
            raise ValueError("no usable training prompts")
        self._bundle = bundle
        self.policy = TrainablePolicy(bundle.model, bundle.tokenizer, cfg.model, bundle.device)
        self.round: Round | None = None
        self._shown = False  # whether a record has carried the kept samples
        self._t0 = 0.0
        self.setup_s = 0.0  # sampling, scoring and building TRL's trainer: counted as training time
        self.note = f"{len(self.queries)} prompts × N {cfg.num_samples}"

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

    def kl_watch(self) -> KLStop | None:
        """The KL stop (``kl_stop`` nats per response; 0 = none), evaluated every step from
        ``fine_eval_from`` × it."""
        return KLStop(self.cfg.kl_stop, self.cfg.fine_eval_from) if self.cfg.kl_stop > 0 else None

    def planned_steps(self) -> int:
        return self.cfg.steps

    def run_info(self) -> dict:
        info = {"n_trainable": self.n_trainable, "n_prompts": len(self.queries), "restored": self.restored}
        if self.round is not None:
            info.update(kept=len(self.round.examples), sampling_s=round(self.round.seconds, 1))
        return info

    def evaluate(self) -> dict:
        """Held-out reward and KL, the same evaluation as PPO's, DPO's and GRPO's (reference: adapter off)."""
        self.last_eval = evaluate_policy(self.policy.model, self.policy.tokenizer, self.reward_fn, EvalConfig())
        return eval_record(self.last_eval)

    def after_train(self) -> None:
        if self.status != "diverged" and self.step_no > 0:
            self.before_after = before_after(self.policy, self.reward_fn)

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
        if self._should_stop():
            raise SetupStopped("stopped while sampling")
        line = eta_line(f"sampling {self.cfg.num_samples} answers per prompt", done, total, time.perf_counter() - self._t0)
        self.say(0.1 + 0.8 * done / total, line.replace("batch", "answer"))

    def build_trl_trainer(self):
        """Sample and keep the winners (``winners.sample_round``), then trl.SFTTrainer on them configured for
        this machine (bf16 and gradient checkpointing off on CPU), LoRA on the attention projections."""
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        cfg, bundle = self.cfg, self._bundle
        self._t0 = time.perf_counter()
        gen = make_generator(cfg.seed, bundle.device)
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
