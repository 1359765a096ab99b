"""Batched generation across users (``decoding/batch.py``): a request batched with others gets exactly
what it gets alone — same tokens, the same probabilities shown (to float rounding: the forward pass
over a padded batch rounds a little differently) — and incompatible requests still run.

The batches are formed by hand (``run_rows``) or, for the :class:`Batcher`, by holding a first batch
until the other requests are queued behind it: no timing decides what is tested."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from rlhf_demo.decoding import batch
from rlhf_demo.decoding.batch import Batcher, batch_key
from rlhf_demo.decoding.generate import DecodingConfig, generate, prepare, result_from_rows, run_rows
from rlhf_demo.decoding.sampling import InverseCDFSampler

PLAYGROUND = dict(temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=8)  # the Playground's defaults (fewer tokens)
EVERY_PROCESSOR = dict(
    temperature=0.7,
    top_k=40,
    top_p=0.9,
    min_p=0.05,
    repetition_penalty=1.3,
    no_repeat_ngram_size=2,
    min_new_tokens=3,
    word_bias={"great": 2.0},
    max_new_tokens=8,
)
EOS_LIKELY = {**EVERY_PROCESSOR, "min_p": 0.0, "word_bias": {"<|im_end|>": 3.0}}
"""EOS (the pad token, 2) made likely: a repetition penalty that saw the left padding would visibly
push it down in padded rows only."""
OTHERS = [("Hi", 21, 1), ("Once upon a time, in a land far away, there lived", 22, 2), ("I think that the", 23, 1)]


def _numbers(res) -> list:
    """Tokens, and per step the chosen token's processed and raw probability and the top candidates."""
    return [(s.token_ids, [(st.prob, st.raw_prob, [(c.token_id, c.prob) for c in st.top]) for st in s.steps]) for s in res.sequences]


def assert_same(batched, alone, atol=1e-5):
    assert [s.token_ids for s in batched.sequences] == [s.token_ids for s in alone.sequences]
    assert [s.finished for s in batched.sequences] == [s.finished for s in alone.sequences]
    assert batched.processors == alone.processors
    for (_, b_steps), (_, a_steps) in zip(_numbers(batched), _numbers(alone)):
        for (bp, braw, btop), (ap, araw, atop) in zip(b_steps, a_steps):
            assert bp == pytest.approx(ap, abs=atol) and braw == pytest.approx(araw, abs=atol)
            assert [c for c, _ in btop] == [c for c, _ in atop]
            assert [p for _, p in btop] == pytest.approx([p for _, p in atop], abs=atol)


def _batched(bundle, requests: list[tuple[str, DecodingConfig]]):
    """Each (prompt, cfg) through ONE run_rows call, then its own result."""
    prepared = [prepare(bundle, prompt, cfg) for prompt, cfg in requests]
    outs = run_rows(bundle, [(p.ids, cfg) for cfg, p in prepared])
    return [
        result_from_rows(bundle, p.ids, cfg, *rows, keep_logits=True, prompt_text=p.text, notices=p.notices, batch=len(outs))
        for (cfg, p), rows in zip(prepared, outs)
    ]


@pytest.mark.parametrize("knobs", [PLAYGROUND, EVERY_PROCESSOR, EOS_LIKELY], ids=["playground", "every-processor", "eos-likely"])
def test_a_request_batched_with_three_others_gets_what_it_gets_alone(tiny_bundle, knobs):
    mine = ("The movie was", DecodingConfig(**knobs, seed=5))
    others = [(prompt, DecodingConfig(**knobs, seed=seed, num_samples=n)) for prompt, seed, n in OTHERS]
    lengths = {len(prepare(tiny_bundle, p, c)[1].ids) for p, c in [mine, *others]}
    assert len(lengths) == 4, "the four prompts must differ in length (left padding)"
    alone = [generate(tiny_bundle, p, c, keep_logits=True) for p, c in [mine, *others]]
    for position in (0, 3):  # first row of the batch, and last
        reqs = [*others]
        reqs.insert(position, mine)
        results = _batched(tiny_bundle, reqs)
        assert_same(results[position], alone[0])
        for res, want in zip([r for i, r in enumerate(results) if i != position], alone[1:]):
            assert_same(res, want)
        assert results[position].batch == 4


