"""Batched generation across users: requests that wait for the model together run as ONE ``generate()``.

Thirty students pressing Generate at once were answered one after another (p50 26 s, p95 42 s on
2 cores; one alone 1.6 s). One decoding step over 30 rows costs a few times one step over one row (the
weights are read once per step for all rows), so :class:`Batcher` runs the requests that wait
together as one batch:

* **Grouping.** Requests whose settings agree (:func:`batch_key`: same model, same mode, same
  processor settings; prompts, seeds and numbers of samples may differ) share one
  :func:`~rlhf_demo.decoding.generate.run_rows` call. Other settings form their own groups; beam
  search always runs alone. A group holds at most ``max_rows`` rows and ``max_cells`` rows × new
  tokens (the raw and processed logits kept are [rows, T, V] each).
* **No waiting for a batch to fill.** A request that finds the model idle runs at once (one student
  alone pays nothing); requests that arrive while a batch runs are grouped into the next one, oldest
  group first. A batch that has only just begun (at most a quarter of its tokens made) gives way when
  a compatible request queues behind it, as long as its oldest request arrived less than
  ``gather_s`` ago: it stops and reruns with them. Thirty students pressing "together" arrive over a
  second or more; a batch that gave way only once (to as many rows as it ran) split them into waves,
  one batch of a few rows and a second with the rest (p95 ≈ two generations); now they end up in one
  batch, and nobody waits more than ``gather_s`` plus a generation. The thread whose request arrived
  runs the batch; the others sleep until it is done.
* **Same seed, same text.** Each request draws from its own ``torch.Generator`` seeded with its seed,
  its rows are left-padded and processed without their padding (``sampling.generate_rows``), and each
  row keeps the processed scores its token was drawn from: a request batched with others gets the
  tokens it gets alone, and the probabilities shown agree to float rounding (the forward pass over a
  padded batch rounds a little differently).
* **One bad request fails only itself.** If a batch raises, its requests run again one by one.
* **One model computation at a time in the server.** A batch holds ``shared_work.MODEL_LOCK``, which
  the KL and Theory tabs' batches hold too: each gets both cores instead of thrashing them together.
  A long batch passes its turn between two steps (``ModelLock.pass_turn``) once it has held the lock
  ``turn_s``: a Generate at the caps no longer holds up the class's other clicks for its whole length.

Post-processing (per-step numbers, top candidates) runs in each request's own thread, after the batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from rlhf_demo.decoding.generate import DecodingConfig, GenerationResult, Prompt, generate_from_ids, prepare, result_from_rows, run_rows
from rlhf_demo.shared_work import MODEL_LOCK

MAX_BATCH_ROWS = 32
MAX_BATCH_CELLS = 32 * 32
"""Rows × max new tokens of one batch: 1024 cells keep 2 × 1024 × 49 152 float32 logits (≈ 400 MB)."""
GATHER_S = 2.0
"""A batch still gives way to newcomers while its oldest request is younger than this (seconds)."""


def batch_key(cfg: DecodingConfig) -> tuple | None:
    """What requests must share to run in one ``generate()``: everything that builds the processors
    (``None`` for beam search, which runs alone). Prompt, seed, samples and chat template may differ."""
    if cfg.mode == "beam":
        return None
    warpers = (cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p) if cfg.mode == "sample" else ()
    return (
        cfg.mode,
        cfg.max_new_tokens,
        cfg.min_new_tokens,
        cfg.repetition_penalty,
        cfg.no_repeat_ngram_size,
        tuple((cfg.word_bias or {}).items()),
        *warpers,
    )


@dataclass(eq=False)  # compared by identity
class _Job:
    key: tuple
    bundle: Any
    prompt: Prompt
    cfg: DecodingConfig
    done: bool = False
    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # tokens [R, T], raw and processed logits [R, T, V]
    error: Exception | None = None
    seconds: float = 0.0
    batch: int = 1
    queued_at: float = 0.0  # time.monotonic() when it arrived (see Batcher._should_give_way)


class Batcher:
    """Groups concurrent :meth:`generate` calls (one per thread, e.g. one per web request) into batches.

    Thread-safe; holds no model (each call brings its bundle). ``generate`` takes and returns what
    :func:`~rlhf_demo.decoding.generate.generate` does.
    """

    def __init__(
        self,
        max_rows: int = MAX_BATCH_ROWS,
        max_cells: int = MAX_BATCH_CELLS,
        lock: threading.Lock | None = None,
        gather_s: float = GATHER_S,
    ):
        self.max_rows, self.max_cells, self.gather_s = max_rows, max_cells, gather_s
        self.lock = lock or MODEL_LOCK  # held while a batch runs: the KL and Theory tabs' work waits meanwhile (shared_work.py)
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._busy = False  # one batch at a time: it uses every core already

    def generate(self, bundle, prompt: str, cfg: DecodingConfig, top_n: int = 10, keep_logits: bool = False) -> GenerationResult:
        cfg, p = prepare(bundle, prompt, cfg, top_n)
        key = batch_key(cfg)
        if key is None:
            return generate_from_ids(bundle, p.ids, cfg, top_n, keep_logits, p.text, p.notices)
        job = _Job((id(bundle), key), bundle, p, cfg)  # the job holds the bundle: its id stays unique while queued
        self._wait_for(job)
        if job.error is not None:
            raise job.error
        gen, raw, proc = job.rows
        return result_from_rows(bundle, p.ids, cfg, gen, raw, proc, top_n, keep_logits, p.text, p.notices, job.seconds, job.batch)

    def queued(self) -> int:
        """Requests waiting for the model (not counting the batch running now)."""
        with self._cond:
            return len(self._pending)

    def _wait_for(self, job: _Job) -> None:
        """Queue ``job``; whenever the model is free and ``job`` is not done, run the oldest group."""
        with self._cond:
            job.queued_at = time.monotonic()
            self._pending.append(job)
        while True:
            with self._cond:
                while self._busy and not job.done:
                    self._cond.wait()
                if job.done:
                    return
                self._busy = True
                group = self._take()
            gave_way = False
            try:
                with self.lock:
                    gave_way = not self._run(group, may_give_way=True)
            finally:
                with self._cond:
                    if gave_way:  # first in line again, now with the requests it gave way to
                        self._pending[:0] = group
                    for j in group:
                        if not gave_way and j.rows is None and j.error is None:
                            j.error = RuntimeError("the generation was interrupted")
                        j.done = not gave_way
                    self._busy = False
                    self._cond.notify_all()

    def _fits(self, rows: int, max_new_tokens: int) -> bool:
        return rows <= self.max_rows and rows * max_new_tokens <= self.max_cells

    def _take(self) -> list[_Job]:
        """The oldest pending job and every later one with its key, as far as the limits allow."""
        first, group, rows = self._pending[0], [], 0
        for job in self._pending:
            n = job.cfg.num_sequences
            if job.key == first.key and (not group or self._fits(rows + n, job.cfg.max_new_tokens)):
                group.append(job)
                rows += n
        self._pending = [j for j in self._pending if all(j is not g for g in group)]
        return group

    def _should_give_way(self, group: list[_Job], made: int) -> bool:
        """A batch that has made at most a quarter of its tokens stops when a compatible request waits
        behind it and fits in with it, unless its oldest request arrived ``gather_s`` ago or more: run
        together, they all finish sooner (the first requests of a burst would otherwise hold up everyone
        who pressed a moment later), and the age limit bounds what a steady stream of newcomers costs."""
        cfg, key = group[0].cfg, group[0].key
        if made > cfg.max_new_tokens // 4 or time.monotonic() - min(j.queued_at for j in group) >= self.gather_s:
            return False
        rows = sum(j.cfg.num_sequences for j in group)
        with self._cond:
            waiting = [j.cfg.num_sequences for j in self._pending if j.key == key]
        return bool(waiting) and self._fits(rows + waiting[0], cfg.max_new_tokens)

    def _run(self, group: list[_Job], may_give_way: bool = False) -> bool:
        """Run ``group`` as one batch; False if it gave way to a bigger one (nothing recorded then)."""
        t0 = time.perf_counter()

        def stop(made: int) -> bool:  # after every step: let a waiting KL/Theory/pair request run, then maybe give way
            if hasattr(self.lock, "pass_turn"):
                self.lock.pass_turn()
            return may_give_way and self._should_give_way(group, made)

        try:
            outs = run_rows(group[0].bundle, [(j.prompt.ids, j.cfg) for j in group], stop=stop)
        except Exception as exc:  # noqa: BLE001 - handed to the caller(s) below
            if len(group) == 1:
                group[0].error = exc
            else:  # find the request that fails: the others still get their answer
                for j in group:
                    self._run([j])
            return True
        if outs is None:
            return False
        seconds = time.perf_counter() - t0
        for j, rows in zip(group, outs):
            j.rows, j.seconds, j.batch = rows, seconds, len(group)
        return True
