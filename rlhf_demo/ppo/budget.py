"""The KL budget: undo an update that took the policy past a KL limit (a trust region around the
reference that a student can watch).

Before each update the trainer keeps a snapshot of what the update may change (the trainable
weights and the optimiser state). The next batch measures the exact KL(π‖π_ref) per response of the
updated policy; if it is past the budget, the snapshot comes back and the update counts as undone:

    KL_batch(π_t) > budget  ⇒  π_t ← π_{t−1} (weights and optimiser state)

The last update of a run (or the one before an evaluation) has no next batch to judge it, so the
trainer samples that batch early (``PPOTrainer.check_budget``): the policy evaluated and saved is one
the budget accepted. Measured before this: the held-out KL of the unjudged policy was within ±0.3 nats
of the KL its next batch showed, and up to 2 nats past the budget.

A restored policy was accepted once already, so it is not judged again on the next (noisy) batch:
it trains. Without that rule, batch noise of ±1 nat can reject the same policy over and over.

Backtracking: after an undone update the next ones take smaller steps, as a trust-region line search
does. ``step_scale`` (the factor on the learning rate) is multiplied by ``lr_factor`` at each undo and
divided by it again (up to 1) each time the budget accepts an update:

    undo:    scale ← scale · lr_factor            accept:  scale ← min(1, scale / lr_factor)

Without it (``lr_factor`` 1) a policy just under the budget can stall there for good: measured, every
full step from it crossed the budget and was undone, 7 times in a row, and the policy never changed again.
"""

from __future__ import annotations

import copy

import torch


class KLBudget:
    def __init__(self, budget: float, lr_factor: float = 1.0):
        self.budget = float(budget)
        self.lr_factor = float(lr_factor)
        self.step_scale = 1.0
        self.rollbacks = 0
        self._snapshot: tuple[list[torch.Tensor], dict] | None = None
        self._just_restored = False

    def crossed(self, batch_kl: float) -> bool:
        """True when this batch shows the (unjudged) policy past the budget and there is a policy to return to."""
        return bool(self.budget) and batch_kl > self.budget and self._snapshot is not None and not self._just_restored

    def keep(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Snapshot the policy before an update (a no-op without a budget). Called after a batch that
        did not cross the budget: unless the policy was just restored, that batch accepted it."""
        if self._snapshot is not None and not self._just_restored:
            self.step_scale = min(1.0, self.step_scale / self.lr_factor)
        self._just_restored = False
        if self.budget:
            self._snapshot = ([p.detach().clone() for p in params], copy.deepcopy(optimizer.state_dict()))

    @torch.no_grad()
    def restore(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Put the snapshot back (weights in place, optimiser state loaded)."""
        weights, opt_state = self._snapshot
        for p, w in zip(params, weights):
            p.copy_(w)
        optimizer.load_state_dict(opt_state)
        self.rollbacks += 1
        self._just_restored = True
        self.step_scale *= self.lr_factor
