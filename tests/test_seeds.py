"""Seeds go through a ``torch.Generator``, never the global RNG: two sessions sampling at the same
moment in two threads each get exactly what they get alone, and a seeded call leaves the global RNG
state as it found it (issue: "Samplers seed the global torch RNG: under concurrent sessions their
streams interleave")."""

from __future__ import annotations

import threading

import torch

from rlhf_demo.decoding.generate import DecodingConfig, generate
from rlhf_demo.decoding.sampling import sample_responses

QUERIES = [[504, 7704, 436], [1, 2, 3, 4, 5, 6, 7]]
SEEDS = (11, 12)
REPEATS = 5
TOKENS = 12


def _at_once(fn, seeds) -> list:
    """``fn(seed)`` for each seed, one thread each, all released together by a barrier."""
    barrier = threading.Barrier(len(seeds))
    results, errors = [None] * len(seeds), []

    def work(i, seed):
        try:
            barrier.wait(timeout=60)
            results[i] = fn(seed)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate(seeds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def _sampled(bundle):
    def run(seed):
        batch = sample_responses(bundle.model, bundle.tokenizer, QUERIES, TOKENS, temperature=1.0, seed=seed)
        return batch.response_ids.tolist()  # [B, R]

    return run


def _played(bundle):
    def run(seed):
        res = generate(bundle, "The movie was", DecodingConfig(top_k=0, num_samples=2, max_new_tokens=TOKENS, seed=seed))
        return [(s.token_ids, [st.prob for st in s.steps]) for s in res.sequences]

    return run


def test_two_threads_sampling_responses_at_once_keep_their_own_streams(tiny_bundle):
    run = _sampled(tiny_bundle)
    alone = [run(s) for s in SEEDS]
    assert alone[0] != alone[1] and run(SEEDS[0]) == alone[0]
    for _ in range(REPEATS):
        assert _at_once(run, SEEDS) == alone


def test_two_threads_in_the_playground_at_once_keep_their_own_streams(tiny_bundle):
    run = _played(tiny_bundle)
    alone = [run(s) for s in SEEDS]
    assert alone[0] != alone[1] and run(SEEDS[0]) == alone[0]
    for _ in range(REPEATS):
        assert _at_once(run, SEEDS) == alone


def test_seeded_sampling_leaves_the_global_rng_alone(tiny_bundle):
    before = torch.get_rng_state()
    _sampled(tiny_bundle)(3)
    _played(tiny_bundle)(3)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_generator_continues_its_stream_and_temperature_zero_draws_nothing(tiny_bundle):
    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    gen = torch.Generator().manual_seed(5)
    first = sample_responses(model, tok, QUERIES, 6, generator=gen).response_ids
    second = sample_responses(model, tok, QUERIES, 6, generator=gen).response_ids
    assert torch.equal(first, sample_responses(model, tok, QUERIES, 6, seed=5).response_ids)  # seed=s ≡ a generator seeded s
    assert not torch.equal(first, second)  # the second call goes on where the first stopped
    state = gen.get_state()
    greedy = sample_responses(model, tok, QUERIES, 6, temperature=0, generator=gen).response_ids
    assert torch.equal(gen.get_state(), state)
    assert torch.equal(greedy, sample_responses(model, tok, QUERIES, 6, temperature=0, seed=99).response_ids)
