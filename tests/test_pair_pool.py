"""Pairs drawn ahead (``data/pair_pool.py``): the pool fills in the background with real pairs from the
model, hands each out once, refills when low, and a failed refill leaves draws to the usual path.
On a shared server the Feedback tab's draws in the default setting come from it (real default model)."""

from __future__ import annotations

import json
import threading

import pytest

from rlhf_demo.data.feedback import make_pairs
from rlhf_demo.data.pair_bank import BANK
from rlhf_demo.data.pair_pool import PairPool


def _maker(bundle, calls):
    def make(n):
        calls.append(n)
        return make_pairs(bundle.model, bundle.tokenizer, [("The movie was great", 4)] * n, response_tokens=4)

    return make


def test_the_pool_fills_in_batches_hands_each_pair_out_once_and_refills_when_low(tiny_bundle):
    calls = []
    pool = PairPool(_maker(tiny_bundle, calls), size=5, low=2, batch=3)
    assert pool.take() is None  # empty: the caller draws the usual way; a refill starts
    pool.refill(wait=True)
    assert len(pool) == 5 and calls == [3, 2]  # batches of at most `batch`, up to `size`
    got = [pool.take() for _ in range(3)]
    assert all(isinstance(p, tuple) and len(p) == 3 and p[0].startswith("The movie") for p in got)
    assert len({id(p) for p in got}) == 3  # each pair leaves the pool once
    pool.refill(wait=True)  # 2 left (= low): filled up again
    assert len(pool) == 5 and calls == [3, 2, 3]
    pool.take()
    pool.refill(wait=True)  # 4 left, above low: no refill
    assert calls == [3, 2, 3] and len(pool) == 4


def test_a_failing_refill_leaves_the_pool_empty_and_is_retried():
    state = {"fail": True}

    def make(n):
        if state["fail"]:
            raise RuntimeError("model gone")
        return [("q", "a", "b")] * n

    pool = PairPool(make, size=2, low=0, batch=2)
    pool.refill(wait=True)
    assert len(pool) == 0 and pool.errors == 1
    state["fail"] = False
    assert pool.take() is None  # still empty, but the take starts a new refill
    pool.refill(wait=True)
    assert len(pool) == 2


def test_one_refill_at_a_time():
    started, release = threading.Event(), threading.Event()

    def make(n):
        started.set()
        release.wait(30)
        return [("q", "a", "b")] * n

    pool = PairPool(make, size=4, low=1, batch=4)
    pool.refill()
    assert started.wait(30)
    first = pool._refilling
    pool.refill()
    assert pool._refilling is first  # no second thread while one runs
    release.set()
    pool.refill(wait=True)
    assert len(pool) == 4 and pool.made == 4


def test_a_class_draws_fresh_pairs_from_the_pool_on_the_real_model(tmp_path, monkeypatch, default_bundle):
    """Shared mode: a join warms the pool; a draw in the Feedback tab's default setting takes a pooled
    pair (a real pair of the default model) instead of generating; other settings still generate."""
    from rlhf_demo.classroom.identity import User
    from rlhf_demo.ui import labelling
    from rlhf_demo.ui.context import AppContext, Sessions

    monkeypatch.setenv("RLHF_DEMO_SHARED", "1")
    monkeypatch.delenv("RLHF_DEMO_TEACHER_KEY", raising=False)
    monkeypatch.setenv("RLHF_DEMO_FEEDBACK", str(tmp_path / "labels.jsonl"))
    ctx = AppContext(runs_dir=tmp_path, sessions=Sessions())

    class Req:
        session_hash, client, headers = "s1", type("C", (), {"host": "10.0.0.9"})(), {}

    ctx.sessions.bind("s1", User("u1", "ann"))
    pool = labelling.pool(ctx)
    pool.refill(wait=True)
    assert len(pool) >= pool.size  # the shipped bank's pairs (data/pair_bank.py), refilled live when low
    before = len(pool)
    bank = {tuple(p) for p in json.loads(BANK.read_text(encoding="utf-8"))["pairs"]}
    pair = labelling.draw_pair(ctx, Req(), *labelling.POOLED)
    assert (pair["prompt"], pair["a"], pair["b"]) in bank  # served from the bank: no generation
    assert len(pool) == before - 1 and pair["a"] and pair["b"] and not pair["shared"]
    assert ctx.handed("s1")["pair_id"] == pair["pair_id"]  # handed out like any pair: it can be labelled
    other = labelling.draw_pair(ctx, Req(), 8, 0.7)  # another setting: generated on the spot
    assert len(pool) == before - 1 and other["pair_id"] != pair["pair_id"]
    monkeypatch.setenv("RLHF_DEMO_SHARED", "0")
    assert not ctx.classroom()
    labelling.draw_pair(ctx, Req(), *labelling.POOLED)  # local use: no pool
    assert len(pool) == before - 1


@pytest.fixture(autouse=True)
def _no_leftover_pools():
    from rlhf_demo.ui import labelling

    yield
    labelling._pools.clear()
