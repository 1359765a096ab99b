"""Classroom core: identities, the teacher key's throttle, owners and pins on disk, labeller agreement
against a hand computation, the class's labels by majority vote, teacher actions on the queue."""
from __future__ import annotations

import time

import pytest

from rlhf_demo.classroom.agreement import agreement, majority
from rlhf_demo.classroom.identity import (KeyThrottle, check_proof, clean_nickname, key_matches, new_token,
                                          teacher_proof, user_id, valid_token)
from rlhf_demo.classroom.ownership import ClassRecord, OwnershipError
from rlhf_demo.data.feedback import FeedbackStore
from rlhf_demo.ppo.config import preset
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.runs.queue import QueueError, TrainingQueue


def _wait(cond, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def builder(model_dir, steps=2):
    cfg = preset("quick-cpu", model=str(model_dir), batch_size=4, num_mini_batches=2, ppo_epochs=1, steps=steps,
                 response_tokens=(4, 4), eval_final=False, device="cpu", kl_budget=0.0).validate()
    return lambda stop: PPOTrainer(cfg, prompts=["The movie was", "I watched this film"], stop=stop)


def test_tokens_ids_and_teacher_proofs():
    t = new_token()
    assert valid_token(t) and not valid_token("x") and not valid_token({"a": 1})
    assert user_id(t) == user_id(t) and user_id(t) != user_id(new_token()) and t not in user_id(t)
    proof = teacher_proof(t, key="k3y")
    assert check_proof(t, proof, key="k3y")
    assert not check_proof(new_token(), proof, key="k3y")          # worthless in another browser
    assert not check_proof(t, proof, key="other")                  # or under another key
    assert not check_proof(t, proof, key="") and teacher_proof(t, key="") == ""
    assert key_matches("k3y", key="k3y") and not key_matches("k3y ", key="k3y") and not key_matches("", key="")


def test_nicknames_are_plain_text_and_short():
    assert clean_nickname("<img src=x onerror=alert(1)>", "fb") == "img srcx onerroralert1"
    assert clean_nickname("**bold** [link](http://x)", "fb") == "bold linkhttpx"
    assert len(clean_nickname("a" * 200, "fb")) == 24
    assert clean_nickname("   ", "fallback") == "fallback" and clean_nickname(None, "fb") == "fb"
    assert clean_nickname("Zoë O'Neil", "fb") == "Zoë O'Neil"


def test_wrong_keys_meet_a_growing_delay():
    th = KeyThrottle(base_s=2.0, max_s=30.0)
    assert th.wait_s("1.2.3.4", now=0.0) == 0.0
    assert [th.failed("1.2.3.4", now=0.0) for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert th.wait_s("1.2.3.4", now=10.0) == 20.0
    assert th.wait_s("5.6.7.8", now=10.0) == 0.0                    # per client
    th.succeeded("1.2.3.4")
    assert th.wait_s("1.2.3.4", now=10.0) == 0.0


def test_owners_and_pins_survive_a_new_record_and_stay_inside_the_runs_folder(tmp_path):
    run = tmp_path / "ppo-1"
    run.mkdir()
    (run / "config.json").write_text("{}")
    rec = ClassRecord(tmp_path)
    rec.set_owner(run, "u1", "calm otter")
    rec.pin(run)
    again = ClassRecord(tmp_path)                                  # a restart reads the same files
    assert again.owner(run)["owner"] == "u1" and again.pinned(run)
    assert again.owner(tmp_path / ".." / "x") == {} and not again.inside(tmp_path / "ppo-1" / "sub")
    with pytest.raises(OwnershipError):
        again.pin(tmp_path.parent / "elsewhere")
    with pytest.raises(OwnershipError):
        again.delete(tmp_path / "not-a-run")
    again.delete(run)
    assert not run.exists() and again.owner(run) == {} and again.pins() == []


def test_agreement_matches_a_hand_computation():
    # pair p1: A, A, B (3 labellers); pair p2: B, B; pair p3: only one labeller (left out); skips carry nothing
    recs = [dict(pair_id="p1", labeller="u1", label="A"), dict(pair_id="p1", labeller="u2", label="A"),
            dict(pair_id="p1", labeller="u3", label="B"), dict(pair_id="p2", labeller="u1", label="B"),
            dict(pair_id="p2", labeller="u2", label="B"), dict(pair_id="p3", labeller="u1", label="A"),
            dict(pair_id="p2", labeller="u3", label="skip")]
    a = agreement(recs)
    # P_o = (A:2·1 + B:1·0 + B:2·1) / (3·2 + 2·1) = 4 / 8; p_A = 2/5, p_B = 3/5: P_e = 4/25 + 9/25 = 13/25
    assert a["pairs"] == 2 and a["labels"] == 5
    assert a["observed"] == pytest.approx(0.5) and a["chance"] == pytest.approx(13 / 25)
    assert a["kappa"] == pytest.approx((0.5 - 13 / 25) / (1 - 13 / 25))
    assert agreement(recs[:1])["observed"] is None
    assert majority({"u1": "A", "u2": "B"}) is None and majority({"u1": "A", "u2": "A", "u3": "B"}) == "A"
    # a labeller's last label of a pair counts
    assert agreement(recs[:2] + [dict(pair_id="p1", labeller="u2", label="B")])["observed"] == 0.0


def test_class_labels_by_majority_mine_by_label_and_shared_pairs(tmp_path):
    store = FeedbackStore(tmp_path / "labels.jsonl")
    first = store.add("q", " a", " b", "A", labeller="u1", nickname="one")
    pid = first["pair_id"]
    assert [p["pair_id"] for p in store.open_pairs("u2")] == [pid] and store.open_pairs("u1") == []
    store.add("q", " a", " b", "B", labeller="u2", pair_id=pid)
    store.add("q", " a", " b", "B", labeller="u3", pair_id=pid)
    store.add("r", " c", " d", "A", labeller="u2")
    assert store.open_pairs("u4", max_labellers=3)[0]["prompt"] == "r"   # the full pair (3 labellers) is not offered
    assert store.export_pairs("u1") == [{"prompt": "q", "chosen": " a", "rejected": " b"}]
    assert store.export_pairs() == [{"prompt": "q", "chosen": " b", "rejected": " a"},
                                    {"prompt": "r", "chosen": " c", "rejected": " d"}]
    assert store.counts("u2")["total"] == 2 and store.counts()["total"] == 4
    assert store.labellers() == {"u2": 2, "u1": 1, "u3": 1}
    with pytest.raises(ValueError):
        store.add("q", " a", " b", "A", labeller="u1", pair_id="../../etc")
    kept = store.clear()
    assert store.counts()["total"] == 0 and len(FeedbackStore(kept).records()) == 4   # moved aside, not lost


def test_teacher_reorders_removes_and_stops_jobs(tiny_model_dir, tmp_path):
    q = TrainingQueue()
    jobs = [q.submit(f"u{i}", "ppo", tmp_path / f"r{i}", builder(tiny_model_dir, steps=500 if i == 0 else 2),
                     nickname=f"n{i}") for i in range(4)]
    _wait(lambda: len(jobs[0].records) >= 1)
    assert q.current() is jobs[0]
    assert [j.nickname for j in q.waiting()] == ["n1", "n2", "n3"]
    q.move(jobs[3].id, -2)
    assert [j.nickname for j in q.waiting()] == ["n3", "n1", "n2"]
    q.move(jobs[3].id, -5)                                       # clamped at the front
    assert q.position(jobs[3]) == 1
    assert q.remove(jobs[1].id) == "left the queue" and jobs[1].state == "cancelled"
    with pytest.raises(QueueError):
        q.move(jobs[0].id, 1)                                    # the running job does not move
    with pytest.raises(QueueError):
        q.remove("nope")
    for j in (jobs[2], jobs[3]):
        q.remove(j.id)
    assert q.remove(jobs[0].id) == "stopping after the current step"
    _wait(lambda: jobs[0].done)
    assert jobs[0].state == "stopped" and q.current() is jobs[0]   # the last job that trained stays readable
    assert q.running() is None and q.jobs() == []
