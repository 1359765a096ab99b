"""Best-of-N (issue 27): the KL bound against an exact computation, the pick against a hand argmax, and
the Playground's ``best-of-n`` strategy (tiny model: the numbers are meaningless, the bookkeeping is not)."""

from __future__ import annotations

import math
import random

import pytest

from rlhf_demo.decoding.best_of_n import best_of_n, kl_bound, pick_best, rank
from rlhf_demo.decoding.generate import DecodingConfig, DecodingError, generate


def exact_best_of_n_kl(probs: list[float], n: int) -> float:
    """KL(π_N ‖ π) of best-of-N over outcomes listed from the lowest reward to the highest (all rewards
    distinct): the best of N draws is outcome k when all N fall at or below k but not all below it,

        π_N(k) = F(k)^N − F(k − 1)^N,   F(k) = Σ_{j ≤ k} π(j),   KL = Σ_k π_N(k) · log(π_N(k) / π(k))."""
    kl, below = 0.0, 0.0
    for p in probs:
        upto = below + p
        q = upto**n - below**n
        if q > 0:
            kl += q * math.log(q / p)
        below = upto
    return kl


def test_kl_bound_by_hand():
    assert kl_bound(1) == 0.0
    assert kl_bound(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_bound(8) == pytest.approx(2.0794415 - 0.875)  # ≈ 1.20 nats: the "≤ 1.2 nats for N = 8"
    with pytest.raises(ValueError):
        kl_bound(0)


@pytest.mark.parametrize("n", [2, 4, 8, 64])
def test_kl_bound_is_the_limit_of_the_exact_kl(n):
    """Many equally likely outcomes: the exact KL reaches the bound; any distribution stays below it."""
    m = 20_000
    assert exact_best_of_n_kl([1 / m] * m, n) == pytest.approx(kl_bound(n), abs=1e-5)
    rng = random.Random(n)
    for _ in range(20):
        w = [rng.random() ** 3 for _ in range(rng.randint(2, 50))]
        probs = [x / sum(w) for x in w]
        assert exact_best_of_n_kl(probs, n) <= kl_bound(n) + 1e-12


def test_pick_best_takes_the_first_of_ties():
    assert pick_best([0.1, 0.9, 0.9, -1.0]) == 1
    assert pick_best([-2.0]) == 0
    with pytest.raises(ValueError):
        pick_best([])


def e_count(texts):
    """A reward by hand: the number of 'e's (a plain callable, as a test or a py: file would write)."""
    return [float(t.count("e")) for t in texts]


def test_best_of_n_picks_the_hand_argmax(tiny_bundle):
    prompt, cfg = "The movie was", DecodingConfig(max_new_tokens=12, seed=3)
    ranked, bon = best_of_n(tiny_bundle, prompt, 6, e_count, cfg)
    drawn = generate(tiny_bundle, prompt, DecodingConfig(max_new_tokens=12, seed=3, num_samples=6))  # the same draws
    texts = [s.text for s in drawn.sequences]
    scores = [float((drawn.prompt_text + t).count("e")) for t in texts]
    best = max(range(6), key=lambda i: (scores[i], -i))
    assert bon.responses == texts and bon.scores == scores and bon.best == best
    assert ranked.sequences[0].text == texts[best] and ranked.sequences[0].score == max(scores)
    assert [s.score for s in ranked.sequences] == sorted(scores, reverse=True)
    assert sorted(s.text for s in ranked.sequences) == sorted(texts)
    assert bon.bound == kl_bound(6) and f"= {kl_bound(6):.2f} nats" in ranked.notices[0]
    assert ranked.config.strategy == "best-of-n" and ranked.config.num_samples == 6


def test_playground_strategy_scores_with_vader(tiny_bundle):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    cfg = DecodingConfig(strategy="best-of-n", num_samples=4, max_new_tokens=8, seed=5, temperature=1.5, top_k=0)
    res = generate(tiny_bundle, "This movie was great, but", cfg, keep_logits=True)
    vader = SentimentIntensityAnalyzer()
    scores = [vader.polarity_scores(res.prompt_text + s.text)["compound"] for s in res.sequences]
    assert [s.score for s in res.sequences] == scores == sorted(scores, reverse=True)
    assert res.mode == "sample" and len(res.sequences) == 4
    note = res.notices[0]
    assert note.startswith("Best of 4 by vader-positive") and "★" in note and "log 4 − 3/4" in note
    plain = generate(tiny_bundle, "This movie was great, but", DecodingConfig(**{**cfg.__dict__, "strategy": "sample"}), keep_logits=True)
    by_text = {s.text: r for s, r in zip(plain.sequences, plain.raw_logits)}
    for s, r in zip(res.sequences, res.raw_logits):  # each sequence keeps its own logits after the ranking
        assert (by_text[s.text] == r).all()


def test_rank_keeps_draw_order_on_ties(tiny_bundle):
    res = generate(tiny_bundle, "Hello", DecodingConfig(max_new_tokens=3, seed=0, num_samples=3))
    ranked, bon = rank(res, lambda texts: [0.0] * len(texts))
    assert [s.text for s in ranked.sequences] == [s.text for s in res.sequences] and bon.best == 0


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(num_samples=1), "num_samples"),
        (dict(num_samples=4, temperature=0.0), "temperature > 0"),
    ],
)
def test_best_of_n_settings_are_checked(settings, message):
    with pytest.raises(DecodingError, match=message):
        DecodingConfig(strategy="best-of-n", **settings).validate()
