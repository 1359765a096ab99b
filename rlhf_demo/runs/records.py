"""The keys of the metrics records every trainer yields (one per step), and what each holds.

A key means the same quantity in every trainer. Three KLs are kept apart by name:

- ``objective/kl``        the batch's k1 estimate, Σ_t (log π − log π_ref) of the sampled tokens,
                          nats per response (TRL's ``objective/kl``; PPO)
- ``objective/kl_exact``  the batch's exact KL, Σ_t Σ_v π_old(v)(log π_old(v) − log π_ref(v)),
                          nats per response (PPO)
- ``eval/kl``             the held-out exact KL of the policy, same formula, on 64 fixed held-out
                          samples (every policy trainer, at evaluations); ``eval/kl_k1`` its k1 estimate
"""

from __future__ import annotations

KEYS = {
    "step": "update (PPO) or optimizer step (DPO, reward model); 0 = the evaluation before training",
    "time_s": "training time in seconds, evaluation excluded",
    "wall_s": "wall-clock seconds since the loop started",
    "learning_rate": "the learning rate of the step",
    "beta": "β of the step (PPO: the KL coefficient; DPO: the implicit reward's temperature)",
    "reward_mean": "batch mean of the reward the policy is trained on (PPO; with rm:RUN_DIR the proxy)",
    "reward_std": "batch standard deviation of that reward (PPO)",
    "gold_reward_mean": "batch mean of the gold reward (PPO's gold_reward, VADER by default) on the same texts: "
    "the score the proxy stands for, never trained on",
    "objective/kl": "batch KL, k1 estimate (see the module docstring)",
    "objective/kl_exact": "batch KL, exact (see the module docstring)",
    "eval/reward_mean": "held-out mean reward (64 samples of 32 held-out prompts)",
    "eval/reward_sem": "its standard error",
    "eval/gold_reward_mean": "held-out mean gold reward on the same 64 samples (PPO with a gold_reward)",
    "eval/kl": "held-out exact KL(π‖π_ref), nats per response",
    "eval/kl_k1": "held-out k1 estimate of the same KL",
    "eval/distinct2": "distinct word bigrams / all bigrams of the held-out responses",
    "eval/on_topic": "share of the held-out responses that still name something of a film (evaluate.on_topic: a "
    "keyword check), so drift off topic shows beside distinct-2",
    "loss": "the training loss of the step (DPO, reward model: TRL's loss)",
    "accuracy": "reward model: fraction of the step's pairs with r(chosen) > r(rejected) (TRL's name)",
    "margin": "reward model: mean r(chosen) − r(rejected) over the step's pairs (TRL's name)",
    "mean_reward": "reward model: mean score over the step's chosen and rejected texts (TRL's; also min_reward, max_reward)",
    "eval/accuracy": "reward model: held-out pair accuracy (every heldout_every-th pair, never trained on)",
    "eval/margin": "reward model: held-out mean r(chosen) − r(rejected)",
    "eval/loss": "reward model: held-out Bradley–Terry loss −log σ(r(chosen) − r(rejected))",
    "eval/n_pairs": "reward model: number of held-out pairs",
    "samples": "the batch as rows (query, response, reward, kl, and gold_reward when set): shown in the UI, written to samples.jsonl",
    "eval/samples": "the held-out samples of an evaluation as rows, written to samples.jsonl (reward model: the "
    "held-out pairs with reward_chosen and reward_rejected)",
}

EVAL_KEYS = ("reward_mean", "reward_std", "reward_sem", "kl", "kl_k1", "distinct2", "on_topic", "n")


def eval_record(ev: dict) -> dict:
    """``evaluate.evaluate_policy``'s result as record keys: ``eval/…`` (the gold reward's when it was
    measured) plus its samples."""
    gold = {"eval/gold_reward_mean": ev["gold_reward_mean"]} if "gold_reward_mean" in ev else {}
    return {**{f"eval/{k}": ev[k] for k in EVAL_KEYS}, **gold, "eval/samples": ev["samples"]}
