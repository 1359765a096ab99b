"""The KL coefficient β over a run: fixed, or adapted toward a KL target (lm-human-preferences,
``train_policy.py``). Both expose ``value`` (β now) and ``update(current_kl, n_steps)``."""

from __future__ import annotations


class FixedKLController:
    """β stays put."""

    def __init__(self, beta: float):
        self.value = float(beta)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. (2019), lm-human-preferences ``AdaptiveKLController``:

        error = clip(KL / target − 1, −0.2, 0.2)
        β    ← β · (1 + error · n_steps / horizon)

    ``current_kl`` is the batch's mean KL per response (the trainer passes the exact KL, far less
    noisy than the k1 estimate); ``n_steps`` the episodes in the batch."""

    def __init__(self, beta: float, target: float, horizon: float):
        self.value = float(beta)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value = self.value * (1.0 + error * n_steps / self.horizon)
