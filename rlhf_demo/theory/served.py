"""The Theory tab's candidates served to many users at once (see ``rlhf_demo/shared_work.py``).

Identical requests (same reference, reward, prompt, K, length, temperature and seed) are ONE
computation; requests that differ only in K and seed run as ONE batch
(:func:`~rlhf_demo.theory.candidates.sample_candidates_batch`), at most ``MAX_BATCH_ROWS`` candidates
in all; every computation holds the server's one model lock.
"""

from __future__ import annotations

import pandas as pd

from rlhf_demo.shared_work import SharedWork
from rlhf_demo.theory.candidates import CandidatesConfig, sample_candidates_batch

MAX_BATCH_ROWS = 64
"""Candidates (rows) of one batch: their reference logits are [rows, prompt + tokens, V]."""


class CandidatesService:
    """Thread-safe; one per app (its dedupe cache), all sharing the process's model lock."""

    def __init__(self):
        self.work = SharedWork(size=lambda cfg: cfg.k, max_size=MAX_BATCH_ROWS)

    def sample(self, reference, prompt: str, reward_fn, cfg: CandidatesConfig) -> pd.DataFrame:
        """What :func:`~rlhf_demo.theory.candidates.sample_candidates` returns (shared: do not modify it)."""
        cfg = cfg.validate()
        group = (reference.name, id(reference), cfg.reward, prompt, cfg.response_tokens, float(cfg.temperature))
        return self.work.run(
            (*group, cfg.k, cfg.seed), group, cfg, lambda cfgs: sample_candidates_batch(reference, prompt, reward_fn, cfgs)
        )
