"""The Goodhart preset pair's fixed parts: the gold the labeller really wanted, the pairs it labelled, and
the run name that joins the reward-model preset to the PPO preset (``RewardConfig`` / ``PPOConfig``
preset ``goodhart``; ``bench/goodhart.py`` measures it).

The lesson (Gao, Schulman, Hilton 2022, "Scaling Laws for Reward Model Overoptimization",
https://arxiv.org/abs/2210.10760): the labeller wanted a review that is positive *and* on topic *and*
not repetitive, one builder spec (``GOLD``). Best-of-4 vs worst-of-4 samples of the reference, ranked by
that gold, are the preference pairs (``SynthConfig`` defaults with ``reward = GOLD``: what
``python -m rlhf_demo preferences --reward GOLD`` makes). A reward model trained on them is the *proxy*:
it learns what separates the reference's samples (mostly sentiment and film words) and never sees a
collapsed, repetitive response, because the reference rarely writes one. PPO pushed on the proxy with
β = 0 finds what the proxy misses, and the gold (scored on the same texts, never trained on) rises,
peaks and falls; a KL penalty stops the policy near the peak.

The gold scores each component on what it is about (``rewards.functions.score_pairs``): VADER on query
+ response, ``on-topic`` and ``repetition`` on the response, ``fluency`` and ``relevance`` on the response
given its query. What the proxy misses, measured (``bench/goodhart.py``, docs/measurements.md): pushed
with β = 0 the policy collapses onto one on-topic phrase for every opening ("a story to further the
story to further …"; distinct-2 of the held-out answers 0.96 → 0.28): the proxy keeps climbing while
fluency falls 0.9 nats per token from its best and relevance 0.6 (an answer that fits every opening is
no more likely after its own). Without ``relevance`` an earlier proxy's collapse onto a fluent template
went unseen (the gold kept rising).

How the two presets meet: the reward-model preset trains on ``pairs: goodhart`` (``PAIRS``, shipped);
its run must be named ``RM_RUN`` (``train --algo reward --preset goodhart --out runs/goodhart-rm``),
and the PPO preset's reward is ``rm:goodhart-rm``, a run under the runs folder (``runs/names.py``).
"""

from __future__ import annotations

from pathlib import Path

GOLD = "vader-positive + on-topic - 2*repetition + fluency + relevance"
"""What the labeller really wanted: r_gold(x, y) = VADER(x + y) + on_topic(y) − 2 · repetition(y) +
fluency(x, y) + relevance(x, y): fluency is the reference model's mean log-probability per response token
(natural text), relevance how much more likely its own opening makes the response (an answer to *this*
opening, not one template for all: ``rewards/components.RelevanceReward``)."""

PAIRS = Path(__file__).resolve().parents[1] / "assets" / "preferences-goodhart.jsonl"
"""Pairs labelled by ``GOLD`` (``preferences --reward GOLD --seed 0``), shipped; the source ``goodhart``."""

SOURCE = "goodhart"
"""``RewardConfig.preferences`` value that loads ``PAIRS`` (``data.preferences.load_preferences``)."""

PRESET = "goodhart"
"""The name of the preset pair: ``RewardConfig`` and ``PPOConfig`` preset ``goodhart``."""

RM_RUN = "goodhart-rm"
"""The run name of the Goodhart reward model; the PPO preset's reward is ``rm:`` + this name."""
