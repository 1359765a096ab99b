"""TRL's trainers drive their own loop; ours are generators. This runs a TRL trainer in a worker thread
and hands its step records back through a queue, the same way for every TRL-based trainer (DPO, GRPO,
the reward model: ``training/trl_base.py``).

What the two threads share is a :class:`StreamState` (the callback writes it in TRL's thread, the
generator reads it once TRL's thread has ended) and a :class:`StepClock` (evaluation time kept off
the training clock). Closing the generator stops training after the current step.

TRL's set-up (building its trainer: tokenising, DPO's reference log-probabilities) reports its progress
through the run's ``say`` and ends on a Stop within one batch (``training/setup_progress.py``): the run
then ends "stopped" with no step taken.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from rlhf_demo.training import distributed
from rlhf_demo.training.clock import TrainingClock
from rlhf_demo.training.setup_progress import SetupStopped, reporting


@dataclass
class KLSnapshot:
    """The last evaluated policy under the KL stop: its step, its trainable parameters (copies, in
    ``model.parameters()`` order) and its ``eval/…`` record keys."""

    step: int
    params: list[torch.Tensor]
    eval: dict


@dataclass
class StreamState:
    """What TRL's callback leaves for the trainer, written in TRL's thread and read after it ends."""

    status: str | None = None
    """How the run ended when the callback decided it: "stopped" (a Stop request) or "diverged" (a loss
    that is not finite); None: the generator decides ("finished", "stopped" when walked away, "failed")."""
    message: str = ""
    """The run's end in words (a Stop, the time budget, divergence, the KL stop); "" for the default."""
    error: BaseException | None = None
    """What TRL's thread raised, handed to the consumer."""
    last_kl: float | None = None
    """The held-out KL of the last evaluation (nats per response): past ``fine_from`` × the KL stop,
    every step is evaluated."""
    snapshot: KLSnapshot | None = None
    """The KL stop's last policy under it (``training.trl_callback.kl_stop``)."""
    restored: dict | None = None
    """The evaluation of the policy the KL stop put back, with its ``step``; None when it did not."""


class StepClock:
    """Training time of a run whose steps someone else times: wall time since the start minus the
    pauses (evaluations), read into a ``TrainingClock`` for the budget and the marks."""

    def __init__(self, cfg):
        self.schedule = TrainingClock(cfg.max_seconds, cfg.eval_at_seconds, slack=0.0)
        self.start = time.perf_counter()
        self.paused = 0.0

    def begin(self) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def now(self, agree: bool = True) -> float:
        """Training seconds so far; with several processes (``agree``) the slowest's, so every process
        takes the same decisions (time budget, evaluation marks) at the same step."""
        own = time.perf_counter() - self.start - self.paused
        self.schedule.time_s = distributed.max_all(own) if agree else own
        return self.schedule.time_s


def stream_trl(run, make_callback: Callable, *, name: str, what: str) -> Iterator[dict]:
    """Yield the records of the TRL trainer ``run.build_trl_trainer()`` makes (built in the worker,
    seeded with ``run.cfg.seed`` in a forked RNG), with ``make_callback(evaluate, out_q, clock)``
    turning its steps into records. ``run`` is a ``training.trl_base.TRLRun``: this sets its
    ``stream_state``, ``step_no``, ``n_trainable``, ``time_s``, ``status`` and ``message``."""
    cfg = run.cfg
    out_q: queue.Queue = queue.Queue()
    state = run.stream_state = StreamState()
    clock = StepClock(cfg)

    def evaluate() -> dict:
        t0 = time.perf_counter()
        if state.status == "stopped":
            run.say(1.0, f"Stopped after step {run.step_no}: evaluating the stopped policy on held-out prompts…")
        rec = run.evaluate()
        clock.paused += time.perf_counter() - t0
        return rec

    def worker():
        try:
            with torch.random.fork_rng(devices=[]), reporting(run.say, run._should_stop):
                torch.manual_seed(cfg.seed)
                trainer = run.build_trl_trainer()
            run.policy.model = trainer.model  # now the peft-wrapped model TRL trains
            run.n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            trainer.add_callback(make_callback(evaluate, out_q, clock))
            if run._should_stop():  # a Stop that came after the last set-up loop: no step taken
                raise SetupStopped("stopped during set-up")
            run.say(0.0, "Set-up done: training…")
            trainer.train()
            run.step_no = trainer.state.global_step
        except SetupStopped as exc:
            state.status, state.message = "stopped", f"{exc}, before the first step"
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            state.error = exc
        finally:
            out_q.put(None)

    thread = threading.Thread(target=worker, name=name, daemon=True)
    thread.start()
    walked_away = False
    try:
        while (rec := out_q.get()) is not None:
            run.step_no = max(run.step_no, rec["step"])
            yield rec
    except GeneratorExit:
        walked_away = True
        raise
    finally:
        run.stop_event.set()  # a consumer that walks away stops the run after the current step
        thread.join()
        run.time_s = round(clock.now(agree=False), 2)  # no collective here: a process may have failed
        default = "failed" if state.error is not None else "stopped" if walked_away else "finished"
        run.status = state.status or default
        run.message = state.message or (f"stopped after step {run.step_no}" if walked_away else f"completed {run.step_no} steps")
    if state.error is not None:
        exc = state.error
        if isinstance(exc, (ValueError, RuntimeError)):
            raise exc
        raise RuntimeError(f"{what} training failed: {type(exc).__name__}: {exc}") from exc
