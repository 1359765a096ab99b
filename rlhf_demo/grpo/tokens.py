"""GRPO's per-token store (issue 26): every optimizer step's groups, token by token, kept for the
inspector (``grpo/inspect.py``); ``grpo/capture.py`` fills it from inside TRL's trainer.

For optimizer step k the run folder holds ``RUN/tokens/step-000k.pt`` (the layout of PPO's store,
``ppo/tokens.py``: ``torch.save`` of plain tensors, lists and numbers, written atomically; read back with
``weights_only=True``). Rows are TRL's generation order: completion i = g·G + j is the j-th answer to
prompt g. Per completion i and completion position t, float32 [N, T] unless said:

    token_id   the sampled token (int32 [N, T])                    token   its text (lists, cut at length)
    logp       log π(y_t) as this step's loss computed it (TRL's ``_compute_loss``: no extra forward)
    logp_old   log π_old(y_t), the policy that sampled the batch (TRL's ``old_per_token_logps``; with
               μ = 1 TRL does not compute it: π_old = π, so it is ``logp``)
    logp_ref   log π_ref(y_t), the adapter switched off (TRL's ``ref_per_token_logps``; NaN when β = 0)
    kl         k3 = e^(log π_ref − log π) − (log π_ref − log π) − 1, TRL's ``per_token_kl`` (NaN when β = 0)
    length     completion tokens [N] (int32; positions past it are padding, stored as 0)
    reward     r_i [N], the reward TRL trained on     advantage  A_i [N], as TRL computed it
    mean, std  each group's mean and standard deviation of r [N/G] (:func:`group_stats`)

and ``prompt`` (N/G texts), ``completion`` (N texts, as the reward scored them), ``beta``,
``cliprange``, ``num_generations``, ``num_iterations``, ``scale_rewards``, ``loss_type``,
``use_bias_correction_kl`` (TRL's, on by default: the loss's KL term is β·(π/π_old)·k3, not β·k3) and
``batch_std`` (the std of all N rewards: the divisor when ``scale_rewards`` is "batch").

The advantage (TRL 1.16, ``_generate_and_score_completions``), with 10⁻⁴ keeping a group of equal rewards
finite (its A is 0):

    A_i = (r_i − mean_g) / (std_g + 10⁻⁴)     scale_rewards = "group" (TRL's default)
    A_i = (r_i − mean_g) / (std_all + 10⁻⁴)   "batch"
    A_i =  r_i − mean_g                       "none" (Dr. GRPO)

Size: the quick-cpu preset's 16 completions × 16 tokens are ~10 kB per step.
"""

from __future__ import annotations

import torch

from rlhf_demo.kl.estimators import k3
from rlhf_demo.ppo.tokens import load_update, save_update, step_path, stored_steps

__all__ = ["FLOATS", "group_stats", "load_update", "save_update", "step_path", "step_table", "stored_steps"]

FLOATS = ("logp", "logp_old", "logp_ref", "kl")
"""The float32 [N, T] fields, in the order the inspector lists them (``ratio`` is derived: e^(logp − logp_old))."""
EPS = 1e-4
"""TRL's guard in A = (r − mean) / (std + EPS)."""


def group_stats(rewards: torch.Tensor, num_generations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each group's mean and standard deviation of the rewards [N] (N = groups × G, group-major):

        mean_g = (1/G) Σ_j r_gj,   std_g = sqrt( Σ_j (r_gj − mean_g)² / (G − 1) )

    with Bessel's correction, as TRL's ``nanstd`` (NaN rewards, unscorable completions, are left out)."""
    grouped = rewards.float().view(-1, num_generations)  # [N/G, G]
    mean = torch.nanmean(grouped, dim=1, keepdim=True)  # [N/G, 1]
    count = (~torch.isnan(grouped)).sum(1, keepdim=True)
    var = torch.nanmean((grouped - mean) ** 2, dim=1, keepdim=True) * count / (count - 1).clamp(min=1)
    return mean.squeeze(1), var.sqrt().squeeze(1)


def step_table(
    *,
    token_ids: torch.Tensor,
    tokens: list[list[str]],
    mask: torch.Tensor,
    prompts: list[str],
    completions: list[str],
    rewards: torch.Tensor,
    advantages: torch.Tensor,
    logp: torch.Tensor,
    logp_old: torch.Tensor | None,
    logp_ref: torch.Tensor | None,
    scalars: dict,
) -> dict:
    """One optimizer step's store, float32 on the CPU, zero past each completion's length. ``logp`` is the
    step's [N, T] log π (rows in generation order); ``logp_old`` None = π_old is π (μ = 1); ``logp_ref``
    None = no reference (β = 0). ``scalars`` must hold ``num_generations``. Pure: no I/O."""
    mask = mask.bool().cpu()  # [N, T]
    logp = logp.detach().float().cpu()  # [N, T]
    old = logp if logp_old is None else logp_old.detach().float().cpu()
    nan = torch.full_like(logp, float("nan"))
    ref = nan if logp_ref is None else logp_ref.detach().float().cpu()
    kl = nan if logp_ref is None else k3(logp - ref)  # TRL's per_token_kl, in expm1 form
    G = int(scalars["num_generations"])
    rewards = rewards.detach().float().cpu()  # [N]
    mean, std = group_stats(rewards, G)
    lengths = mask.sum(1).to(torch.int32)  # [N]
    table = {name: x.masked_fill(~mask, 0.0).contiguous() for name, x in zip(FLOATS, (logp, old, ref, kl))}
    return {
        **table,
        "token_id": token_ids.detach().to(torch.int32).cpu(),
        "token": [row[: int(n)] for row, n in zip(tokens, lengths.tolist())],
        "length": lengths,
        "reward": rewards,
        "advantage": advantages.detach().float().cpu().reshape(-1),
        "mean": mean,
        "std": std,
        "batch_std": float(torch.std(rewards[~torch.isnan(rewards)])) if rewards.numel() > 1 else 0.0,
        "prompt": [prompts[i] for i in range(0, len(prompts), G)],
        "completion": list(completions),
        **{k: (float(v) if isinstance(v, float) else v) for k, v in scalars.items()},
    }
