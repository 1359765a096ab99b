"""One base for the trainers that TRL drives (DPO, GRPO, best-of-N, the reward model): what they share once.

A subclass sets ``cfg`` and ``policy`` in its ``__init__`` (after ``super().__init__``) and keeps only
what is its own:

- ``build_trl_trainer()``: TRL's trainer (its config from :func:`trl_args`, then :func:`finish`);
- ``record(logs)``: which of TRL's logged metrics a record keeps (its ``stream.py``);
- ``evaluate()``: the held-out evaluation as ``eval/…`` record keys;
- optionally ``fixed()`` (keys on every record, e.g. β), ``kl_watch()`` (the KL stop),
  ``eval_if_stopped`` and ``after_train()``.

``train()`` runs TRL's loop in a worker thread (``training/trl_thread.py``) with one callback
(``training/trl_callback.py``) and yields one record per optimizer step. After the loop: ``status``,
``message``, ``step_no``, ``time_s``, ``n_trainable``, ``last_eval``, ``before_after`` and
``restored`` (the step the KL stop put back).

:class:`PolicyRun` adds the KL stop of those that move a policy away from its reference (DPO and the
next); :class:`PromptRun` is the set-up of those that answer training prompts themselves and score the
answers with a reward (GRPO, best-of-N distillation): their data, reward, model and held-out parts once.
"""

from __future__ import annotations

import random
import tempfile
import threading
from collections.abc import Callable, Iterator

import torch

from rlhf_demo.before_after import before_after
from rlhf_demo.data.prompts import LengthSampler, load_prompts, truncate_prompt
from rlhf_demo.evaluate import EvalConfig, evaluate_policy
from rlhf_demo.models.loading import load_model
from rlhf_demo.models.lora import TrainablePolicy
from rlhf_demo.rewards.functions import make_reward
from rlhf_demo.runs.records import eval_record
from rlhf_demo.training.trl_callback import KLStop, make_stream_callback
from rlhf_demo.training.trl_thread import StreamState, stream_trl


class TRLRun:
    """The shared part of a TRL-driven trainer: stop handling, progress, the checkpoint hook, the
    worker-thread stream and the state it leaves (:class:`StreamState`)."""

    name = "trl-train"
    """The worker thread's name."""
    what = "TRL"
    """The run's kind in error messages ("DPO training failed: …")."""
    eval_if_stopped = True
    """Evaluate at the end after a Stop request too (every run that ends gets its held-out line); a
    second Stop before that evaluation begins skips it (``skip_eval``)."""

    cfg: object
    policy: object  # a models.lora.TrainablePolicy

    def __init__(self, stop: Callable[[], bool] | None, progress: Callable[[float, str], None] | None) -> None:
        """The state every run starts with (a subclass calls it first, then sets ``cfg`` and ``policy``)."""
        self.say = progress or (lambda f, m: None)
        self.stop_event = threading.Event()
        self._stop = stop or (lambda: False)
        self.status, self.message = "running", ""
        self.step_no, self.time_s, self.n_trainable = 0, 0.0, 0
        self.last_eval: dict | None = None
        self.before_after: list[dict] = []
        self.stream_state = StreamState()  # what TRL's callback left (training/trl_thread.py)
        self.checkpoint: Callable | None = None  # set by runs.folder.write_run: saves the policy now and then
        self.skip_eval = False  # set by a second Stop (training.queue): no held-out evaluation of the stopped policy

    @property
    def restored(self) -> dict | None:
        """The evaluation of the policy the KL stop put back (its step), if it did."""
        return self.stream_state.restored

    # what a subclass gives
    def build_trl_trainer(self):
        raise NotImplementedError

    def record(self, logs: dict) -> dict:
        raise NotImplementedError

    def evaluate(self) -> dict:
        raise NotImplementedError

    def fixed(self) -> dict:
        """Keys on every record (the step-0 one included)."""
        return {}

    def kl_watch(self) -> KLStop | None:
        """The KL stop, if the run has one."""
        return None

    def after_train(self) -> None:
        """After the loop, once TRL's thread has ended."""

    # the shared loop
    def _on_step(self, step: int) -> None:
        """After each optimizer step, in TRL's thread (the weights do not move meanwhile)."""
        self.step_no = step
        if self.checkpoint is not None:
            self.checkpoint(self.policy, step)

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or self._stop()

    def _make_callback(self, evaluate, out_q, clock):
        return make_stream_callback(
            self.cfg,
            evaluate,
            out_q,
            self._should_stop,
            clock,
            self.stream_state,
            self._on_step,
            record=self.record,
            fixed=self.fixed(),
            eval_if_stopped=lambda: self.eval_if_stopped and not self.skip_eval,
            watch=self.kl_watch(),
        )

    def train(self) -> Iterator[dict]:
        """One record per optimizer step (the first, step 0, evaluates the untrained model when
        ``eval_at_start``). Closing the generator stops training after the current step."""
        yield from stream_trl(self, self._make_callback, name=self.name, what=self.what)
        self.after_train()


