"""TRL 1.16's ``GRPOTrainer`` keeping each optimizer step's groups token by token (issue 26) in the run
folder (``grpo/tokens.py``), from the numbers its own loss used: no extra forward.

Where each number comes from, in TRL's ``grpo_trainer.py``:

- ``_calculate_rewards``: the prompts, the completions' texts and each reward function's score; the reward
  trained on is their weighted sum r_i (TRL's "sum_then_normalize", its default);
- ``_generate_and_score_completions``: the completion ids and mask, the advantages A_i, log π_old
  (``old_per_token_logps``, computed only when μ > 1) and log π_ref (``ref_per_token_logps``, only when β > 0),
  in generation order (group-major). TRL then shuffles the rows before the loss sees them, so each row is
  tagged with its index (``ROW``) and the tag is shuffled with it;
- ``_compute_loss``: log π of this optimizer step, from the one forward with gradient
  (``_get_per_token_logps_and_entropies``), read detached. k3 is then e^(ref − logp) − (ref − logp) − 1, TRL's
  ``per_token_kl`` before its ``use_bias_correction_kl`` (on by default in TRL 1.16) weighs it by π/π_old.

With μ = ``num_iterations`` > 1 the same batch serves μ steps: each step's store has that step's log π
(and so its ratio π/π_old and k3), the batch's rewards and advantages. ``keep_dir`` None (no run folder)
keeps nothing and adds nothing. ``keep_s`` / ``keep_bytes``: the time and bytes the store has cost.
Under data parallelism a process keeps its own rows (only process 0 has a run folder).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from trl import GRPOTrainer as TRLGRPOTrainer

from rlhf_demo.grpo.tokens import save_update, step_table

ROW = "inspector_row"
"""The key of the row tag added to TRL's batch dict (a [N] int64 tensor: each row's generation index)."""


class KeepingGRPOTrainer(TRLGRPOTrainer):
    """``trl.GRPOTrainer(…, keep_dir=RUN)``: the same training, plus ``RUN/tokens/step-000k.pt`` per step."""

    def __init__(self, *args, keep_dir: str | Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_dir = Path(keep_dir) if keep_dir is not None else None
        self.keep_s, self.keep_bytes = 0.0, 0
        self._scored: tuple | None = None  # (prompts, completions, rewards_per_func) of the last scoring
        self._batch: dict | None = None  # the batch being trained on, in generation order
        self._logps: list | None = None  # set while the loss runs: the forward's log π lands here

    def _keeping(self) -> bool:
        return self.keep_dir is not None and self.model.training

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._keeping():
            self._scored = (list(prompts), list(completions), per_func)
        return per_func

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if not self._keeping() or self._scored is None:
            return out
        t0 = time.perf_counter()
        prompts, completions, per_func = self._scored
        self._scored = None
        ids = out["completion_ids"]  # [N, T]
        weights = self.reward_weights.to(per_func.device).unsqueeze(0)
        rewards = (per_func * weights).nansum(dim=1)  # [N], TRL's r before its group normalisation
        rewards[torch.isnan(per_func).all(dim=1)] = float("nan")
        n, rank = ids.shape[0], self.accelerator.process_index
        rewards = rewards[rank * n : (rank + 1) * n]  # TRL gathers every process's rewards: this one's rows
        texts = self.processing_class.batch_decode(ids.reshape(-1, 1).tolist())  # each token alone
        T = ids.shape[1]
        self._batch = {
            "token_ids": ids.detach().cpu(),
            "tokens": [texts[i * T : (i + 1) * T] for i in range(ids.shape[0])],
            "mask": out["completion_mask"].detach().cpu(),
            "prompts": [p if isinstance(p, str) else str(p) for p in prompts],
            "completions": completions,
            "rewards": rewards.detach().cpu(),
            "advantages": out["advantages"].detach().cpu(),
            "logp_old": _cpu(out.get("old_per_token_logps")),
            "logp_ref": _cpu(out.get("ref_per_token_logps")),
            "logp": torch.zeros(ids.shape, dtype=torch.float32),  # filled row by row by each step's loss
        }
        out[ROW] = torch.arange(ids.shape[0], device=ids.device)
        self.keep_s += time.perf_counter() - t0
        return out

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._logps is not None:
            self._logps.append(logps.detach())
        return logps, entropies, aux

    def _compute_loss(self, model, inputs):
        rows = inputs.get(ROW)
        if rows is None or self._batch is None or not self._keeping():
            return super()._compute_loss(model, inputs)
        self._logps = []
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            logps, self._logps = self._logps, None
        t0 = time.perf_counter()
        b = self._batch
        b["logp"][rows.cpu()] = logps[0].float().cpu()  # back to generation order
        table = step_table(
            **{k: b[k] for k in ("token_ids", "tokens", "mask", "prompts", "completions", "rewards", "advantages")},
            logp=b["logp"],
            logp_old=b["logp_old"],
            logp_ref=b["logp_ref"],
            scalars={
                "beta": float(self.beta),
                "cliprange": float(self.epsilon_low),
                "num_generations": int(self.num_generations),
                "num_iterations": int(self.num_iterations),
                "scale_rewards": str(self.scale_rewards),
                "loss_type": str(self.loss_type),
                "use_bias_correction_kl": bool(self.args.use_bias_correction_kl),
            },
        )
        path = save_update(self.keep_dir, self.state.global_step + 1, table)  # steps count from 1
        self.keep_bytes += path.stat().st_size
        self.keep_s += time.perf_counter() - t0
        return loss


def _cpu(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach().float().cpu()
