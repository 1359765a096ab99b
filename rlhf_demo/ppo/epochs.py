"""Step 7 of a PPO update: the PPO epochs over one batch of episodes.

For each of ``ppo_epochs`` passes, the batch is shuffled (``generator``) and cut into
``num_mini_batches`` mini-batches; on each, one forward of the current policy gives

    L = L_clip(π/π_old, A) + vf_coef · L_V(V, V_old, returns)           (``loss.py``)

then one backward, gradients averaged over processes, clipped to ``max_grad_norm``, one Adam step.
A non-finite loss or gradient norm stops every process together (``FloatingPointError``).

The last epoch's per-token ratio π/π_old and clip flag are kept as it computed them (each episode is
in exactly one mini-batch of an epoch, so the last epoch covers the batch once; no extra forward):
the inspector's store (``tokens.py``).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from rlhf_demo.ppo.forward import forward_response, pick, subset
from rlhf_demo.ppo.loss import policy_loss, value_loss
from rlhf_demo.training import distributed

STATS = ("pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac", "approxkl", "ratio", "grad_norm")


def ppo_epochs(
    model,
    value_head,
    optimizer,
    params: list[torch.Tensor],
    ro,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    cfg,
    *,
    trunk_layer: int | None,
    generator: torch.Generator,
) -> tuple[dict, dict, dict]:
    """Run the epochs on rollout ``ro`` (mask, advantages, returns: [B, R]); returns (stats: a list per
    ``STATS`` name, one entry per mini-batch step; timings: forward / backward / optimizer seconds;
    last: the last epoch's ``ratio`` [B, R] float32 and ``clipped`` [B, R] bool, per token)."""
    B = ro.batch.input_ids.shape[0]  # this process's episodes
    mb = B // cfg.num_mini_batches
    model.train()
    stats = {k: [] for k in STATS}
    t_fwd = t_bwd = t_opt = 0.0
    last = {"ratio": torch.ones_like(mask, dtype=torch.float32), "clipped": torch.zeros_like(mask, dtype=torch.bool)}  # [B, R]
    for epoch in range(cfg.ppo_epochs):
        order = torch.randperm(B, generator=generator)
        for start in range(0, B, mb):
            idx, m = order[start : start + mb], mask[order[start : start + mb]]
            t0 = time.perf_counter()
            logits, vpred = forward_response(
                model, subset(ro.batch, idx), value_head, trunk_layer=trunk_layer, value_grad_to_policy=cfg.value_grad_to_policy
            )
            new_logprobs = pick(F.log_softmax(logits, dim=-1), ro.batch.response_ids[idx])  # [mb, R]
            pg = policy_loss(new_logprobs, ro.logprobs[idx], advantages[idx], m, cfg.cliprange)
            vf = value_loss(vpred, ro.values[idx], returns[idx], m, cfg.cliprange)
            loss = pg["loss"] + cfg.vf_coef * vf["loss"]
            if epoch == cfg.ppo_epochs - 1:  # as the last epoch computed them
                last["ratio"][idx], last["clipped"][idx] = pg["ratio_per_token"].float(), pg["clipped"]
            t1 = time.perf_counter()
            if not torch.isfinite(distributed.sum_all(loss.detach())):  # every process stops together
                raise FloatingPointError(
                    f"loss is {loss.item()}"
                    + (" (the reward function returned non-finite scores)" if not torch.isfinite(ro.scores).all() else "")
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params)  # g = mean over processes
            t2 = time.perf_counter()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            if not torch.isfinite(grad_norm):
                raise FloatingPointError(f"gradient norm is {grad_norm.item()}")
            optimizer.step()
            t3 = time.perf_counter()
            t_fwd, t_bwd, t_opt = t_fwd + (t1 - t0), t_bwd + (t2 - t1), t_opt + (t3 - t2)
            for k, v in (
                ("pg_loss", pg["loss"]),
                ("vf_loss", vf["loss"]),
                ("pg_clipfrac", pg["clipfrac"]),
                ("vf_clipfrac", vf["clipfrac"]),
                ("approxkl", pg["approx_kl"]),
                ("ratio", pg["ratio"]),
                ("grad_norm", grad_norm),
            ):
                stats[k].append(float(v.detach()) if torch.is_tensor(v) else float(v))
    return stats, {"time/forward": t_fwd, "time/backward": t_bwd, "time/optimizer": t_opt}, last
