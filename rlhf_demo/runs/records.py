"""The keys of the metrics records every trainer yields (one per step), and what each holds.

Every key a trainer writes is listed once in ``KEYS`` with its meaning (``tests/test_records_keys.py``
runs each trainer and fails on a key that is not). A key means the same quantity in every trainer;
where TRL has a name for it, the key is TRL's. Who writes a key is said at the start of its meaning
when not every trainer does (PPO: ``ppo/``; DPO, GRPO, reward model: TRL's logs through
``training/trl_callback.py`` and each package's ``stream.py``; held-out evaluation: ``evaluate.py``).

Three KLs are kept apart by name:

- ``objective/kl``        the batch's k1 estimate, Σ_t (log π − log π_ref) of the sampled tokens,
                          nats per response (TRL's ``objective/kl``; PPO)
- ``objective/kl_exact``  the batch's exact KL, Σ_t Σ_v π_old(v)(log π_old(v) − log π_ref(v)),
                          nats per response (PPO)
- ``eval/kl``             the held-out exact KL of the policy, same formula, on 64 fixed held-out
                          samples (every policy trainer, at evaluations); ``eval/kl_k1`` its k1 estimate

GRPO's ``kl`` is a fourth, TRL's: the batch mean of the per-token k3 estimate, nats per *token*.
Times are seconds; ``time_s`` is the training clock (``training/clock.py``), evaluations excluded.
"""

from __future__ import annotations

