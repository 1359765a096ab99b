"""Work of many users on one server (``rlhf_demo/shared_work.py``, ``kl/served.py``, ``theory/served.py``):
identical concurrent requests are one computation, and a batched KL or Theory result equals the one
computed alone for each row. The tiny model; not timed."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from rlhf_demo.kl.analysis import token_kl, token_kl_batch
from rlhf_demo.kl.served import KLService
from rlhf_demo.shared_work import SharedWork
from rlhf_demo.theory.candidates import CandidatesConfig, sample_candidates, sample_candidates_batch
from rlhf_demo.theory.served import CandidatesService

PROMPT = "The movie was"


def _at_once(n, fn):
    """``fn(i)`` in n threads released together; their results in order."""
    barrier, out, errors = threading.Barrier(n), [None] * n, []

    def work(i):
        try:
            barrier.wait(timeout=30)
            out[i] = fn(i)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return out


def test_identical_concurrent_requests_are_one_computation():
    calls, gate = [], threading.Event()

    def run_batch(items):
        calls.append(list(items))
        gate.wait(timeout=5)  # still running while the others arrive
        return [f"answer {x}" for x in items]

    work = SharedWork(lock=threading.Lock())
    threading.Timer(0.5, gate.set).start()
    got = _at_once(8, lambda i: work.run(("same", 1), "g", 1, run_batch))
    assert got == ["answer 1"] * 8
    assert sum(len(c) for c in calls) == 1  # computed once
    assert work.run(("same", 1), "g", 1, run_batch) == "answer 1" and len(calls) == 1  # a click just after: cached


def test_compatible_requests_run_as_one_batch_and_a_bad_one_fails_only_itself():
    calls, gate = [], threading.Event()

    def run_batch(items):
        calls.append(list(items))
        gate.wait(timeout=5)
        if -1 in items:
            raise ValueError("bad item")
        return [x * 10 for x in items]

    work = SharedWork(lock=threading.Lock())
    threading.Timer(0.5, gate.set).start()
    items = [1, 2, 3, -1, 5]
    got = _at_once(5, lambda i: _try(lambda: work.run(items[i], "g", items[i], run_batch)))
    assert got == [10, 20, 30, "ValueError", 50]
    assert len(calls[0]) == 1 and max(len(c) for c in calls) >= 3  # the first ran alone; the waiting ones together


def _try(fn):
    try:
        return fn()
    except ValueError as exc:
        return type(exc).__name__


def test_thirty_identical_kl_clicks_are_one_computation(tiny_bundle, monkeypatch):
    import rlhf_demo.kl.served as served_mod

    counted = []
    real = served_mod.token_kl_batch
    monkeypatch.setattr(served_mod, "token_kl_batch", lambda *a, **k: counted.append(len(a[3])) or real(*a, **k))
    service = KLService()
    got = _at_once(30, lambda i: service.token_kl(tiny_bundle, tiny_bundle, PROMPT, max_new_tokens=8, policy_temperature=1.5, seed=3))
    assert sum(counted) == 1  # one row computed, once
    assert all(g is got[0] for g in got)
    want = token_kl(tiny_bundle, tiny_bundle, PROMPT, max_new_tokens=8, policy_temperature=1.5, seed=3)
    np.testing.assert_allclose(got[0].table["kl_exact"], want.table["kl_exact"], atol=1e-5)


def test_batched_kl_equals_each_row_alone(tiny_bundle):
    seeds = [0, 1, 2, 5, 11]
    batched = token_kl_batch(tiny_bundle, tiny_bundle, PROMPT, seeds, max_new_tokens=12, policy_temperature=1.7)
    for seed, got in zip(seeds, batched):
        want = token_kl(tiny_bundle, tiny_bundle, PROMPT, max_new_tokens=12, policy_temperature=1.7, seed=seed)
        assert got.response == want.response and got.table["token_id"].tolist() == want.table["token_id"].tolist()
        for col in ("logp_policy", "logp_ref", "kl_exact", "k1", "k2", "k3"):
            np.testing.assert_allclose(got.table[col], want.table[col], atol=1e-5, rtol=1e-5)
        assert got.max_position == want.max_position
        np.testing.assert_allclose(got.top["policy_p"], want.top["policy_p"], atol=1e-5)
    assert len({r.response for r in batched}) > 1  # different seeds, different responses


def test_kl_service_batches_different_seeds(tiny_bundle):
    service = KLService()
    got = _at_once(6, lambda i: service.token_kl(tiny_bundle, tiny_bundle, PROMPT, max_new_tokens=6, policy_temperature=1.2, seed=i))
    assert service.work.computed == 6 and service.work.batches < 6
    for i, g in enumerate(got):
        want = token_kl(tiny_bundle, tiny_bundle, PROMPT, max_new_tokens=6, policy_temperature=1.2, seed=i)
        np.testing.assert_allclose(g.table["kl_exact"], want.table["kl_exact"], atol=1e-5)


def _length_reward(texts):
    return [float(len(t)) for t in texts]


def test_batched_theory_candidates_equal_each_request_alone(tiny_bundle):
    cfgs = [CandidatesConfig(k=k, response_tokens=6, seed=s) for k, s in [(4, 0), (8, 1), (3, 7)]]
    batched = sample_candidates_batch(tiny_bundle, PROMPT, _length_reward, cfgs)
    for cfg, got in zip(cfgs, batched):
        want = sample_candidates(tiny_bundle, PROMPT, _length_reward, cfg)
        pd.testing.assert_frame_equal(got.drop(columns="logp_ref"), want.drop(columns="logp_ref"))
        np.testing.assert_allclose(got["logp_ref"], want["logp_ref"], atol=1e-4)
    service = CandidatesService()
    got = _at_once(10, lambda i: service.sample(tiny_bundle, PROMPT, _length_reward, cfgs[0]))
    assert service.work.computed == 1 and all(g is got[0] for g in got)


def test_a_training_forward_gives_way_while_a_request_holds_the_model(tiny_model_dir):
    """A model loaded by load_model pauses between decoder layers while another thread holds the model
    lock (a request being served), and goes on once it is released; the holder itself never waits, and
    with nobody holding it a forward runs as before (same logits)."""
    import threading

    import torch

    from rlhf_demo.models.loading import load_model
    from rlhf_demo.shared_work import ModelLock, give_way_to_requests

    bundle = load_model(str(tiny_model_dir), device="cpu", dtype=torch.float32)
    lock = ModelLock(max_pause_s=60.0)
    for m in bundle.model.modules():  # point the hooks at this test's lock (load_model used MODEL_LOCK)
        m._gives_way = False
        m._forward_pre_hooks.clear()
    assert give_way_to_requests(bundle.model, lock) == bundle.model.config.num_hidden_layers
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        free = bundle.model(ids).logits
    done = threading.Event()

    def training_forward():
        with torch.no_grad():
            bundle.model(ids)
        done.set()

    with lock:  # a request is being served
        with torch.no_grad():
            torch.testing.assert_close(bundle.model(ids).logits, free)  # the holder runs, no wait
        t = threading.Thread(target=training_forward, daemon=True)
        t.start()
        assert not done.wait(0.5)  # the training waits between layers meanwhile
        assert lock.pauses >= 1
    assert done.wait(30)  # released: it goes on


def test_a_pause_is_bounded_so_a_training_never_stalls():
    import threading

    from rlhf_demo.shared_work import ModelLock

    lock = ModelLock(max_pause_s=0.05, min_run_s=10.0)
    release = threading.Event()

    def hold():
        with lock:
            release.wait(30)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    while not lock.locked():
        pass
    lock.yield_point()  # waits at most max_pause_s, then ...
    assert lock.pauses == 1
    lock.yield_point()  # ... runs min_run_s without pausing
    assert lock.pauses == 1
    release.set()
    t.join(30)


def test_a_long_request_passes_its_turn_to_a_waiting_one_and_takes_the_lock_back():
    """The holder's pass_turn hands the lock to a thread waiting for it (once ``turn_s`` passed), waits
    for that thread's work, then holds the lock again; with nobody waiting it passes nothing."""
    import threading

    from rlhf_demo.shared_work import ModelLock

    lock = ModelLock(turn_s=0.0)
    order = []
    with lock:
        assert lock.pass_turn() is False  # nobody waits
        waiter = threading.Thread(target=lambda: (lock.acquire(), order.append("waiter"), lock.release()), daemon=True)
        waiter.start()
        while not lock._waiting:
            pass
        assert lock.pass_turn() is True  # the waiter ran meanwhile ...
        order.append("holder")
        assert lock._owner == threading.get_ident()  # ... and the holder has the lock again
    waiter.join(30)
    assert order == ["waiter", "holder"] and lock.turns == 1
    patient = ModelLock(turn_s=3600.0)
    with patient:
        t = threading.Thread(target=lambda: (patient.acquire(), patient.release()), daemon=True)
        t.start()
        while not patient._waiting:
            pass
        assert patient.pass_turn() is False  # held for less than turn_s: no turn passed
    t.join(30)


