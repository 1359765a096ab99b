"""Guesses of the teacher key: throttled per identity and per address, without letting anyone lock the
teacher out.

Two limits, and the reasoning that joins them:

1. **Per identity, strict**: after an identity's n-th wrong key in a row its next guess waits
   ``base_s · 2^(n−1)`` seconds (at most ``max_s``). Nobody else's guesses change this wait.
2. **Per address, a shared budget** of ``wrong_per_address`` wrong keys per ``window_s``, spent by every
   wrong key from that address. It is *checked* only for identities that have used up their own
   ``free_wrong`` wrong keys, and for anonymous clients (no browser identity: every new API session is
   one, so they are free to make and must share the budget from their first guess).

Why: a class shares one address. If the address's count alone decided, 4 students guessing would
lock the teacher out (issue 23). Here the teacher's browser, with fewer than ``free_wrong`` wrong keys of
its own, always has its guess evaluated, whatever the class typed: a right key is never refused because
someone else guessed wrong. What stops a script making a fresh identity per guess is that identities
are not free: a browser identity is created through ``classroom.roster`` (``new_identities_per_address``
per window per address), so one address gets at most that many × ``free_wrong`` guesses per window
beyond its budget, each identity paced by its own throttle. With a teacher key of 16 random characters
that is hopeless for a guesser; a short key is not made safe by any throttle (``docs/api.md``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from rlhf_demo.classroom.rate import Buckets


class KeyGuard:
    def __init__(
        self,
        base_s: float = 2.0,
        max_s: float = 300.0,
        free_wrong: int = 3,
        wrong_per_address: int = 10,
        window_s: float = 600.0,
        max_keys: int = 20_000,
    ):
        self.base_s, self.max_s, self.free_wrong, self.max_keys = base_s, max_s, free_wrong, max_keys
        self.budget = Buckets(burst=wrong_per_address, per_s=wrong_per_address / window_s, max_keys=max_keys)
        self._lock = threading.Lock()
        self._fails: OrderedDict[str, tuple[int, float]] = OrderedDict()  # identity → (wrong keys, refused until)

    def _shares_budget(self, identity: str, anonymous: bool) -> bool:
        return anonymous or self._fails.get(identity, (0, 0.0))[0] >= self.free_wrong

    def wait_s(self, identity: str, address: str, anonymous: bool = False, now: float | None = None) -> float:
        """Seconds before this identity's guess is evaluated (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            n, until = self._fails.get(identity, (0, 0.0))
            own = max(0.0, until - now)
            shares = self._shares_budget(identity, anonymous)
        if own > 0:
            return own
        return self.budget.wait_s(address, now) if shares else 0.0

    def failed(self, identity: str, address: str, now: float | None = None) -> float:
        """Record a wrong key; returns the seconds this identity must now wait."""
        now = time.monotonic() if now is None else now
        self.budget.spend(address, now)
        with self._lock:
            n = self._fails.get(identity, (0, 0.0))[0] + 1
            delay = min(self.max_s, self.base_s * 2 ** (n - 1))
            self._fails[identity] = (n, now + delay)
            self._fails.move_to_end(identity)
            while len(self._fails) > self.max_keys:
                self._fails.popitem(last=False)
            return delay

    def succeeded(self, identity: str) -> None:
        with self._lock:
            self._fails.pop(identity, None)
