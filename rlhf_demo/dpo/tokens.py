"""DPO's per-step store (issue 26): the per-token log-probabilities of each optimizer step's pairs, as
TRL's loss computed them, kept for the token inspector (``inspect.py``).

For each step k the run folder holds ``RUN/tokens/step-000k.pt`` (the same folder and atomic writes as
PPO's store, ``ppo/tokens.py``; read back with ``weights_only=True``). For the B pairs of the step's
batch (this process's share under data parallelism):

    pair             int32 [B]: each pair's index in ``RUN/pairs.jsonl`` (the training set; -1: not found)
    prompt_ids       list of B id lists: the prompt as TRL scored it
    beta             β of the loss;  ref: "precomputed" (TRL's reference pass before training) or "step"
    chosen, rejected one dict per side:
        ids          list of B id lists: the completion TRL scored (its EOS last; cut to max_length)
        token, text  each id decoded alone, and the completion decoded whole
        logp_policy  float32 [B, T]: log π(y_t | x, y<t) of the policy as the step's loss saw it
                     (before that step's update: the weights of step k − 1)
        logp_ref     float32 [B, T]: log π_ref(y_t | x, y<t) (NaN where TRL's cache gave no per-token values)
        ref_sum      float32 [B]: Σ_t log π_ref as TRL's loss used it (``ref_chosen_logps``)

Positions past a side's length are 0. Σ_t logp_policy of a side is TRL's ``chosen_logps`` for that pair,
so the batch mean of it is the step's logged ``logps/chosen``, and β·(Σ logp_policy − ref_sum) averages
to ``rewards/chosen``. Size: batch 4 × 2 sides × 64 tokens is ~10 kB a step.
"""

from __future__ import annotations

import torch

from rlhf_demo.ppo.tokens import load_update, save_update, step_path, stored_steps

SIDES = ("chosen", "rejected")
__all__ = ["SIDES", "batch_rows", "load_update", "save_update", "step_path", "step_table", "stored_steps"]


def batch_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor, logps: torch.Tensor) -> list[dict]:
    """Each row of TRL's padded batch (``DataCollatorForPreference``: [2B, L], the B chosen rows then the
    B rejected ones) as ``{"key", "prompt_ids", "ids", "values"}``: ``key`` the row's real ids (a
    tuple), ``values`` the per-token numbers of its completion tokens, read from ``logps`` [2B, L − 1]
    (TRL's fused head: position t scores token t + 1). Pure."""
    input_ids, attention_mask, completion_mask = (t.detach().cpu() for t in (input_ids, attention_mask, completion_mask))
    logps = logps.detach().float().cpu()[:, -(input_ids.shape[1] - 1) :]  # [2B, L-1]
    rows = []
    for ids, att, comp, lp in zip(input_ids, attention_mask.bool(), completion_mask.bool(), logps):
        first = int(comp.int().argmax())  # where the completion starts
        rows.append(
            {
                "key": tuple(ids[att].tolist()),
                "prompt_ids": ids[:first].tolist(),
                "ids": ids[comp].tolist(),
                "values": lp[comp[1:]].clone(),  # [T]
            }
        )
    return rows


def _padded(rows: list[torch.Tensor]) -> torch.Tensor:
    """float32 [len(rows), max T], zero past each row's length."""
    out = torch.zeros(len(rows), max((len(r) for r in rows), default=0))
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def step_table(batch: dict, tokenizer, beta: float) -> dict:
    """The stored dict of one step from what ``trl_keep.KeepingDPOTrainer`` kept: ``policy`` (the 2B
    ``batch_rows``), ``ref_values`` (2B per-token reference tensors), ``ref_sum`` [2B] (what TRL's loss
    used), ``pair`` (B indices) and ``ref`` (where the reference came from). Pure but for the
    tokenizer's decoding."""
    B = len(batch["pair"])
    table = {
        "pair": torch.tensor(batch["pair"], dtype=torch.int32),
        "prompt_ids": [r["prompt_ids"] for r in batch["policy"][:B]],
        "beta": float(beta),
        "ref": batch["ref"],
    }
    for s, side in enumerate(SIDES):
        part = slice(s * B, (s + 1) * B)
        ids = [r["ids"] for r in batch["policy"][part]]
        table[side] = {
            "ids": ids,
            "token": [tokenizer.batch_decode([[i] for i in row]) for row in ids],
            "text": tokenizer.batch_decode(ids),
            "logp_policy": _padded([r["values"] for r in batch["policy"][part]]),
            "logp_ref": _padded(batch["ref_values"][part]),
            "ref_sum": batch["ref_sum"][part].detach().float().cpu(),
        }
    return table
