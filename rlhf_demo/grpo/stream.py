"""TRL's GRPOTrainer drives the steps; this callback turns them into our records, one per step.

Each record holds TRL's own metrics under TRL's names (``reward``, ``reward_std``, ``kl``,
``frac_reward_zero_std``, ``entropy``, ``completions/mean_length``, ``clip_ratio/region_mean``,
``loss``, ...) plus the names every policy trainer shares: ``reward_mean`` / ``reward_std`` (the
batch's mean and std of the reward trained on, as PPO's) and ``samples`` (the step's completions with
their rewards). TRL's ``kl`` is the batch mean of the per-token k3 estimate (nats per *token*, only
when β > 0); ``eval/kl`` is the held-out exact KL per *response*, as in PPO and DPO.

At each step end it applies the run's stops (a Stop request, the time budget); at each log it
evaluates on held-out prompts when due (every ``eval_every`` steps, at the ``eval_at_seconds``
marks, every step once the held-out KL nears ``kl_stop``, and at the end) and applies the KL stop
(``dpo.stream.kl_stop``: the last evaluated policy under it is put back). Evaluation time is kept
off the training clock.
"""
from __future__ import annotations

import math
import queue
from typing import Callable

from rlhf_demo.dpo.stream import kl_stop
from rlhf_demo.runs.trl_thread import StepClock, stop_at_step_end

TRL_KEYS = ("loss", "grad_norm", "learning_rate", "reward", "reward_std", "frac_reward_zero_std", "kl", "entropy",
            "completions/mean_length", "clip_ratio/region_mean", "num_tokens", "epoch")
"""What TRL 1.16's GRPOTrainer logs per step that the panels and the run folder keep."""

__all__ = ["StepClock", "TRL_KEYS", "make_callback"]


def make_callback(cfg, evaluate: Callable[[], dict], out_q: queue.Queue, should_stop: Callable[[], bool],
                  clock: StepClock, state: dict, on_step: Callable[[int], None] = lambda step: None,
                  batch: Callable[[], list[dict]] = lambda: []):
    """The TrainerCallback for one run. ``evaluate()`` returns eval record keys (and pauses the clock);
    ``batch()`` the rows the reward function scored last (the step's completions); records go to
    ``out_q``; ``state`` carries status/message/snapshot back; ``on_step(step)`` runs after each
    step's record (the trainer's checkpoint)."""
    from transformers import TrainerCallback

    class GRPOStream(TrainerCallback):
        def on_train_begin(self, args, st, control, **kw):
            if cfg.eval_at_start:
                out_q.put({"step": 0, "time_s": 0.0, "epoch": 0.0, "beta": cfg.beta, **evaluate()})
            clock.begin()

        def on_step_end(self, args, st, control, **kw):
            return stop_at_step_end(cfg, st.global_step, control, should_stop, clock, state)

        def on_log(self, args, st, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:  # Trainer's end-of-training summary
                return control
            rec = {"step": st.global_step, "time_s": round(clock.now(), 3), "beta": cfg.beta}
            rec.update({k: logs[k] for k in TRL_KEYS if logs.get(k) is not None})
            if logs.get("reward") is not None:   # with num_iterations μ > 1, only the steps that generated
                rec["reward_mean"], rec["reward_std"] = logs["reward"], logs["reward_std"]
            rows = batch()
            if rows:
                rec["samples"] = rows
            loss = logs.get("loss")
            if loss is None or not math.isfinite(loss):
                state["status"], state["message"] = "diverged", f"diverged at step {st.global_step} (loss is {loss})"
                control.should_training_stop = True
                out_q.put(rec)
                return control
            near = state.get("last_kl") is not None and cfg.kl_stop > 0 and state["last_kl"] >= cfg.fine_eval_from * cfg.kl_stop
            due = (cfg.eval_every > 0 and st.global_step % cfg.eval_every == 0) or near
            due = clock.schedule.eval_due() or due
            if (due or control.should_training_stop) and state.get("status") != "stopped":
                rec.update(evaluate())
                state["last_kl"] = rec["eval/kl"]
                if cfg.kl_stop > 0:
                    kl_stop(cfg.kl_stop, st.global_step, rec, kw["model"], control, state)
            out_q.put(rec)
            on_step(st.global_step)
            return control

    return GRPOStream()
