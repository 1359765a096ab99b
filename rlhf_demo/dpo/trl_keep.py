"""TRL 1.16's ``DPOTrainer`` that keeps, per optimizer step, the per-token log-probabilities its loss
computed (issue 26: DPO's tokens "as of that step"), with no extra forward pass.

TRL's loss (``trl/trainer/dpo_trainer.py``, ``DPOTrainer._compute_loss``) calls the policy as
``model(..., labels=labels, fused_lm_head=True)`` and reads ``outputs.log_probs`` [2B, L − 1] (log π of
each next token, the chosen rows then the rejected ones), sums them over the completion and forgets
them. The reference is either another such call in the same loss (``precompute_ref_log_probs=False``:
the adapter switched off, or the frozen copy) or, by default, one pass over the whole training set
before training (``compute_ref_log_probs``) whose per-token values are summed into the dataset columns
``ref_chosen_logps`` / ``ref_rejected_logps``.

Here a forward hook on the policy (and on the frozen reference) copies ``log_probs`` out of those same
calls: during the precomputed pass, every row's per-token reference values by the row's ids; during a
training step, the policy's (and the reference's, when computed there). ``last_batch`` then holds the
step's rows (``tokens.batch_rows``), the per-token reference, what TRL's loss used as the reference
sums, and which training pairs they are: found by their ids in TRL's tokenised training set, so the
index is the pair's row in ``RUN/pairs.jsonl``. ``dpo/trainer.py`` writes it after the step.

Imports trl: imported only when a DPO run builds its trainer.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from trl import DPOTrainer

from rlhf_demo.dpo.tokens import batch_rows


@contextmanager
def capture_log_probs(modules, seen: list):
    """While active, ``seen`` gets ``outputs.log_probs`` (detached, float32) of every fused-head call of
    ``modules``, in call order."""

    def hook(module, args, kwargs, output):
        lp = getattr(output, "log_probs", None)
        if kwargs.get("fused_lm_head") and lp is not None:
            seen.append(lp.detach().float())

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in {id(m): m for m in modules if m is not None}.values()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


class KeepingDPOTrainer(DPOTrainer):
    """``trl.DPOTrainer`` plus ``last_batch``: the latest training step's per-token log-probabilities
    (``keep=False``: plain TRL)."""

    def __init__(self, *args, keep: bool = True, **kwargs):
        self.keep = keep
        self.last_batch: dict | None = None
        self._ref_values: dict[tuple, torch.Tensor] = {}  # a row's ids → its per-token reference values
        self._pair_index: dict[tuple, int] | None = None
        super().__init__(*args, **kwargs)  # precomputes the reference (compute_ref_log_probs below)

    def compute_ref_log_probs(self, model, inputs):
        """TRL's reference pass over one batch of the training set, its per-token values kept by row."""
        if not self.keep:
            return super().compute_ref_log_probs(model, inputs)
        with capture_log_probs([model], []) as seen:
            out = super().compute_ref_log_probs(model, inputs)
        if seen:
            for row in batch_rows(inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"], seen[0]):
                self._ref_values[row["key"]] = row["values"]
        return out

    def _row(self, ids: list[int]) -> tuple:
        """A sequence as the collator cuts it (``max_length``, ``truncation_mode``)."""
        n = self.args.max_length
        if n is None:
            return tuple(ids)
        return tuple(ids[:n] if self.args.truncation_mode == "keep_start" else ids[-n:])

    def pair_index(self) -> dict[tuple, int]:
        """(chosen row ids, rejected row ids) → the pair's index in the training set (first one wins)."""
        if self._pair_index is None:
            ds, index = self.train_dataset, {}
            for i, (p, c, r) in enumerate(zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"])):
                index.setdefault((self._row(p + c), self._row(p + r)), i)
            self._pair_index = index
        return self._pair_index

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's loss; in training, the step's per-token values go to ``last_batch``."""
        if not (self.keep and self.model.training):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with capture_log_probs([self.accelerator.unwrap_model(model), self.ref_model], []) as seen:
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not seen:  # a forward path without TRL's fused head: nothing to keep this step
            self.last_batch = None
            return out
        rows = [inputs[k] for k in ("input_ids", "attention_mask", "completion_mask")]
        policy = batch_rows(*rows, seen[0])
        B = len(policy) // 2
        if len(seen) > 1:  # the reference ran in this step
            ref_values = [r["values"] for r in batch_rows(*rows, seen[1])]
            ref, ref_sum = "step", torch.stack([v.sum() for v in ref_values])
        else:
            kept = [self._ref_values.get(r["key"]) for r in policy]  # None: a row TRL's pass did not show us
            ref_values = [v if v is not None else torch.full((len(r["ids"]),), float("nan")) for v, r in zip(kept, policy)]
            ref, ref_sum = "precomputed", torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]]).detach().float().cpu()
        index = self.pair_index()
        pair = [index.get((policy[b]["key"], policy[B + b]["key"]), -1) for b in range(B)]
        self.last_batch = {"policy": policy, "ref_values": ref_values, "ref_sum": ref_sum, "pair": pair, "ref": ref}
        return out
