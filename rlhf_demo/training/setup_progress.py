"""Progress of the waits before a TRL trainer's first step, and a Stop that ends them.

TRL does some of its set-up in its trainers' constructors with a progress bar of its own: DPO (and KTO)
precompute the reference model's log-probabilities of every pair (``_precompute_ref_logps``: one
forward pass of the reference per batch, 94 s for the shipped pairs on a 2-core CPU). Those bars go to
a terminal nobody sees. While ``reporting(say, should_stop)`` is active, the ``tqdm`` those modules
imported is replaced by :class:`Progress`, which

- says, at most every ``EVERY_S`` seconds, what it does, batch k of n, the time so far and the ETA
  (``eta_line``: ETA = elapsed / k · (n − k));
- raises :class:`SetupStopped` at the next batch once ``should_stop()`` is true, so a Stop during
  set-up ends the run within one batch.

One set-up at a time holds the patch (a lock); the modules' own ``tqdm`` is put back afterwards.
Reference: ``trl/trainer/dpo_trainer.py`` (TRL 1.16), ``DPOTrainer._precompute_ref_logps``.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

MODULES = ("trl.trainer.dpo_trainer", "trl.trainer.kto_trainer")
"""TRL modules whose module-level ``tqdm`` wraps a set-up loop (each imports accelerate's)."""
EVERY_S = 0.5
_patch_lock = threading.Lock()


class SetupStopped(Exception):
    """A Stop request arrived during set-up (before the first training step)."""


def eta_line(desc: str, done: int, total: int | None, elapsed: float) -> str:
    """ "Computing reference log probs for train dataset: batch 3/10 · 12 s · ETA ≈ 28 s" (ETA from the
    mean time per batch so far; none before the first batch or without a total)."""
    head = f"{desc or 'Setting up'}: batch {done}/{total if total else '?'} · {elapsed:.0f} s"
    if done and total:
        head += f" · ETA ≈ {elapsed / done * (total - done):.0f} s"
    return head


class Progress:
    """A ``tqdm`` stand-in for loops that run before training: iterates ``iterable``, reports through
    ``say(fraction, line)`` and stops on ``should_stop()``."""

    def __init__(self, say: Callable[[float, str], None], should_stop: Callable[[], bool], iterable: Iterable | None = None, *args, **kw):
        self.say, self.should_stop = say, should_stop
        self.iterable = iterable if iterable is not None else (args[0] if args else [])
        self.desc = kw.get("desc", "")
        total = kw.get("total")
        if total is None and hasattr(self.iterable, "__len__"):
            total = len(self.iterable)
        self.total = total

    def __iter__(self) -> Iterator:
        t0 = last = time.perf_counter()
        self.say(0.0, eta_line(self.desc, 0, self.total, 0.0))
        for i, item in enumerate(self.iterable):
            if self.should_stop():
                raise SetupStopped(f"stopped during set-up ({self.desc or 'before the first step'})")
            yield item
            now = time.perf_counter()
            if now - last >= EVERY_S or (self.total and i + 1 == self.total):
                last = now
                self.say((i + 1) / self.total if self.total else 0.0, eta_line(self.desc, i + 1, self.total, now - t0))

    def __len__(self) -> int:
        return self.total or 0

    # what a caller of tqdm may use besides iterating
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc


@contextmanager
def reporting(say: Callable[[float, str], None], should_stop: Callable[[], bool]):
    """While active, TRL's set-up loops (``MODULES``) report through ``say`` and stop on ``should_stop``."""
    with _patch_lock:
        saved = {}
        for name in MODULES:
            try:
                mod = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a TRL without that trainer: nothing to report
                continue
            if hasattr(mod, "tqdm"):
                saved[mod] = mod.tqdm
                mod.tqdm = lambda *a, _s=say, _st=should_stop, **kw: Progress(_s, _st, *a, **kw)
        try:
            yield
        finally:
            for mod, original in saved.items():
                mod.tqdm = original
