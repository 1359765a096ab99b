"""PPO's seed streams: every random draw of a run comes from one of these, each derived from
``cfg.seed``, so a seed repeats a run exactly.

    stream            seeded with                              drives
    prompts           seed_for(seed)                           which prompts, their cut, response lengths
    policy init       seed                                     LoRA's initial weights (models.lora)
    value head        seed (torch.manual_seed, forked RNG)     the value head's initial weights
    rollout k         seed_for(seed · ROLLOUT_STREAM + k)      the sampled tokens of update k + 1
    mini-batches k    seed · MINIBATCH_STREAM + k              the shuffles into mini-batches of update k + 1

``k`` is the number of updates done before (0 for the first). ``seed_for`` (``training/distributed.py``)
gives each process of a data-parallel run its own stream (process 0 keeps the seed). The multipliers
are primes spacing the seeds apart: the rollout seeds of two runs with different seeds meet only after
100_003 updates (seed · 100_003 + k = seed' · 100_003 + k' needs |k − k'| ≥ 100_003). The numbers are
the ones every run so far was made with: changing one changes what a seed gives.
"""

from __future__ import annotations

import torch

ROLLOUT_STREAM = 100_003
"""The rollout stream's multiplier: update k + 1 samples its responses from a generator seeded with
``seed · ROLLOUT_STREAM + k`` (then ``distributed.seed_for`` per process)."""

MINIBATCH_STREAM = 7919
"""The mini-batch stream's multiplier: update k + 1 shuffles its batch into mini-batches (each PPO
epoch one ``randperm``) from a generator seeded with ``seed · MINIBATCH_STREAM + k``."""


def rollout_seed(seed: int, updates_done: int) -> int:
    """The seed of the sampling generator of update ``updates_done + 1`` (before ``seed_for``)."""
    return seed * ROLLOUT_STREAM + updates_done


def minibatch_generator(seed: int, updates_done: int) -> torch.Generator:
    """The generator of update ``updates_done + 1``'s mini-batch shuffles (CPU, the same on every process)."""
    return torch.Generator().manual_seed(seed * MINIBATCH_STREAM + updates_done)
