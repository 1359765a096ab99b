"""Rate limits keyed by who asks (an identity, an address): token buckets with bounded memory.

A bucket holds up to ``burst`` tokens and refills at ``per_s`` tokens a second; an action takes one
token, or waits ``(1 − tokens) / per_s`` seconds. At most ``max_keys`` keys are remembered (the least
recently used are forgotten: a forgotten key starts with a full bucket, so forgetting only ever errs
towards letting someone through).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class Buckets:
    def __init__(self, burst: float, per_s: float, max_keys: int = 20_000):
        self.burst, self.per_s, self.max_keys = float(burst), float(per_s), max_keys
        self._lock = threading.Lock()
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._b.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.per_s)

    def wait_s(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may act (0: now); takes nothing."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level = self._level(key, now)
        if level >= 1:
            return 0.0
        return (1 - level) / self.per_s if self.per_s > 0 else float("inf")

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token: 0 when taken, else the seconds to wait (nothing taken)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level = self._level(key, now)
            if level < 1:
                return (1 - level) / self.per_s if self.per_s > 0 else float("inf")
            self._b[key] = (level - 1, now)
            self._b.move_to_end(key)
            while len(self._b) > self.max_keys:
                self._b.popitem(last=False)
            return 0.0

    def spend(self, key: str, now: float | None = None) -> None:
        """Take one token if there is one (a wrong guess uses up budget; none left is no error)."""
        self.take(key, now)
