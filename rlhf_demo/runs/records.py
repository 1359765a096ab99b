"""The keys of the metrics records every trainer yields (one per step), and what each holds.

A key means the same quantity in every trainer. Three KLs are kept apart by name:

- ``objective/kl``        the batch's k1 estimate, Σ_t (log π − log π_ref) of the sampled tokens,
                          nats per response (TRL's ``objective/kl``; PPO)
- ``objective/kl_exact``  the batch's exact KL, Σ_t Σ_v π_old(v)(log π_old(v) − log π_ref(v)),
                          nats per response (PPO)
- ``eval/kl``             the held-out exact KL of the policy, same formula, on 64 fixed held-out
                          samples (every trainer, at evaluations); ``eval/kl_k1`` its k1 estimate
"""
from __future__ import annotations

KEYS = {
    "step": "update (PPO) or optimizer step (DPO); 0 = the evaluation before training",
    "time_s": "training time in seconds, evaluation excluded",
    "wall_s": "wall-clock seconds since the loop started",
    "learning_rate": "the learning rate of the step",
    "beta": "β of the step (PPO: the KL coefficient; DPO: the implicit reward's temperature)",
    "reward_mean": "batch mean of the reward the policy is trained on (PPO)",
    "reward_std": "batch standard deviation of that reward (PPO)",
    "objective/kl": "batch KL, k1 estimate (see the module docstring)",
    "objective/kl_exact": "batch KL, exact (see the module docstring)",
    "eval/reward_mean": "held-out mean reward (64 samples of 32 held-out prompts)",
    "eval/reward_sem": "its standard error",
    "eval/kl": "held-out exact KL(π‖π_ref), nats per response",
    "eval/kl_k1": "held-out k1 estimate of the same KL",
    "eval/distinct2": "distinct word bigrams / all bigrams of the held-out responses",
    "loss": "the training loss of the step (DPO: TRL's loss)",
    "samples": "the batch as rows (query, response, reward, kl): shown in the UI, written to samples.jsonl",
    "eval/samples": "the held-out samples of an evaluation as rows, written to samples.jsonl",
}

EVAL_KEYS = ("reward_mean", "reward_std", "reward_sem", "kl", "kl_k1", "distinct2", "n")


def eval_record(ev: dict) -> dict:
    """``evaluate.evaluate_policy``'s result as record keys: ``eval/…`` plus its samples."""
    return {**{f"eval/{k}": ev[k] for k in EVAL_KEYS}, "eval/samples": ev["samples"]}
