"""Pairs drawn ahead: fresh pairs to label wait in a small pool, so a class that opens the Feedback tab
together is served at once instead of queueing behind one another's generation.

Thirty students pressing "New pair" at the same moment while a training ran waited up to ~20 s
(p95 of the lesson's label actions, ``docs/lesson.md``): their thirty pairs are two batched
``generate`` calls that share the cores with the training. A pair to label is two samples of the base
model for a random training prompt, whoever asks for it, so it can be made before anyone asks:
:class:`PairPool` keeps up to ``size`` of them for one setting (response tokens, temperature), and
refills in a background thread (one ``make(n)`` call of at most ``batch`` pairs at a time, through the
same shared work as a draw, so a refill is one model computation like any other) whenever it falls to
``low`` or below. ``take()`` returns a pooled pair or ``None`` (empty: draw one the usual way). A pair
leaves the pool once: no two people get the same fresh pair from it.

``ahead`` starts the pool with pairs sampled before (``data.pair_bank``: the shipped bank of the same
model's pairs at the same setting): they are handed out first, and refills start only once the pool is
down to ``low``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable


class PairPool:
    """Thread-safe. ``make(n) -> list of n pairs`` (tuples of prompt, response A, response B)."""

    def __init__(self, make: Callable[[int], list], size: int = 32, low: int = 16, batch: int = 16, ahead: Iterable = ()):
        if not 0 <= low < size or batch < 1:
            raise ValueError("PairPool needs 0 ≤ low < size and batch ≥ 1")
        self.make, self.size, self.low, self.batch = make, size, low, batch
        self._pairs: deque = deque(ahead)
        self._mu = threading.Lock()
        self._refilling: threading.Thread | None = None
        self.made = 0
        self.errors = 0

    def __len__(self) -> int:
        with self._mu:
            return len(self._pairs)

    def take(self):
        """A pooled pair (removed from the pool), or None when it is empty; starts a refill when low."""
        with self._mu:
            pair = self._pairs.popleft() if self._pairs else None
        self.refill()
        return pair

    def refill(self, wait: bool = False) -> None:
        """Fill up to ``size`` in a background thread unless one runs or the pool is above ``low``
        (``wait``: block until that refill is done)."""
        with self._mu:
            if self._refilling is None and len(self._pairs) <= self.low:
                self._refilling = threading.Thread(target=self._fill, name="pair-pool", daemon=True)
                self._refilling.start()
            thread = self._refilling
        if wait and thread is not None:
            thread.join()

    def _fill(self) -> None:
        try:
            while True:
                with self._mu:
                    need = min(self.batch, self.size - len(self._pairs))
                if need <= 0:
                    return
                pairs = self.make(need)
                with self._mu:
                    self._pairs.extend(pairs[: self.size - len(self._pairs)])
                    self.made += len(pairs)
        except Exception:  # noqa: BLE001 - a failed refill leaves draws to the usual path; the next take retries
            self.errors += 1
        finally:
            with self._mu:
                self._refilling = None