def test_a_long_generation_lets_a_waiting_request_run_before_it_ends(tiny_bundle):
    """A Playground batch (real ``run_rows`` on the tiny model) passes the model lock between its steps:
    a KL/Theory/pair request that waits for the lock runs while the generation is still going, and the
    generation's tokens are those it makes alone."""
    import threading

    from rlhf_demo.decoding.batch import Batcher
    from rlhf_demo.decoding.generate import DecodingConfig, generate
    from rlhf_demo.shared_work import ModelLock

    lock = ModelLock(turn_s=0.0)
    cfg = DecodingConfig(temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=64, min_new_tokens=64, seed=3)
    batcher, seen = Batcher(lock=lock), {}
    started = threading.Event()
    orig_should = batcher._should_give_way

    def should(group, made):
        started.set()
        if made == 2:  # the generation is under way: a request arrives and waits for the lock

            def request():
                with lock:
                    seen["request_done_at"] = made_so_far[0]

            threading.Thread(target=request, daemon=True).start()
            while not lock._waiting:
                pass
        made_so_far[0] = made
        return orig_should(group, made)

    made_so_far = [0]
    batcher._should_give_way = should
    res = batcher.generate(tiny_bundle, "The movie was", cfg, keep_logits=True)
    assert lock.turns >= 1 and 2 <= seen["request_done_at"] < 64  # it ran mid-generation
    alone = generate(tiny_bundle, "The movie was", cfg, keep_logits=True)
    assert res.sequences[0].token_ids == alone.sequences[0].token_ids