KEYS = {
    # ---------------------------------------------------------------- every trainer
    "step": "update (PPO) or optimizer step (DPO, GRPO, reward model); 0 = the evaluation before training",
    "time_s": "training time in seconds, evaluation excluded (training/clock.py)",
    "learning_rate": "the learning rate of the step (PPO: lr × the KL budget's step scale)",
    "grad_norm": "gradient norm before clipping (PPO: mean over the step's mini-batches; TRL's otherwise)",
    "loss": "the training loss of the step (DPO, GRPO, reward model: TRL's loss)",
    "beta": "β of the step (PPO: the KL coefficient it used; DPO: the implicit reward's temperature; GRPO: "
    "the k3 KL penalty's coefficient)",
    "samples": "the batch as rows (query, response, reward, kl, and gold_reward when set; GRPO: its "
    "completions and rewards): shown in the UI, written to samples.jsonl, not to metrics.jsonl. PPO's rows "
    "also hold components: each reward component's score, name → score (a builder spec's terms, unweighted; "
    "a single reward: its own score)",
    # ---------------------------------------------------------------- TRL's trainers (DPO, GRPO, reward model)
    "epoch": "TRL: passes over the training data so far (fractional); 0.0 on the step-0 record",
    "num_tokens": "TRL: tokens trained on so far, prompts and responses (DPO, reward model: chosen and rejected)",
    "bon/reward_all": "best-of-N distillation: mean reward of all P × N samples the reference drew (the sampling round; on every record)",
    "bon/reward_kept": "best-of-N distillation: mean reward of the kept samples, what the policy imitates",
    "bon/kept": "best-of-N distillation: number of kept samples (the fine-tuning set)",
    "bon/kl_bound": "best-of-N distillation: log N − (N−1)/N, best-of-N's KL bound, nats per response",
    "entropy": "DPO, GRPO, best-of-N distillation (TRL's): mean per-token entropy of the policy over the step's response tokens (DPO: chosen and rejected), nats",
    # ---------------------------------------------------------------- PPO: the batch (steps 1–4)
    "wall_s": "PPO: wall-clock seconds since the loop started (evaluations included)",
    "episodes": "PPO: episodes (responses) sampled so far, updates × batch_size",
    "reward_mean": "PPO, GRPO: batch mean of the reward the policy is trained on (PPO with rm:RUN_DIR: the proxy)",
    "reward_std": "PPO, GRPO: batch standard deviation of that reward",
    "gold_reward_mean": "PPO: batch mean of the gold reward (PPO's gold_reward, VADER by default) on the same "
    "texts: the score the proxy stands for, never trained on",
    "objective/kl": "PPO: batch KL, k1 estimate (see the module docstring)",
    "objective/kl_exact": "PPO: batch KL, exact (see the module docstring)",
    "objective/scores": "PPO: batch mean score the reward function gave (TRL's name; = reward_mean)",
    "response_length": "PPO: mean response length of the batch in tokens (the response mask's real tokens)",
    "time/generate": "PPO: seconds sampling the batch's responses (step 1)",
    "time/old_policy": "PPO: seconds of the old policy's forward pass (log-probs, values; step 2)",
    "time/score": "PPO: seconds scoring the responses (reward, and gold reward when set; step 3)",
    "time/reference": "PPO: seconds of the reference's forward pass and the exact KL (step 4)",
    # ---------------------------------------------------------------- PPO: the update (steps 5–8)
    "objective/kl_penalised": "PPO: Σ_t of the per-token KL estimate the penalty used (kl_estimator), nats per response",
    "objective/non_score_reward": "PPO: Σ_t −β·kl_t, the KL penalty's share of the return, per response (TRL's name)",
    "objective/rlhf_reward": "PPO: score + non_score_reward, the return PPO maximises, batch mean (TRL's name)",
    "objective/entropy": "PPO: Σ_t −log π_old of the sampled tokens, a per-response entropy estimate (TRL's name)",
    "policy/entropy_avg": "PPO: exact per-token entropy of π_old, −Σ_v π_old(v) log π_old(v), mean over response tokens",
    "policy/approxkl_avg": "PPO: mean over mini-batches of the approximate KL(π_old‖π), mean((r − 1) − log r) per token",
    "policy/clipfrac_avg": "PPO: share of response tokens where the policy's ratio clipping was active",
    "loss/policy_avg": "PPO: clipped surrogate loss, mean over the mini-batch steps",
    "loss/value_avg": "PPO: clipped value loss, mean over the mini-batch steps",
    "val/clipfrac_avg": "PPO: share of response tokens where the value clipping was active",
    "val/ratio": "PPO: mean probability ratio π/π_old over the mini-batch steps' response tokens",
    "val/mean_value": "PPO: mean value-head prediction over the batch's response tokens",
    "val/advantage_std": "PPO: root mean square of the whitened advantages over the response tokens (≈ 1)",
    "time/forward": "PPO: seconds of the PPO epochs' forward passes and losses (step 7)",
    "time/backward": "PPO: seconds of the PPO epochs' backward passes (step 7)",
    "time/optimizer": "PPO: seconds of gradient clipping and Adam steps (step 7)",
    "time/update": "PPO: wall seconds of the whole update, steps 1–8 (the slowest process's)",
    "cpu_per_wall": "PPO: process CPU seconds / wall seconds of the update (≈ the threads at work when the CPU is ours alone)",
    "beta_next": "PPO: β after the adaptive KL controller's update (the next update's beta)",
    "diverged": "PPO: True on the record of an update whose loss or gradient norm was not finite (the run stops)",
    # ---------------------------------------------------------------- PPO: the KL budget (ppo/budget.py)
    "kl_budget/rollback": "PPO: 1 when this update was undone (the batch's exact KL passed kl_budget), else 0",
    "kl_budget/rollbacks": "PPO: updates undone so far",
    "kl_budget/check_kl": "PPO: exact batch KL of the batch sampled early to judge the last update before an "
    "evaluation or the end (check_budget)",
    "kl_budget/undone_at_check": "PPO: 1 when that check undid the last update, else 0",
    # ---------------------------------------------------------------- DPO (TRL's names)
    "rewards/chosen": "DPO: mean implicit reward β·(log π − log π_ref) of the chosen responses",
    "rewards/rejected": "DPO: mean implicit reward of the rejected responses",
    "rewards/margins": "DPO: mean rewards/chosen − rewards/rejected",
    "rewards/accuracies": "DPO: share of pairs whose chosen implicit reward beats the rejected one",
    "logps/chosen": "DPO: mean Σ_t log π of the chosen responses, nats",
    "logps/rejected": "DPO: mean Σ_t log π of the rejected responses, nats",
    "logits/chosen": "DPO: mean over the chosen responses' tokens of the logits' mean over the vocabulary",
    "logits/rejected": "DPO: the same over the rejected responses' tokens",
    "mean_token_accuracy": "DPO, best-of-N distillation (TRL's SFTTrainer): share of the response tokens (DPO: chosen) the policy predicts as its argmax",
    "aux_loss": "DPO, GRPO: a mixture-of-experts model's router loss (TRL logs it only for such models)",
    # ---------------------------------------------------------------- GRPO (TRL's names)
    "reward": "GRPO: batch mean reward of the completions (TRL's name; = reward_mean)",
    "frac_reward_zero_std": "GRPO: share of the groups whose G completions all got the same reward (no signal)",
    "kl": "GRPO: mean per-token k3 KL(π‖π_ref) estimate over the batch, nats per token (only when β > 0)",
    "completions/mean_length": "GRPO: mean completion length in tokens",
    "clip_ratio/region_mean": "GRPO: share of completion tokens where the ratio clipping was active",
    # ---------------------------------------------------------------- reward model (TRL's names)
    "accuracy": "reward model: fraction of the step's pairs with r(chosen) > r(rejected) (TRL's name)",
    "margin": "reward model: mean r(chosen) − r(rejected) over the step's pairs (TRL's name)",
    "mean_reward": "reward model: mean score over the step's chosen and rejected texts (TRL's name)",
    "min_reward": "reward model: lowest score over the step's chosen and rejected texts",
    "max_reward": "reward model: highest score over the step's chosen and rejected texts",
    # ---------------------------------------------------------------- held-out evaluation (evaluate.py)
    "eval/reward_mean": "held-out mean reward (64 samples of 32 held-out prompts)",
    "eval/reward_std": "held-out standard deviation of the reward over those samples",
    "eval/reward_sem": "its standard error",
    "eval/gold_reward_mean": "held-out mean gold reward on the same 64 samples (PPO with a gold_reward)",
    "eval/kl": "held-out exact KL(π‖π_ref), nats per response",
    "eval/kl_k1": "held-out k1 estimate of the same KL",
    "eval/distinct2": "distinct word bigrams / all bigrams of the held-out responses",
    "eval/on_topic": "share of the held-out responses that still name something of a film (evaluate.on_topic: a "
    "keyword check), so drift off topic shows beside distinct-2",
    "eval/n": "number of held-out samples evaluated",
    "eval/samples": "the held-out samples of an evaluation as rows, written to samples.jsonl (reward model: the "
    "held-out pairs with reward_chosen and reward_rejected)",
    # ---------------------------------------------------------------- reward model: held-out pairs
    "eval/accuracy": "reward model: held-out pair accuracy (every heldout_every-th pair, never trained on)",
    "eval/margin": "reward model: held-out mean r(chosen) − r(rejected)",
    "eval/loss": "reward model: held-out Bradley–Terry loss −log σ(r(chosen) − r(rejected))",
    "eval/n_pairs": "reward model: number of held-out pairs",
}

EVAL_KEYS = ("reward_mean", "reward_std", "reward_sem", "kl", "kl_k1", "distinct2", "on_topic", "n")


def unlisted(keys) -> list[str]:
    """The keys of ``keys`` that ``KEYS`` does not list, sorted (a trainer must list what it writes)."""
    return sorted(set(keys) - set(KEYS))


def eval_record(ev: dict) -> dict:
    """``evaluate.evaluate_policy``'s result as record keys: ``eval/…`` (the gold reward's when it was
    measured) plus its samples."""
    gold = {"eval/gold_reward_mean": ev["gold_reward_mean"]} if "gold_reward_mean" in ev else {}
    return {**{f"eval/{k}": ev[k] for k in EVAL_KEYS}, **gold, "eval/samples": ev["samples"]}
