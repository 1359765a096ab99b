"""The Playground's raw logits live in one store under one byte budget (``decoding/kept.py``): many big
generations keep at most the budget in all, and a step view of an evicted generation is recomputed
with the same numbers. A memory check by bytes counted, not a timed test; the tiny model."""

from __future__ import annotations

import numpy as np

from rlhf_demo.decoding.explore import bias_frame, branch, reprocess
from rlhf_demo.decoding.generate import DecodingConfig, generate
from rlhf_demo.decoding.kept import LogitStore, recompute_logits

BIG = DecodingConfig(max_new_tokens=24, num_samples=8, seed=0)


def test_many_big_generations_keep_at_most_the_budget(tiny_bundle):
    one = generate(tiny_bundle, "The movie was", BIG, keep_logits=True)
    per_request = sum(a.nbytes for a in one.raw_logits)
    store = LogitStore(budget_bytes=int(2.5 * per_request))  # room for two and a half requests
    kept = []
    for seed in range(6):
        res = generate(tiny_bundle, "The movie was", DecodingConfig(max_new_tokens=24, num_samples=8, seed=seed), keep_logits=True)
        slim = store.detach(res)
        assert slim.raw_logits is None and slim.logits_key
        kept.append(slim)
        assert store.nbytes <= store.budget_bytes
    assert store.nbytes > 2 * per_request  # it does keep what fits (the newest)
    assert len(store) < 6 * 8


def test_a_step_view_of_an_evicted_generation_is_recomputed_with_the_same_numbers(tiny_bundle):
    res = generate(
        tiny_bundle,
        "Once upon a time",
        DecodingConfig(max_new_tokens=10, num_samples=3, seed=4, word_bias={"great": 3.0}),
        keep_logits=True,
    )
    store = LogitStore(budget_bytes=res.raw_logits[0].nbytes)  # one sequence fits: the others are evicted
    slim = store.detach(res)
    assert len(store) == 1
    cfg = DecodingConfig(temperature=1.3, top_k=5, top_p=0.9, max_new_tokens=10, word_bias={"great": 3.0})
    for seq in range(3):
        want_raw, want_p = reprocess(tiny_bundle, res, seq, 6, cfg)
        got_raw, got_p = reprocess(tiny_bundle, store.attach(tiny_bundle, slim), seq, 6, cfg)
        np.testing.assert_allclose(got_raw, want_raw, atol=1e-5)
        np.testing.assert_allclose(got_p, want_p, atol=1e-5)
    assert store.recomputed >= 2
    assert store.nbytes <= store.budget_bytes
    bias = bias_frame(tiny_bundle, store.attach(tiny_bundle, slim), 1, 3, cfg)
    np.testing.assert_allclose(bias["final"], bias_frame(tiny_bundle, res, 1, 3, cfg)["final"], atol=1e-5)
    br = branch(tiny_bundle, store.attach(tiny_bundle, slim), 2, 4, token_id=42)
    assert br.sequences[0].token_ids[:5] == res.sequences[2].token_ids[:4] + [42]


def test_recomputed_logits_match_the_generation(tiny_bundle):
    res = generate(tiny_bundle, "Hi", DecodingConfig(max_new_tokens=8, seed=1), keep_logits=True)
    seq = res.sequences[0]
    np.testing.assert_allclose(recompute_logits(tiny_bundle, res.prompt_ids, seq.token_ids), res.raw_logits[0], atol=1e-4)


def test_nothing_larger_than_the_budget_is_kept_and_drop_lets_go(tiny_bundle):
    res = generate(tiny_bundle, "Hi", DecodingConfig(max_new_tokens=4, num_samples=2, seed=1), keep_logits=True)
    store = LogitStore(budget_bytes=0)
    slim = store.detach(res)
    assert store.nbytes == 0 and len(store) == 0
    np.testing.assert_allclose(store.attach(tiny_bundle, slim).raw_logits[1], res.raw_logits[1], atol=1e-4)
    big = LogitStore(budget_bytes=10**9)
    slim = big.detach(res)
    assert big.nbytes == sum(a.nbytes for a in res.raw_logits)
    big.drop(slim.logits_key)
    assert big.nbytes == 0 and len(big) == 0
