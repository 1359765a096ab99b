"""TRL's trainers drive their own loop; ours are generators. This runs a TRL trainer in a worker thread
and hands its step records back through a queue, the same way for every TRL-based trainer (DPO, the
reward model, ...).

The trainer object passed in (ours) provides ``cfg``, ``policy`` (a ``models.lora.TrainablePolicy``),
``evaluate()`` (eval record keys), ``stop_event``, ``_stop()`` (the caller's stop request) and
``_on_step(step)`` (its checkpoint); the stream sets its ``step_no``, ``n_trainable``, ``time_s``,
``status``, ``message`` and ``stream_state`` (what the callback left: e.g. DPO's restored step).
Closing the generator stops training after the current step; the evaluation time is kept off the
training clock (``StepClock``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import torch

from rlhf_demo.training import distributed
from rlhf_demo.training.clock import TrainingClock


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


def stream_trl(owner, build: Callable[[], object], make_callback: Callable, *, name: str, what: str) -> Iterator[dict]:
    """Yield the records of the TRL trainer ``build()`` makes (built in the worker, seeded with
    ``owner.cfg.seed`` in a forked RNG), with ``make_callback(cfg, evaluate, out_q, should_stop, clock,
    state, on_step=...)`` turning its steps into records."""
    cfg = owner.cfg
    out_q: queue.Queue = queue.Queue()
    state: dict = {}
    owner.stream_state = state
    clock = StepClock(cfg)

    def evaluate() -> dict:
        t0 = time.perf_counter()
        rec = owner.evaluate()
        clock.paused += time.perf_counter() - t0
        return rec

    def worker():
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                trainer = build()
            owner.policy.model = trainer.model  # now the peft-wrapped model TRL trains
            owner.n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            trainer.add_callback(
                make_callback(
                    cfg, evaluate, out_q, lambda: owner.stop_event.is_set() or owner._stop(), clock, state, on_step=owner._on_step
                )
            )
            trainer.train()
            owner.step_no = trainer.state.global_step
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            state["error"] = exc
        finally:
            out_q.put(None)

    thread = threading.Thread(target=worker, name=name, daemon=True)
    thread.start()
    walked_away = False
    try:
        while (rec := out_q.get()) is not None:
            owner.step_no = max(owner.step_no, rec["step"])
            yield rec
    except GeneratorExit:
        walked_away = True
        raise
    finally:
        owner.stop_event.set()  # a consumer that walks away stops the run after the current step
        thread.join()
        owner.time_s = round(clock.now(agree=False), 2)  # no collective here: a process may have failed
        default = "failed" if "error" in state else "stopped" if walked_away else "finished"
        owner.status = state.get("status", default)
        owner.message = state.get("message") or (
            f"stopped after step {owner.step_no}" if walked_away else f"completed {owner.step_no} steps"
        )
    if "error" in state:
        exc = state["error"]
        if isinstance(exc, (ValueError, RuntimeError)):
            raise exc
        raise RuntimeError(f"{what} training failed: {type(exc).__name__}: {exc}") from exc