def test_greedy_batched_equals_greedy_alone(tiny_bundle):
    reqs = [(p, DecodingConfig(strategy="greedy", repetition_penalty=1.5, max_new_tokens=6)) for p, _, _ in OTHERS]
    for res, (p, c) in zip(_batched(tiny_bundle, reqs), reqs):
        assert_same(res, generate(tiny_bundle, p, c))


def test_seeds_differ_in_a_batch_and_each_row_keeps_its_own_scores(tiny_bundle):
    cfg = dict(PLAYGROUND, top_k=0, top_p=1.0)
    a, b = _batched(tiny_bundle, [("The movie was", DecodingConfig(**cfg, seed=1)), ("The movie was", DecodingConfig(**cfg, seed=2))])
    assert a.sequences[0].token_ids != b.sequences[0].token_ids
    # The probability shown is the one the token was drawn from: softmax(raw / T) of its own row.
    for res in (a, b):
        for t, st in enumerate(res.sequences[0].steps):
            p = torch.softmax(torch.from_numpy(res.raw_logits[0][t]) / 0.8, -1)
            assert st.prob == pytest.approx(float(p[st.token_id]), abs=1e-6)


def test_batch_key_groups_only_what_one_generate_can_run():
    base = DecodingConfig(**PLAYGROUND).validate()
    assert batch_key(base) == batch_key(DecodingConfig(**PLAYGROUND, seed=9, num_samples=3, chat_template=True).validate())
    for change in (dict(temperature=0.9), dict(top_k=5), dict(max_new_tokens=9), dict(repetition_penalty=1.2), dict(word_bias={"a": 1})):
        assert batch_key(DecodingConfig(**{**PLAYGROUND, **change}).validate()) != batch_key(base)
    assert batch_key(DecodingConfig(strategy="beam").validate()) is None
    greedy = batch_key(DecodingConfig(strategy="greedy", temperature=0.3).validate())
    assert greedy == batch_key(DecodingConfig(temperature=0.0, top_k=7).validate())  # warpers do not apply to greedy


def test_rows_sharing_a_generator_draw_together_as_one_call():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    u = InverseCDFSampler([g1, g1, g2]).uniforms(3, "cpu")
    want = torch.cat(
        [
            torch.rand(2, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
            torch.rand(1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2)),
        ]
    )
    assert torch.equal(u, want)
    with pytest.raises(ValueError, match="3 generators for a batch of 2 rows"):
        InverseCDFSampler([g1, g1, g2]).uniforms(2, "cpu")


class _Held:
    """Wraps ``batch.run_rows``: the first call waits until released, so later requests queue up behind it."""

    BLOCKER = ("The end", DecodingConfig(strategy="greedy", max_new_tokens=4, seed=0))
    """The first request: greedy, so nothing queued behind it is compatible (it never gives way)."""

    def __init__(self, fail_seed: int | None = None):
        self.calls: list[list[int]] = []  # seeds of each call
        self.release, self.fail_seed, self.real = threading.Event(), fail_seed, batch.run_rows

    def __call__(self, bundle, requests, stop=None):
        self.calls.append([c.seed for _, c in requests])
        if len(self.calls) == 1:
            assert self.release.wait(60)
        if self.fail_seed is not None and any(c.seed == self.fail_seed for _, c in requests):
            raise RuntimeError(f"request with seed {self.fail_seed} fails")
        return self.real(bundle, requests, stop=stop)


