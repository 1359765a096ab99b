"""Model work of many users on one server: one computation at a time, identical requests computed once,
compatible ones run as one batch.

Thirty students mixing the tabs used to run up to five model computations at once (Gradio runs two
events of each listener at a time): each used both cores' threads, so the two cores thrashed and
every click took 25–30 s. :class:`SharedWork` serves the KL and Theory tabs (and lends its lock to the
Playground's :class:`~rlhf_demo.decoding.batch.Batcher`, so a batch of generations and a batch of KL
rows never run together):

* **One at a time.** ``lock`` is held while any batch runs: a batch gets both cores' threads.
* **Identical requests, one computation.** A request names a ``key`` (model identities, inputs, seed):
  a second request with the key of one running or waiting shares its result, and a result stays
  ``ttl_s`` seconds in a small cache (``cache_size`` entries) for clicks that come just after
  ("everyone press Compute": thirty clicks, one computation).
* **Compatible requests, one batch.** Requests with the same ``group`` (e.g. same models and prompt)
  that wait together run as one call of their ``run_batch(items) -> results``, at most ``max_items``
  per batch (and items of at most ``max_size`` in all, by ``size(item)``); other groups wait their turn, oldest first. The thread whose request arrived runs the
  batch; the others sleep until it is done. If a batch raises, its requests run again one by one,
  so one bad request fails only itself.

Results are shared between users: callers must not modify them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


class ModelLock:
    """A lock for the model work that serves requests, which a training gives way to.

    Used as ``threading.Lock`` (``with lock:``). While some thread holds it, a *training* forward in
    another thread (``yield_point``, called before each decoder layer of every model that
    ``models.loading.load_model`` loads) waits until it is released: the class's clicks get both cores
    and the training pauses between two layers. A pause lasts at most ``max_pause_s``; after a pause that
    ran out, the training runs ``min_run_s`` without pausing, so under a steady stream of requests it
    still gets ``min_run_s / (max_pause_s + min_run_s)`` of the time: it slows, it never stalls.
    A thread that holds the lock never waits on itself; with no request held the call returns at once.

    A long request gives way too: between two steps of its work the holder calls :meth:`pass_turn`,
    which hands the lock to a request waiting for it once the holder has had it ``turn_s`` (one
    Generate at the caps, 8 × 128 tokens, held it ~50 s while the class's pair draws waited)."""

    def __init__(self, max_pause_s: float = 1.0, min_run_s: float = 0.5, turn_s: float = 2.0):
        self.max_pause_s, self.min_run_s, self.turn_s = max_pause_s, min_run_s, turn_s
        self._lock = threading.Lock()
        self._free = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._since = 0.0  # when the owner took it
        self._waiting = 0  # threads blocked in acquire()
        self._run_until = 0.0
        self.pauses = 0
        self.turns = 0  # turns passed by pass_turn

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._free:
            self._waiting += 1
        try:
            ok = self._lock.acquire(blocking, timeout)
        finally:
            with self._free:
                self._waiting -= 1
        if ok:
            self._owner, self._since = threading.get_ident(), time.monotonic()
            with self._free:
                self._free.notify_all()  # a holder passing its turn waits for this
        return ok

    def pass_turn(self) -> bool:
        """Called by the holder between two steps of a long computation: when another thread waits for
        the lock and the holder has had it ``turn_s`` or more, let that thread run its work, then take
        the lock back (blocks meanwhile). Returns whether it gave way. Not for trainings (they never hold it)."""
        if self._owner != threading.get_ident() or not self._waiting or time.monotonic() - self._since < self.turn_s:
            return False
        self.release()
        with self._free:  # until a waiter took it (or gave up): a plain re-acquire could win again at once
            self._free.wait_for(lambda: self._owner is not None or not self._waiting, timeout=1.0)
        self.turns += 1
        self.acquire()
        return True

    def release(self) -> None:
        self._owner = None
        self._lock.release()
        with self._free:
            self._free.notify_all()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def yield_point(self) -> None:
        """Wait while another thread serves a request (bounded: see the class docstring)."""
        owner = self._owner
        if owner is None or owner == threading.get_ident() or time.monotonic() < self._run_until:
            return
        with self._free:
            self.pauses += 1
            if not self._free.wait_for(lambda: self._owner is None, timeout=self.max_pause_s):
                self._run_until = time.monotonic() + self.min_run_s


MODEL_LOCK = ModelLock()
"""Held by whatever model computation serves a request (KL, Theory, Feedback pairs, the Playground's
batches); trainings give way to it between decoder layers (``ModelLock.yield_point``)."""


def give_way_to_requests(model, lock: ModelLock | None = None) -> int:
    """Make ``model``'s forwards pause between decoder layers while a request holds ``lock`` (default
    MODEL_LOCK): a forward pre-hook on each ``…DecoderLayer`` (a no-op in the thread that holds it and
    whenever nobody does, so interactive work and the command line run as before). Returns the number of
    hooked layers."""
    lock = lock or MODEL_LOCK
    n = 0
    for module in model.modules():
        if type(module).__name__.endswith("DecoderLayer") and not getattr(module, "_gives_way", False):
            module.register_forward_pre_hook(lambda m, args: lock.yield_point())
            module._gives_way = True
            n += 1
    return n


@dataclass(eq=False)
class _Job:
    key: Hashable
    group: Hashable
    item: Any
    run_batch: Callable[[list], list]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class SharedWork:
    """Thread-safe; see the module docstring. ``computed`` counts items actually computed."""

    def __init__(
        self,
        lock=None,
        max_items: int = 16,
        cache_size: int = 64,
        ttl_s: float = 60.0,
        size: Callable[[Any], int] | None = None,
        max_size: int | None = None,
    ):
        self.lock = lock or MODEL_LOCK
        self.max_items, self.cache_size, self.ttl_s = max_items, cache_size, ttl_s
        self.size, self.max_size = size or (lambda item: 1), max_size  # e.g. rows × tokens: a batch's memory
        self._mu = threading.Lock()
        self._pending: list[_Job] = []
        self._by_key: dict[Hashable, _Job] = {}  # waiting or running
        self._cache: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.computed = 0
        self.batches = 0

    def run(self, key: Hashable, group: Hashable, item: Any, run_batch: Callable[[list], list]) -> Any:
        """The result of ``item``: shared with an identical request (same ``key``), else computed in one
        ``run_batch([...])`` with the waiting items of the same ``group``."""
        with self._mu:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] <= self.ttl_s:
                self._cache.move_to_end(key)
                return hit[1]
            job = self._by_key.get(key)
            if job is None:
                job = _Job(key, group, item, run_batch)
                self._by_key[key] = job
                self._pending.append(job)
        while not job.done.is_set():
            with self.lock:  # the model is ours: run the oldest group (maybe another request's)
                if job.done.is_set():  # someone else's batch answered it while we waited for the lock
                    break
                with self._mu:
                    batch = self._take()
                if batch:
                    self._run(batch)
        if job.error is not None:
            raise job.error
        return job.result

    def _take(self) -> list[_Job]:
        if not self._pending:
            return []
        group, batch, used = self._pending[0].group, [], 0
        for j in self._pending:
            n = self.size(j.item)
            if j.group == group and len(batch) < self.max_items and (not batch or self.max_size is None or used + n <= self.max_size):
                batch.append(j)
                used += n
        self._pending = [j for j in self._pending if all(j is not b for b in batch)]
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            results = batch[0].run_batch([j.item for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} requests gave {len(results)} results")
            for j, r in zip(batch, results):
                j.result = r
        except Exception as exc:  # noqa: BLE001 - handed to the caller(s)
            if len(batch) == 1:
                batch[0].error = exc
            else:  # find the request that fails: the others still get their answer
                for j in batch:
                    self._run([j])
                return
        with self._mu:
            self.computed += len(batch)
            self.batches += 1
            now = time.monotonic()
            for j in batch:
                self._by_key.pop(j.key, None)
                if j.error is None:
                    self._cache[j.key] = (now, j.result)
                    self._cache.move_to_end(j.key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        for j in batch:
            j.done.set()
