"""TRL's RewardTrainer drives the steps; this callback turns them into our records, one per step.

At each step end it applies the run's stops (a Stop request, the time budget); at each step's log it
writes TRL's metrics under TRL's names (``loss``, ``accuracy``, ``margin``, ``mean_reward``, ...) and
measures the held-out pairs when due (every ``eval_every`` steps, at the ``eval_at_seconds`` marks and
at the end, however the run ends). Held-out scoring is kept off the training clock.
"""
from __future__ import annotations

import math
import queue
from typing import Callable

from rlhf_demo.runs.trl_thread import StepClock, stop_at_step_end

TRL_KEYS = ("loss", "grad_norm", "learning_rate", "accuracy", "margin", "mean_reward", "min_reward", "max_reward",
            "num_tokens", "epoch")
"""What TRL 1.16's RewardTrainer logs per step (``compute_loss``), averaged over the step's batch."""

__all__ = ["StepClock", "TRL_KEYS", "make_callback"]


def make_callback(cfg, evaluate: Callable[[], dict], out_q: queue.Queue, should_stop: Callable[[], bool],
                  clock: StepClock, state: dict, on_step: Callable[[int], None] = lambda step: None):
    """The TrainerCallback for one run. ``evaluate()`` returns ``eval/…`` record keys (and pauses the
    clock); records go to ``out_q``; ``state`` carries status/message back; ``on_step(step)`` runs after
    each step's record (the trainer's checkpoint)."""
    from transformers import TrainerCallback

    class RewardStream(TrainerCallback):
        def on_train_begin(self, args, st, control, **kw):
            if cfg.eval_at_start:
                out_q.put({"step": 0, "time_s": 0.0, "epoch": 0.0, **evaluate()})
            clock.begin()

        def on_step_end(self, args, st, control, **kw):
            return stop_at_step_end(cfg, st.global_step, control, should_stop, clock, state)

        def on_log(self, args, st, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:  # Trainer's end-of-training summary
                return control
            rec = {"step": st.global_step, "time_s": round(clock.now(), 3)}
            rec.update({k: logs[k] for k in TRL_KEYS if k in logs})
            loss = logs["loss"]
            if loss is None or not math.isfinite(loss):
                state["status"], state["message"] = "diverged", f"diverged at step {st.global_step} (loss is {loss})"
                control.should_training_stop = True
                out_q.put(rec)
                return control
            due = clock.schedule.eval_due() or (cfg.eval_every > 0 and st.global_step % cfg.eval_every == 0)
            if due or control.should_training_stop:
                rec.update(evaluate())
            out_q.put(rec)
            on_step(st.global_step)
            return control

    return RewardStream()