def _run_queued(bundle, batcher, held, first, requests):
    """``first`` runs (held); then every request starts, in order; once all are queued, release."""
    out, threads = {}, []

    def call(name, prompt, cfg):
        try:
            out[name] = batcher.generate(bundle, prompt, cfg, keep_logits=True)
        except Exception as exc:  # noqa: BLE001 - checked by the test
            out[name] = exc

    def start(name, prompt, cfg):
        threads.append(threading.Thread(target=call, args=(name, prompt, cfg)))
        threads[-1].start()

    start("first", *first)
    _until(lambda: held.calls)
    for name, (prompt, cfg) in requests.items():
        start(name, prompt, cfg)
        if cfg.strategy != "beam":  # beam search never queues
            n = sum(c.strategy != "beam" for _, c in list(requests.values())[: list(requests).index(name) + 1])
            _until(lambda n=n: batcher.queued() == n)
    held.release.set()
    for t in threads:
        t.join(120)
    return out


def _until(cond, timeout=60.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_batcher_groups_compatible_requests_and_runs_the_rest_apart(tiny_bundle, monkeypatch):
    held = _Held()
    monkeypatch.setattr(batch, "run_rows", held)
    requests = {
        "a": ("The movie was", DecodingConfig(**PLAYGROUND, seed=1)),
        "hotter": ("The movie was", DecodingConfig(**{**PLAYGROUND, "temperature": 1.3}, seed=2)),
        "beam": ("The movie was", DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=5)),
        "b": ("Hi", DecodingConfig(**PLAYGROUND, seed=3, num_samples=2)),
        "greedy": ("Hello there", DecodingConfig(strategy="greedy", max_new_tokens=5, seed=4)),
        "c": ("Once upon a time, in a land far away", DecodingConfig(**PLAYGROUND, seed=5)),
    }
    out = _run_queued(tiny_bundle, Batcher(), held, _Held.BLOCKER, requests)
    assert held.calls == [[0], [1, 3, 5], [2], [4]]  # oldest group first; a, b and c share one generate()
    for name, (prompt, cfg) in requests.items():
        assert not isinstance(out[name], Exception), out[name]
        assert_same(out[name], generate(tiny_bundle, prompt, cfg, keep_logits=True))
    assert [out[n].batch for n in ("a", "b", "c", "hotter", "greedy", "beam")] == [3, 3, 3, 1, 1, 1]
    assert len(out["beam"].sequences) == 3 and out["beam"].mode == "beam"


def test_a_failing_batch_is_rerun_one_by_one_so_only_the_bad_request_fails(tiny_bundle, monkeypatch):
    held = _Held(fail_seed=13)
    monkeypatch.setattr(batch, "run_rows", held)
    requests = {f"s{seed}": ("The movie was", DecodingConfig(**PLAYGROUND, seed=seed)) for seed in (12, 13, 14)}
    out = _run_queued(tiny_bundle, Batcher(), held, _Held.BLOCKER, requests)
    assert held.calls == [[0], [12, 13, 14], [12], [13], [14]]
    assert isinstance(out["s13"], RuntimeError) and "seed 13 fails" in str(out["s13"])
    for name in ("s12", "s14"):
        assert_same(out[name], generate(tiny_bundle, *requests[name], keep_logits=True))
        assert out[name].batch == 1


def test_batcher_limits_rows_per_batch(tiny_bundle, monkeypatch):
    held = _Held()
    monkeypatch.setattr(batch, "run_rows", held)
    requests = {f"s{seed}": ("The movie was", DecodingConfig(**PLAYGROUND, seed=seed, num_samples=2)) for seed in (1, 2, 3)}
    _run_queued(tiny_bundle, Batcher(max_rows=4), held, _Held.BLOCKER, requests)
    assert held.calls == [[0], [1, 2], [3]]


def test_a_batch_that_has_just_begun_gives_way_to_the_requests_queued_behind_it(tiny_bundle, monkeypatch):
    held = _Held()
    monkeypatch.setattr(batch, "run_rows", held)
    first = ("The end", DecodingConfig(**PLAYGROUND, seed=0))
    requests = {f"s{seed}": (prompt, DecodingConfig(**PLAYGROUND, seed=seed)) for prompt, seed, _ in OTHERS}
    out = _run_queued(tiny_bundle, Batcher(gather_s=600), held, first, requests)
    assert held.calls == [[0], [0, 21, 22, 23]]  # stopped after its first token, rerun with the three
    for name, req in [("first", first), *requests.items()]:
        assert_same(out[name], generate(tiny_bundle, *req, keep_logits=True))
        assert out[name].batch == 4


