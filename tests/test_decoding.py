"""Decoding numbers against transformers' own processors, applied independently to the raw logits.

Unit tests use the tiny random Llama (fast); two integration tests use the real default model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rlhf_demo.decoding.explore import bias_frame, branch, candidate_frame, reprocess, sequences_frame, steps_frame
from rlhf_demo.decoding.generate import DecodingConfig, DecodingError, generate, parse_word_bias

GREAT, GREAT_NOSPACE, EOS = 1109, 18680, 2  # " great", "great", "<|im_end|>" in the SmolLM2 tokenizer


def _expected_probs(procs, prefix: list[int], raw: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.asarray(raw, dtype=np.float32))[None]
    return torch.softmax(procs(torch.tensor([prefix]), x.clone()), -1)[0].numpy()


def _check_against(result, procs, top_atol=1e-6):
    for r, seq in enumerate(result.sequences):
        for t, step in enumerate(seq.steps):
            prefix = result.prompt_ids + seq.token_ids[:t]
            raw = result.raw_logits[r][t]
            want = _expected_probs(procs, prefix, raw)
            raw_p = torch.softmax(torch.from_numpy(raw), -1).numpy()
            assert step.token_id == seq.token_ids[t]
            assert want[step.token_id] > 0, "the sampled token must survive the processors"
            assert step.prob == pytest.approx(float(want[step.token_id]), abs=top_atol)
            assert step.raw_prob == pytest.approx(float(raw_p[step.token_id]), abs=top_atol)
            assert step.entropy == pytest.approx(float(-(raw_p * np.log(raw_p)).sum()), rel=1e-4)
            for c in step.top:
                assert c.prob == pytest.approx(float(want[c.token_id]), abs=top_atol)
            kept_top = sorted(want[want > 0], reverse=True)[: len(step.top)]
            assert [c.prob for c in step.top if c.prob > 0] == pytest.approx(kept_top, abs=top_atol)


def test_processed_probs_equal_transformers_processors(tiny_bundle):
    cfg = DecodingConfig(
        temperature=0.7,
        top_k=40,
        top_p=0.9,
        min_p=0.05,
        repetition_penalty=1.3,
        no_repeat_ngram_size=2,
        min_new_tokens=3,
        word_bias={"great": 2.0},
        num_samples=2,
        max_new_tokens=6,
        seed=1,
    )
    res = generate(tiny_bundle, "The movie was", cfg, keep_logits=True)
    P = len(res.prompt_ids)
    procs = LogitsProcessorList(
        [  # the order generate() applies them, built by hand from transformers' classes
            SequenceBiasLogitsProcessor([[[GREAT], 2.0], [[GREAT_NOSPACE], 2.0]]),
            RepetitionPenaltyLogitsProcessor(1.3),
            NoRepeatNGramLogitsProcessor(2),
            MinNewTokensLengthLogitsProcessor(P, 3, EOS),
            TemperatureLogitsWarper(0.7),
            TopKLogitsWarper(40),
            TopPLogitsWarper(0.9),
            MinPLogitsWarper(0.05),
        ]
    )
    assert [p.split("(")[0] for p in res.processors] == [type(p).__name__ for p in procs]
    assert len(res.sequences) == 2 and all(len(s.steps) == 6 for s in res.sequences)
    _check_against(res, procs)
    # The stored raw logits are the model's: one plain forward pass over the prefix agrees.
    seq = res.sequences[1]
    with torch.no_grad():
        fwd = tiny_bundle.model(torch.tensor([res.prompt_ids + seq.token_ids[:3]])).logits[0, -1]
    np.testing.assert_allclose(res.raw_logits[1][3], fwd.numpy(), atol=1e-4)


def test_kept_probs_sum_to_one_and_filtered_are_zero(tiny_bundle):
    res = generate(tiny_bundle, "Hello", DecodingConfig(top_k=5, max_new_tokens=4), top_n=8)
    for step in res.sequences[0].steps:
        probs = [c.prob for c in step.top]
        assert sum(probs[:5]) == pytest.approx(1.0, abs=1e-5)
        assert probs[5:] == [0.0, 0.0, 0.0]  # filtered by top-k, listed after the kept ones
        assert all(c.raw_prob > 0 for c in step.top)


def test_temperature_zero_is_greedy(tiny_bundle):
    res = generate(
        tiny_bundle, "Once upon a time", DecodingConfig(temperature=0.0, num_samples=3, max_new_tokens=6, seed=7), keep_logits=True
    )
    assert res.mode == "greedy" and len(res.sequences) == 1 and res.processors == []
    assert any("greedy" in n.lower() for n in res.notices)
    seq = res.sequences[0]
    assert [int(np.argmax(r)) for r in res.raw_logits[0]] == seq.token_ids
    ids = torch.tensor([res.prompt_ids])
    with torch.no_grad():
        ref = tiny_bundle.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6, pad_token_id=EOS)
    assert ref[0, len(res.prompt_ids) :].tolist()[: len(seq.token_ids)] == seq.token_ids


def test_seed_reproducible_and_samples_differ(tiny_bundle):
    cfg = DecodingConfig(num_samples=3, max_new_tokens=5, seed=3)
    a, b = generate(tiny_bundle, "Hi", cfg), generate(tiny_bundle, "Hi", cfg)
    assert [s.token_ids for s in a.sequences] == [s.token_ids for s in b.sequences]
    assert len({tuple(s.token_ids) for s in a.sequences}) > 1


def test_min_new_tokens_and_word_bias_take_effect(tiny_bundle):
    # A +100 bias on end-of-sequence would end the text at once; min_new_tokens=4 forbids it for 4 steps.
    cfg = DecodingConfig(strategy="greedy", word_bias={"<|im_end|>": 100.0}, min_new_tokens=4, max_new_tokens=8)
    res = generate(tiny_bundle, "The movie was", cfg, keep_logits=True)
    seq = res.sequences[0]
    assert EOS not in seq.token_ids[:4] and seq.token_ids[4] == EOS and seq.finished and len(seq.steps) == 5
    for t in range(4):
        assert all(c.prob == 0.0 for c in seq.steps[t].top if c.token_id == EOS)
    assert seq.steps[4].prob > 0.99 and seq.steps[4].raw_prob < 0.01
    # A positive word bias makes greedy decoding pick the word; the before/after table shows why.
    res = generate(
        tiny_bundle, "The movie was", DecodingConfig(strategy="greedy", word_bias={"great": 30.0}, max_new_tokens=2), keep_logits=True
    )
    assert res.sequences[0].token_ids[0] in (GREAT, GREAT_NOSPACE)
    bf = bias_frame(tiny_bundle, res, 0, 0)
    assert set(bf["token"]) == {" great", "great"} and bf["applies"].all()
    assert bf["before"].sum() < 0.01 and bf["after_bias"].sum() > 0.99
    assert np.allclose(bf["final"], bf["after_bias"], atol=1e-6)  # greedy: no warpers after the bias


def test_reprocess_equals_transformers_warpers(tiny_bundle):
    res = generate(tiny_bundle, "The movie was", DecodingConfig(max_new_tokens=4, seed=2), keep_logits=True)
    new = DecodingConfig(temperature=0.5, top_k=10, top_p=0.8, max_new_tokens=4)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(0.5), TopKLogitsWarper(10), TopPLogitsWarper(0.8)])
    seq = res.sequences[0]
    for t in range(4):
        raw_p, p = reprocess(tiny_bundle, res, 0, t, new)
        want = _expected_probs(warpers, res.prompt_ids + seq.token_ids[:t], res.raw_logits[0][t])
        np.testing.assert_allclose(p, want, atol=1e-7)
        assert (p > 0).sum() <= 10 and p.sum() == pytest.approx(1.0, abs=1e-5)
        df = candidate_frame(tiny_bundle.tokenizer, raw_p, p, seq.token_ids[t], n=10)
        assert df["kept"].sum() == (p > 0).sum() and df["prob"].sum() == pytest.approx(1.0, abs=1e-5)
        assert set(df["token_id"]) == set(np.argsort(-raw_p)[:10]) | set(np.flatnonzero(p)) | {
            seq.token_ids[t]
        }  # raw top-10 ∪ kept ∪ chosen
    # Its own config reproduces the numbers generate() reported.
    _, p0 = reprocess(tiny_bundle, res, 0, 1)
    assert seq.steps[1].prob == pytest.approx(float(p0[seq.token_ids[1]]), abs=1e-6)


def test_beam_search_returns_every_beam_with_log_probs(tiny_bundle):
    res = generate(tiny_bundle, "The movie was", DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=5), keep_logits=True)
    assert res.mode == "beam" and len(res.sequences) == 3
    scores = [s.score for s in res.sequences]
    assert scores == sorted(scores, reverse=True)
    for s in res.sequences:
        assert s.score == pytest.approx(s.cum_logprob / len(s.token_ids), rel=1e-4)  # length_penalty = 1
        assert s.cum_logprob == pytest.approx(sum(math.log(st.prob) for st in s.steps), rel=1e-4)
    assert list(sequences_frame(res).columns) == ["#", "text", "tokens", "cum_logprob", "score", "ended"]


def test_branch_forces_a_candidate_and_continues(tiny_bundle):
    res = generate(tiny_bundle, "The movie was", DecodingConfig(max_new_tokens=6, seed=0), keep_logits=True)
    seq = res.sequences[0]
    other = next(c.token_id for c in seq.steps[2].top if c.token_id != seq.token_ids[2])
    br = branch(tiny_bundle, res, 0, 2, token_id=other)
    b = br.sequences[0]
    assert b.token_ids[:2] == seq.token_ids[:2] and b.token_ids[2] == other and len(b.token_ids) == 6
    assert b.steps[2].forced and not b.steps[3].forced and b.steps[:2] == seq.steps[:2]
    assert b.steps[2].raw_prob == pytest.approx(next(c.raw_prob for c in seq.steps[2].top if c.token_id == other), rel=1e-3)
    assert br.raw_logits[0].shape == (6, tiny_bundle.model.config.vocab_size)
    assert len(steps_frame(b)) == 6 and "Branch at step 2" in br.notices[0]
    word = branch(tiny_bundle, res, 0, 1, word="great")  # a new word gets its leading space
    assert word.sequences[0].token_ids[1] == GREAT and word.sequences[0].steps[1].forced
    # Branches can be explored like any generation.
    raw_p, p = reprocess(tiny_bundle, br, 0, 4)
    assert p.sum() == pytest.approx(1.0, abs=1e-5)


def test_long_prompt_is_truncated_with_a_notice(tiny_bundle):
    res = generate(tiny_bundle, "word " * 400, DecodingConfig(max_new_tokens=16))  # tiny model: 256-token context
    assert len(res.prompt_ids) == 256 - 16 and "last 240" in res.notices[0]


def test_chat_template_wraps_the_prompt(tiny_bundle):
    res = generate(tiny_bundle, "Say hi", DecodingConfig(chat_template=True, max_new_tokens=2))
    assert "<|im_start|>user" in res.prompt_text and res.prompt_text.rstrip().endswith("assistant")
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(temperature=-1), "temperature must be between 0 and 100"),
        (dict(temperature=float("nan")), "temperature must be a finite number"),
        (dict(top_p=0.0), "top_p must be > 0"),
        (dict(top_k=10**6), "larger than the vocabulary"),
        (dict(top_k=2.5), "top_k must be a whole number"),
        (dict(max_new_tokens=10**6), "max_new_tokens must be between 1 and 512"),
        (dict(num_samples=9), "num_samples must be between 1 and 8"),
        (dict(num_beams=0), "num_beams must be between 1 and 8"),
        (dict(strategy="beam", num_beams=1), "beam search needs num_beams"),
        (dict(min_new_tokens=40, max_new_tokens=10), "min_new_tokens (40) is larger"),
        (dict(repetition_penalty=0), "repetition_penalty must be > 0"),
        (dict(min_p=1.0), "min_p must be < 1"),
        (dict(word_bias={"great": float("inf")}), "finite"),
        (dict(word_bias={" ": 1.0}), "biased word"),
        (dict(strategy="nucleus"), "strategy must be one of"),
        (dict(temperature="hot"), "temperature must be a number"),
    ],
)
def test_bad_settings_have_clear_messages(change, message):
    with pytest.raises(DecodingError) as err:
        DecodingConfig(**change).validate(vocab_size=49152)
    assert message in str(err.value)


def test_bad_prompts_and_bias_syntax(tiny_bundle):
    for prompt in ("", "   ", None, "x" * 20_001):
        with pytest.raises(DecodingError):
            generate(tiny_bundle, prompt, DecodingConfig())
    assert parse_word_bias("great: 5, terrible:-10") == {"great": 5.0, "terrible": -10.0}
    with pytest.raises(DecodingError, match="WORD:BIAS"):
        parse_word_bias("great")
    with pytest.raises(DecodingError, match="not a number"):
        parse_word_bias("great:lots")
    res = generate(tiny_bundle, "Hi", DecodingConfig(max_new_tokens=2), keep_logits=True)
    with pytest.raises(DecodingError, match="step 5 does not exist"):
        reprocess(tiny_bundle, res, 0, 5)
    with pytest.raises(DecodingError, match="not in the vocabulary"):
        branch(tiny_bundle, res, 0, 0, token_id=10**7)


@pytest.mark.integration
def test_real_model_sampling_matches_transformers_warpers(default_bundle):
    cfg = DecodingConfig(temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=6, seed=0, chat_template=True)
    res = generate(default_bundle, "Write one word about the sea.", cfg, keep_logits=True)
    procs = LogitsProcessorList([TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.9)])
    _check_against(res, procs, top_atol=1e-5)
    assert any(s.prob > s.raw_prob for s in res.sequences[0].steps)  # sharpening moved mass to the top tokens


@pytest.mark.integration
def test_real_model_word_bias_changes_the_continuation(default_bundle):
    base = generate(default_bundle, "The movie was", DecodingConfig(strategy="greedy", max_new_tokens=3), keep_logits=True)
    biased = generate(
        default_bundle, "The movie was", DecodingConfig(strategy="greedy", max_new_tokens=3, word_bias={"great": 8.0}), keep_logits=True
    )
    assert base.sequences[0].token_ids[0] != GREAT and biased.sequences[0].token_ids[0] == GREAT
    row = bias_frame(default_bundle, biased, 0, 0).set_index("form").loc[" great"]
    assert row["before"] < 0.05 < 0.5 < row["after_bias"]