def training_queries(tokenizer, prompts: list[str], query_tokens: tuple[int, int], seed: int) -> list[list[int]]:
    """Each training prompt cut once to a length drawn from ``query_tokens`` (seeded), as token ids; the
    ones that decode to blank text left out."""
    rng, draw = random.Random(seed), LengthSampler(*query_tokens)
    ids = [truncate_prompt(tokenizer, p, draw(rng)) for p in prompts]
    return [q for q in ids if tokenizer.decode(q).strip()]


class PolicyRun(TRLRun):
    """A run that moves a policy away from its reference (DPO, and the prompt-driven ones): its config has
    ``kl_stop`` and ``fine_eval_from``, and the run stops on the held-out KL."""

    def kl_watch(self) -> KLStop | None:
        """The KL stop (``kl_stop`` nats per response; 0 = none), evaluated every step from
        ``fine_eval_from`` × it."""
        return KLStop(self.cfg.kl_stop, self.cfg.fine_eval_from) if self.cfg.kl_stop > 0 else None


class PromptRun(PolicyRun):
    """A TRL-driven trainer of the policy on training prompts it answers itself, the answers scored by a
    reward (GRPO, best-of-N distillation): ``Class(cfg, prompts=None, *, reward_fn=None, stop=None,
    progress=None, bundle=None)``.

    The set-up once: ``cfg`` validated; ``prompts`` (default: ``cfg.prompts``) cut into ``queries``
    (token ids, or text with ``queries_as_text``); ``reward_fn`` (default: ``cfg.reward``); ``bundle``, a
    ``ModelBundle`` to train in place (default: a fresh copy of ``cfg.model``; never pass the shared
    read-only models) as ``policy``, its reference the same model with the adapter off. Then the
    subclass's own ``prepare()``. The held-out part is PPO's and DPO's (``evaluate.py``), so every run
    lands on the same reward–KL axes."""

    queries_as_text = False
    """``queries`` as decoded text (TRL's GRPO takes prompts as text) instead of token ids."""

    def __init__(
        self,
        cfg,
        prompts: list[str] | None = None,
        *,
        reward_fn: Callable | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
        bundle=None,
    ):
        super().__init__(stop, progress)
        self.cfg = cfg.validate()
        prompts = prompts if prompts is not None else load_prompts(cfg.prompts)
        self.reward_fn = reward_fn or make_reward(cfg.reward)
        self.say(0.05, "loading a trainable copy of the policy…")
        bundle = bundle or load_model(cfg.model, device=cfg.device or None)
        ids = training_queries(bundle.tokenizer, prompts, cfg.query_tokens, cfg.seed)
        if not ids:
            raise ValueError("no usable training prompts")
        self.queries = [bundle.tokenizer.decode(q) for q in ids] if self.queries_as_text else ids
        self._bundle = bundle
        self.policy = TrainablePolicy(bundle.model, bundle.tokenizer, cfg.model, bundle.device)
        self.note = ""  # the data in a few words, after the CLI's first line
        self.prepare()

    def prepare(self) -> None:
        """The subclass's own state, once the shared set-up is done (raise ValueError for unusable data)."""

    def planned_steps(self) -> int:
        return self.cfg.steps

    def run_info(self) -> dict:
        return {"n_trainable": self.n_trainable, "n_prompts": len(self.queries), "restored": self.restored}

    def evaluate(self) -> dict:
        """Held-out reward and KL, the same evaluation as PPO's and DPO's (reference: adapter off)."""
        self.last_eval = evaluate_policy(self.policy.model, self.policy.tokenizer, self.reward_fn, EvalConfig())
        return eval_record(self.last_eval)

    def after_train(self) -> None:
        if self.status != "diverged" and self.step_no > 0 and not self.skip_eval:  # a second Stop skips it too
            self.before_after = before_after(self.policy, self.reward_fn)


def trl_args(config_cls, cfg, device: torch.device, prefix: str, **own):
    """A TRL config (``config_cls``: ``trl.DPOConfig``, ...) with what every run here shares: a constant
    learning rate without warm-up, one record per step (``logging_steps=1``), no saving or reporting
    (we write the run folder), bf16 on a GPU that has it and fp32 on CPU, seeds; ``own``: the
    trainer's own fields."""
    cuda = device.type == "cuda"
    return config_cls(
        output_dir=tempfile.mkdtemp(prefix=prefix),
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        fp16=False,
        use_cpu=not cuda,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        **own,
    )


def quiet_datasets() -> None:
    """No progress bars from ``datasets`` while TRL tokenises."""
    import datasets

    datasets.disable_progress_bars()


def finish(trainer):
    """TRL's trainer without its printer (we report the records ourselves)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer
