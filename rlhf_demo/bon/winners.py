"""The data best-of-N distillation trains on: N samples of each training prompt, scored, the winners kept.

For each query x_p (p = 1..P) draw y_p,1 … y_p,N ~ π(· | x_p) and score r_p,i = r(x_p + y_p,i); keep

    best:        i* = argmax_i r_p,i                    (the first on ties; ``decoding.best_of_n.pick_best``)
    above-mean:  { i : r_p,i > (1/N) Σ_j r_p,j }        (none when all N are equal)

The kept (x_p, y_p,i) are the fine-tuning set: their token ids exactly as sampled (no decode and
re-encode), the query masked out of the loss. Fine-tuning on the best answers approximates the
best-of-N policy π_N, whose KL to π is at most log N − (N−1)/N (``decoding.best_of_n.kl_bound``).
This is rejection-sampling fine-tuning (Touvron et al. 2023, Llama 2, §3.2.3) or "best-of-N
distillation" (Gui et al. 2024, BoNBoN; Sessa et al. 2024, BOND).

Sampling is batched (``decoding.sampling.sample_responses``, EOS banned so every answer has
``response_tokens`` tokens) and draws from one seeded ``torch.Generator``: the same seed gives the same
samples. No I/O here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhf_demo.decoding.best_of_n import pick_best
from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses
from rlhf_demo.rewards.functions import score_pairs

CHUNK = 96
"""Rows (query × sample) per ``generate`` call."""


def keep_indices(scores: list[float], keep: str = "best") -> list[int]:
    """Which of one prompt's N samples are trained on (see the module docstring), in draw order."""
    if keep == "best":
        return [pick_best(scores)]
    if keep == "above-mean":
        mean = sum(scores) / len(scores)
        return [i for i, s in enumerate(scores) if s > mean]
    raise ValueError(f"keep must be 'best' or 'above-mean', got {keep!r}")


@dataclass
class Round:
    """One sampling round: every sample as a row (``prompt``: the query's index, ``query``, ``response``,
    ``reward``, ``kept``), the fine-tuning examples (``input_ids``, ``completion_mask``) and the time it took."""

    rows: list[dict]
    examples: list[dict]
    seconds: float

    @property
    def kept(self) -> list[dict]:
        return [r for r in self.rows if r["kept"]]

    def stats(self) -> dict:
        """Mean reward of all samples and of the kept ones, and how many were kept."""
        kept = self.kept
        return {
            "reward_all": sum(r["reward"] for r in self.rows) / len(self.rows),
            "reward_kept": sum(r["reward"] for r in kept) / len(kept) if kept else float("nan"),
            "kept": len(kept),
        }


@torch.no_grad()
def sample_round(
    model,
    tokenizer,
    queries: list[list[int]],
    n: int,
    response_tokens: int,
    reward_fn,
    generator: torch.Generator,
    *,
    keep: str = "best",
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> Round:
    """Draw ``n`` answers of ``response_tokens`` tokens to each query (token ids) from ``model`` with
    ``generator``, score query + answer with ``reward_fn`` and keep the winners (``keep_indices``).
    ``progress(done, total)`` after each chunk of rows (it may raise to stop)."""
    t0 = time.perf_counter()
    flat = [(p, q) for p, q in enumerate(queries) for _ in range(n)]  # the N samples of a query are adjacent
    rows, ids = [], []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(flat), chunk):
            part = flat[start : start + chunk]
            batch = sample_responses(model, tokenizer, [q for _, q in part], response_tokens, generator=generator)
            q_txt, r_txt = decode_queries(tokenizer, batch), decode_responses(tokenizer, batch)
            scores = score_pairs(reward_fn, q_txt, r_txt)
            rows += [
                {"prompt": p, "query": qt, "response": rt, "reward": float(s)} for (p, _), qt, rt, s in zip(part, q_txt, r_txt, scores)
            ]
            ids += batch.response_ids.tolist()  # [chunk, R]: every token real (EOS banned)
            if progress is not None:
                progress(min(start + chunk, len(flat)), len(flat))
    finally:
        model.train(was_training)
    examples = []
    for p, query in enumerate(queries):
        group = range(p * n, (p + 1) * n)
        for i in keep_indices([rows[j]["reward"] for j in group], keep):
            rows[p * n + i]["kept"] = True
            examples.append({"input_ids": list(query) + ids[p * n + i], "completion_mask": [0] * len(query) + [1] * response_tokens})
    for r in rows:
        r.setdefault("kept", False)
    return Round(rows, examples, time.perf_counter() - t0)