def test_a_batch_gives_way_even_to_fewer_rows_than_it_runs(tiny_bundle, monkeypatch):
    """A burst arrives over a second or more: giving way only to as many rows as run split it into waves."""
    held = _Held()
    monkeypatch.setattr(batch, "run_rows", held)
    first = ("The end", DecodingConfig(**PLAYGROUND, seed=0, num_samples=3))
    requests = {f"s{seed}": (prompt, DecodingConfig(**PLAYGROUND, seed=seed)) for prompt, seed, _ in OTHERS[:1]}
    out = _run_queued(tiny_bundle, Batcher(gather_s=600), held, first, requests)
    assert held.calls == [[0], [0, 21]]
    assert_same(out["first"], generate(tiny_bundle, *first, keep_logits=True))
    assert_same(out["s21"], generate(tiny_bundle, *requests["s21"], keep_logits=True))


def test_a_batch_whose_oldest_request_waited_gather_s_does_not_give_way(tiny_bundle, monkeypatch):
    """The age limit: a steady stream of newcomers cannot hold a request back for ever."""
    held = _Held()
    monkeypatch.setattr(batch, "run_rows", held)
    first = ("The end", DecodingConfig(**PLAYGROUND, seed=0, num_samples=3))
    requests = {f"s{seed}": (prompt, DecodingConfig(**PLAYGROUND, seed=seed)) for prompt, seed, _ in OTHERS[:2]}
    out = _run_queued(tiny_bundle, Batcher(gather_s=0.0), held, first, requests)
    assert held.calls == [[0], [21, 22]]
    assert_same(out["first"], generate(tiny_bundle, *first, keep_logits=True))


def test_padded_rows_are_processed_as_each_prompt_alone(tiny_bundle):
    """The processors that read the tokens see no padding (the pad token is EOS, 2, here): a prompt
    ending in token 2 would otherwise have the n-gram ban forbid (2, 2) and (2, first token), and a
    repetition penalty would push EOS down in padded rows only. Scores with a large EOS logit show it."""
    from rlhf_demo.decoding.generate import build_processors, generation_config
    from rlhf_demo.decoding.sampling import left_pad, padded_processors

    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    cfg = DecodingConfig(**{**EVERY_PROCESSOR, "min_new_tokens": 0}).validate()
    gc = generation_config(cfg, tok)
    queries = [[504, 2], [1109, 504, 7704, 436, 504, 2], [7704, 1109]]
    ids, mask = left_pad(queries, tok.pad_token_id, "cpu")
    scores = torch.randn(len(queries), len(tok), generator=torch.Generator().manual_seed(0))
    scores[:, 2] = 8.0
    scores[:, 504] = 6.0
    batched = scores.clone()
    for p in padded_processors(build_processors(model, gc, ids, mask), mask):
        batched = p(ids, batched)
    for i, q in enumerate(queries):
        alone = scores[i : i + 1].clone()
        for p in build_processors(model, gc, torch.tensor([q])):
            alone = p(torch.tensor([q]), alone)
        torch.testing.assert_close(batched[i], alone[0], rtol=0, atol=0)


@pytest.mark.integration
def test_real_model_request_alone_equals_it_batched_with_three_others(default_bundle):
    mine = ("The movie was", DecodingConfig(**{**PLAYGROUND, "max_new_tokens": 20}, seed=0))
    others = [(p, DecodingConfig(**{**PLAYGROUND, "max_new_tokens": 20}, seed=s, num_samples=n)) for p, s, n in OTHERS]
    alone = generate(default_bundle, *mine, keep_logits=True)
    assert_same(_batched(default_bundle, [others[0], mine, *others[1:]])[1], alone)
