"""The Playground's raw logits between requests: one store for the whole server, under one byte budget.

Re-drawing the bars for a new temperature / top-k / top-p (``explore.reprocess``), the word-bias view
and branching all need a step's full raw logits ``z_t ∈ R^V`` (V = 49 152: 192 KB per step in float32).
Kept in each session's state, one request of 8 samples × 128 tokens held ~200 MB for the state's
lifetime (30 minutes): forty such requests filled a 16 GB Space. Here every session's logits live in
ONE least-recently-used store (:class:`LogitStore`) whose total never exceeds its budget
(``RLHF_DEMO_LOGITS_MB``, default 300 MB); the session keeps only a key. A sequence evicted meanwhile
is recomputed on demand by one teacher-forced forward pass over prompt + tokens
(:func:`recompute_logits`): the logits that predicted each token, the same numbers the generation saw
up to float rounding (a full forward instead of the KV cache: ~1e-5).

A service that keeps state for many users, so it owns its memory (STYLE §15): what it keeps has a
budget, and the oldest goes first.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import torch

from rlhf_demo.decoding.generate import GenerationResult

BUDGET_ENV = "RLHF_DEMO_LOGITS_MB"
DEFAULT_BUDGET_MB = 300


def budget_bytes_from_env() -> int:
    """The store's budget: ``RLHF_DEMO_LOGITS_MB`` megabytes (default 300; 0 keeps nothing)."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_BUDGET_MB
    except ValueError:
        raise ValueError(f"{BUDGET_ENV} must be a number of megabytes, got {raw!r}") from None
    return max(0, int(mb * 2**20))


@torch.no_grad()
def recompute_logits(bundle, prompt_ids: list[int], token_ids: list[int]) -> np.ndarray:
    """Raw logits ``[T, V]`` that predicted each of ``token_ids`` after ``prompt_ids``: one forward pass
    over ``prompt + tokens[:-1]`` keeping its last T positions (position P−1+t predicts token t)."""
    if not token_ids:
        return np.zeros((0, int(bundle.model.config.vocab_size)), dtype=np.float32)
    ids = torch.tensor([list(prompt_ids) + list(token_ids[:-1])], device=bundle.device)  # [1, P + T − 1]
    logits = bundle.model(ids, logits_to_keep=len(token_ids)).logits[0]  # [T, V]
    return logits.float().cpu().numpy()


class LogitStore:
    """Least-recently-used raw logits of many generations, at most ``budget_bytes`` in all. Thread-safe.

    Entries are per sequence (``(key, i)`` → ``[T, V]`` float32). :meth:`detach` moves a result's logits
    in and returns the result without them (what a session keeps); :meth:`attach` gives a result whose
    ``raw_logits`` reads the store, recomputing an evicted sequence on first use.
    """

    def __init__(self, budget_bytes: int | None = None):
        self.budget_bytes = budget_bytes_from_env() if budget_bytes is None else int(budget_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self.recomputed = 0  # sequences recomputed after eviction (for tests and benchmarks)

    @property
    def nbytes(self) -> int:
        """Bytes kept now (never above ``budget_bytes``)."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def put(self, key: str, index: int, logits: np.ndarray) -> None:
        """Keep a private copy of one sequence's logits (a view would keep a whole batch's tensor alive),
        evicting the least recently used until it fits; one larger than the budget is not kept."""
        if logits.nbytes > self.budget_bytes:
            return
        arr = np.array(logits, dtype=np.float32, copy=True)
        with self._lock:
            old = self._entries.pop((key, index), None)
            self._bytes -= 0 if old is None else old.nbytes
            while self._entries and self._bytes + arr.nbytes > self.budget_bytes:
                _, gone = self._entries.popitem(last=False)
                self._bytes -= gone.nbytes
            self._entries[(key, index)] = arr
            self._bytes += arr.nbytes

    def get(self, key: str, index: int) -> np.ndarray | None:
        with self._lock:
            arr = self._entries.get((key, index))
            if arr is not None:
                self._entries.move_to_end((key, index))
            return arr

    def drop(self, key: str) -> None:
        """Let go of every sequence of one generation (e.g. when its session ends)."""
        with self._lock:
            for k in [k for k in self._entries if k[0] == key]:
                self._bytes -= self._entries.pop(k).nbytes

    def detach(self, result: GenerationResult) -> GenerationResult:
        """``result`` without its raw logits, which go into the store under a new key (``logits_key``)."""
        if result.raw_logits is None:
            return result
        key = uuid.uuid4().hex
        for i, arr in enumerate(result.raw_logits):
            self.put(key, i, arr)
        return replace(result, raw_logits=None, logits_key=key)

    def sequence(self, bundle, result: GenerationResult, index: int) -> np.ndarray:
        """Raw logits ``[T, V]`` of sequence ``index``: from the store, else recomputed and kept again."""
        if result.raw_logits is not None:
            return result.raw_logits[index]
        key = result.logits_key or uuid.uuid4().hex
        arr = self.get(key, index) if result.logits_key else None
        if arr is None:
            seq = result.sequences[index]
            arr = recompute_logits(bundle, result.prompt_ids, seq.token_ids)
            with self._lock:
                self.recomputed += 1
            if result.logits_key:
                self.put(key, index, arr)
        return arr

    def attach(self, bundle, result: GenerationResult) -> GenerationResult:
        """``result`` whose ``raw_logits[i]`` reads sequence i from the store (or recomputes it) when
        indexed; for one request's explore calls, never to be kept in a session."""
        if result.raw_logits is not None:
            return result
        return replace(result, raw_logits=_Lazy(self, bundle, result))


class _Lazy:
    """A read-only list of per-sequence logits that fetches each from a :class:`LogitStore` on use."""

    def __init__(self, store: LogitStore, bundle, result: GenerationResult):
        self._store, self._bundle, self._result, self._got = store, bundle, result, {}

    def __len__(self) -> int:
        return len(self._result.sequences)

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index not in self._got:
            self._got[index] = self._store.sequence(self._bundle, self._result, index)
        return self._got[index]


_SHARED: LogitStore | None = None
_SHARED_LOCK = threading.Lock()


def shared_store() -> LogitStore:
    """The server's one store (made on first use with the budget from the environment): every
    Playground of this process keeps its logits here, so the budget bounds the sum over all sessions."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LogitStore()
        return _SHARED
