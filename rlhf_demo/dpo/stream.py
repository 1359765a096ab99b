"""TRL's DPOTrainer drives the steps; this callback turns them into our records, one per step.

At each step end it applies the run's stops (a Stop request, the time budget), evaluates on held-out
prompts when due (every ``eval_every`` steps, at the ``eval_at_seconds`` marks, every step once the
held-out KL nears the stop, and at the end) and applies the KL stop: the last evaluated policy
under ``kl_stop`` is remembered, and once the held-out KL passes it, training stops and that policy
is put back (early stopping; DPO's KL keeps climbing). The evaluation time is kept off the
training clock.
"""
from __future__ import annotations

import math
import queue
from typing import Callable

import torch

from rlhf_demo.runs.trl_thread import StepClock, stop_at_step_end

TRL_KEYS = ("loss", "grad_norm", "learning_rate", "rewards/chosen", "rewards/rejected", "rewards/margins",
            "rewards/accuracies", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected",
            "entropy", "mean_token_accuracy", "num_tokens", "epoch")


def make_callback(cfg, evaluate, out_q: queue.Queue, should_stop: Callable[[], bool], clock: StepClock, state: dict,
                  on_step: Callable[[int], None] = lambda step: None):
    """The TrainerCallback for one run. ``evaluate()`` returns eval record keys (and pauses the clock);
    records go to ``out_q``; ``state`` carries status/message/snapshot back to the trainer; ``on_step(step)``
    runs after each step's record (the trainer's checkpoint)."""
    from transformers import TrainerCallback

    class DPOStream(TrainerCallback):
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
            rec.update({k: logs[k] for k in TRL_KEYS if k in logs})
            rec.update({k: v for k, v in logs.items() if k not in rec and isinstance(v, (int, float))})
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

    return DPOStream()


def kl_stop(limit: float, step: int, rec: dict, model, control, state: dict) -> None:
    """Early stopping on the held-out KL: remember the last policy under ``limit``; once it is passed,
    stop and put that policy back (LoRA: ~1M numbers to copy)."""
    params = [p for p in model.parameters() if p.requires_grad]
    ev = {k: v for k, v in rec.items() if k.startswith("eval/") and k != "eval/samples"}
    if ev["eval/kl"] < limit:
        state["snapshot"] = (step, [p.detach().clone() for p in params], ev)
        return
    msg = f"held-out KL {ev['eval/kl']:.2f} passed the stop at {limit:g} nats at step {step}"
    if "snapshot" in state:
        k, saved, ev_k = state.pop("snapshot")
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)
        msg += (f"; restored the policy of step {k} (held-out reward {ev_k['eval/reward_mean']:+.3f}, "
                f"KL {ev_k['eval/kl']:.2f})")
        state["restored"] = {"step": k, **ev_k}
    state["message"] = msg
    control.should_training_stop = True
