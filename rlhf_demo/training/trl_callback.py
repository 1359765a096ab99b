"""The callback that turns a TRL trainer's steps into our records, one per step: the same for DPO,
GRPO and the reward model (each names only what its records hold: ``record(logs)``).

- At each step end, the run's stops (:func:`stop_at_step_end`): a Stop request (status "stopped") or
  the time budget (a message only).
- At each step's log, a record: ``step``, ``time_s`` (training time, evaluations kept off it by
  ``StepClock``), the run's ``fixed`` keys (e.g. β) and ``record(logs)``. A loss that is not finite
  ends the run as "diverged".
- Held-out evaluation when due: every ``eval_every`` steps, at the ``eval_at_seconds`` marks, at the
  end (not after a Stop request unless ``eval_if_stopped``); with a :class:`KLStop` also every step
  once the held-out KL passes ``fine_from`` of it, then the KL stop itself (:func:`kl_stop`).
- At step 0 (``cfg.eval_at_start``), a record of the untrained model's evaluation.
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhf_demo.training.trl_thread import KLSnapshot, StepClock, StreamState


@dataclass(frozen=True)
class KLStop:
    """Early stopping on the held-out KL (nats per response): stop once it passes ``limit`` and put back
    the last evaluated policy under it; from ``fine_from`` × ``limit`` on, evaluate every step."""

    limit: float
    fine_from: float

    def near(self, kl: float | None) -> bool:
        """Whether the held-out KL ``kl`` is close enough to the stop to evaluate every step."""
        return kl is not None and kl >= self.fine_from * self.limit


def stop_at_step_end(cfg, step: int, control, should_stop: Callable[[], bool], clock: StepClock, state: StreamState):
    """Read the clock, then stop training after this step on the caller's stop request (status
    "stopped") or when the time budget is spent (a message only)."""
    clock.now()
    if should_stop():
        state.status, state.message = "stopped", f"stopped at step {step}"
        control.should_training_stop = True
    elif clock.schedule.out_of_time():
        state.message = f"time budget of {cfg.max_seconds:.0f} s reached at step {step}"
        control.should_training_stop = True
    return control


def kl_stop(limit: float, step: int, rec: dict, model, control, state: StreamState) -> None:
    """Early stopping on the held-out KL: remember the last policy under ``limit``; once it is passed,
    stop and put that policy back (LoRA: ~1M numbers to copy)."""
    params = [p for p in model.parameters() if p.requires_grad]
    ev = {k: v for k, v in rec.items() if k.startswith("eval/") and k != "eval/samples"}
    if ev["eval/kl"] < limit:
        state.snapshot = KLSnapshot(step, [p.detach().clone() for p in params], ev)
        return
    msg = f"held-out KL {ev['eval/kl']:.2f} passed the stop at {limit:g} nats at step {step}"
    if state.snapshot is not None:
        snap, state.snapshot = state.snapshot, None
        with torch.no_grad():
            for p, v in zip(params, snap.params):
                p.copy_(v)
        msg += (
            f"; restored the policy of step {snap.step} (held-out reward {snap.eval['eval/reward_mean']:+.3f}, "
            f"KL {snap.eval['eval/kl']:.2f})"
        )
        state.restored = {"step": snap.step, **snap.eval}
    state.message = msg
    control.should_training_stop = True


def eval_due(cfg, step: int, clock: StepClock, state: StreamState, watch: KLStop | None) -> bool:
    """Whether this step's record gets a held-out evaluation (the end of training aside)."""
    near = watch is not None and watch.near(state.last_kl)
    return clock.schedule.eval_due() or (cfg.eval_every > 0 and step % cfg.eval_every == 0) or near


def make_stream_callback(
    cfg,
    evaluate: Callable[[], dict],
    out_q: queue.Queue,
    should_stop: Callable[[], bool],
    clock: StepClock,
    state: StreamState,
    on_step: Callable[[int], None],
    *,
    record: Callable[[dict], dict],
    fixed: dict | None = None,
    eval_if_stopped: bool | Callable[[], bool] = False,
    watch: KLStop | None = None,
):
    """The TrainerCallback for one run. ``evaluate()`` returns eval record keys (and pauses the clock);
    ``record(logs)`` the step's keys from TRL's logs; records go to ``out_q``; ``state`` carries
    status, message and the KL stop's snapshot back to the trainer; ``on_step(step)`` runs after each
    step's record (the trainer's checkpoint); ``watch``: the KL stop, if any; ``eval_if_stopped``: a
    bool, or a function asked when the Stop comes (a second Stop may have skipped the evaluation)."""
    from transformers import TrainerCallback

    fixed = dict(fixed or {})

    class Stream(TrainerCallback):
        def on_train_begin(self, args, st, control, **kw):
            if cfg.eval_at_start:
                out_q.put({"step": 0, "time_s": 0.0, "epoch": 0.0, **fixed, **evaluate()})
            clock.begin()

        def on_step_end(self, args, st, control, **kw):
            return stop_at_step_end(cfg, st.global_step, control, should_stop, clock, state)

        def on_log(self, args, st, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:  # Trainer's end-of-training summary
                return control
            step = st.global_step
            rec = {"step": step, "time_s": round(clock.now(), 3), **fixed}
            rec.update({k: v for k, v in record(logs).items() if k not in rec})
            loss = logs.get("loss")
            if loss is None or not math.isfinite(loss):
                state.status, state.message = "diverged", f"diverged at step {step} (loss is {loss})"
                control.should_training_stop = True
                out_q.put(rec)
                return control
            wanted = eval_if_stopped() if callable(eval_if_stopped) else eval_if_stopped
            stopped = state.status == "stopped" and not wanted
            if (eval_due(cfg, step, clock, state, watch) or control.should_training_stop) and not stopped:
                rec.update(evaluate())
                if "eval/kl" in rec:
                    state.last_kl = rec["eval/kl"]
                if watch is not None:
                    kl_stop(watch.limit, step, rec, kw["model"], control, state)
            out_q.put(rec)
            on_step(step)
            return control

    return Stream()
