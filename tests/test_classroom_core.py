"""Classroom core: identities, the teacher key's throttle, owners and pins on disk, labeller agreement
against a hand computation, the class's labels by majority vote, teacher actions on the queue."""

from __future__ import annotations

import time

import pytest

from rlhf_demo.classroom.agreement import agreement, majority
from rlhf_demo.classroom.identity import check_proof, clean_nickname, key_matches, new_token, teacher_proof, user_id, valid_token
from rlhf_demo.classroom.key_guard import KeyGuard
from rlhf_demo.classroom.ownership import ClassRecord, OwnershipError
from rlhf_demo.data.feedback import FeedbackStore
from rlhf_demo.ppo.config import preset
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.training.queue import QueueError, TrainingQueue


def _wait(cond, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def builder(model_dir, steps=2):
    cfg = preset(
        "quick-cpu",
        model=str(model_dir),
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=steps,
        response_tokens=(4, 4),
        eval_final=False,
        device="cpu",
        kl_budget=0.0,
    ).validate()
    return lambda stop: PPOTrainer(cfg, prompts=["The movie was", "I watched this film"], stop=stop)


def test_tokens_ids_and_teacher_proofs():
    t = new_token()
    assert valid_token(t) and not valid_token("x") and not valid_token({"a": 1})
    assert user_id(t) == user_id(t) and user_id(t) != user_id(new_token()) and t not in user_id(t)
    proof = teacher_proof(t, key="k3y")
    assert check_proof(t, proof, key="k3y")
    assert not check_proof(new_token(), proof, key="k3y")  # worthless in another browser
    assert not check_proof(t, proof, key="other")  # or under another key
    assert not check_proof(t, proof, key="") and teacher_proof(t, key="") == ""
    assert key_matches("k3y", key="k3y") and not key_matches("k3y ", key="k3y") and not key_matches("", key="")


def test_nicknames_are_plain_text_and_short():
    assert clean_nickname("<img src=x onerror=alert(1)>", "fb") == "img srcx onerroralert1"
    assert clean_nickname("**bold** [link](http://x)", "fb") == "bold linkhttpx"
    assert len(clean_nickname("a" * 200, "fb")) == 24
    assert clean_nickname("   ", "fallback") == "fallback" and clean_nickname(None, "fb") == "fb"
    assert clean_nickname("Zoë O'Neil", "fb") == "Zoë O'Neil"


def test_wrong_keys_meet_a_growing_delay_per_identity():
    g = KeyGuard(base_s=2.0, max_s=30.0, free_wrong=100)
    assert g.wait_s("id1", "1.2.3.4", now=0.0) == 0.0
    assert [g.failed("id1", "1.2.3.4", now=0.0) for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert g.wait_s("id1", "1.2.3.4", now=10.0) == 20.0
    assert g.wait_s("id2", "1.2.3.4", now=10.0) == 0.0  # another identity at the same address
    g.succeeded("id1")
    assert g.wait_s("id1", "1.2.3.4", now=10.0) == 0.0


def test_a_class_guessing_wrong_never_locks_the_teacher_out():
    """The issue: 4 wrong keys from one address refused the right key for 8 s. Here students at the
    teacher's address exhaust the address budget, yet the teacher's identity is still evaluated."""
    g = KeyGuard(base_s=2.0, free_wrong=3, wrong_per_address=10, window_s=600)
    t = 0.0
    for i in range(40):  # 40 students, one wrong guess each
        assert g.wait_s(f"s{i}", "school", now=t) == 0.0
        g.failed(f"s{i}", "school", now=t)
    assert g.wait_s("teacher", "school", now=t) == 0.0  # no wrong key of its own: evaluated at once
    g.failed("teacher", "school", now=t)  # the teacher mistypes once: their own 2 s only
    assert g.wait_s("teacher", "school", now=t + 2.0) == 0.0
    # one student keeps guessing: past its free wrong keys, the exhausted address budget stops it
    for t in (2.0, 6.0, 14.0):  # each as soon as its own throttle allows
        assert g.wait_s("s0", "school", now=t) == 0.0 or t == 14.0
        g.failed("s0", "school", now=t)
    assert g.wait_s("s0", "school", now=30.0) > 0  # own 16 s over, but the address budget is empty
    # anonymous clients (a fresh API session per guess) share the address budget from their first guess
    assert g.wait_s("anon-1", "school", anonymous=True, now=t) > 0
    assert g.wait_s("anon-1", "elsewhere", anonymous=True, now=t) == 0.0


def test_client_address_trusts_forwarded_for_only_from_configured_proxies(monkeypatch):
    from rlhf_demo.classroom.address import Trust, client_address, key_of, resolve

    none, proxy, space = Trust(""), Trust("10.0.0.1, 10.1.0.0/16"), Trust("", on_space=True)
    assert resolve("127.0.0.1", "6.6.6.6", none) == "127.0.0.1"  # spoofed: ignored
    assert resolve("10.0.0.1", "6.6.6.6, 5.5.5.5", proxy) == "5.5.5.5"  # rightmost untrusted
    assert resolve("10.0.0.1", "6.6.6.6, 5.5.5.5, 10.1.2.3", proxy) == "5.5.5.5"  # trusted hops skipped
    assert resolve("9.9.9.9", "5.5.5.5", proxy) == "9.9.9.9"  # peer not a proxy
    assert resolve("172.16.0.9", "6.6.6.6, 5.5.5.5:4431", space) == "5.5.5.5"  # the platform's one hop
    assert resolve("10.0.0.1", "", proxy) == "10.0.0.1"
    assert key_of("2001:db8::1") == key_of("2001:db8::ffff") == "2001:db8::/64"
    assert key_of("::ffff:1.2.3.4") == "1.2.3.4"

    class Req:  # what Starlette gives: the direct peer and the headers
        client = type("C", (), {"host": "127.0.0.1"})()
        headers = {"x-forwarded-for": "6.6.6.6"}

    for k in ("FORWARDED_ALLOW_IPS", "RLHF_DEMO_FORWARDED_ALLOW_IPS", "SPACE_ID"):
        monkeypatch.delenv(k, raising=False)
    assert client_address(Req()) == "127.0.0.1"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    assert client_address(Req()) == "6.6.6.6"


def test_token_buckets_and_the_pending_event_limit():
    from rlhf_demo.classroom.class_limits import ClassLimits, pending_refusal
    from rlhf_demo.classroom.rate import Buckets

    b = Buckets(burst=3, per_s=1.0)
    assert [b.take("k", now=0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    assert b.take("other", now=0.0) == 0.0 and b.take("k", now=1.0) == 0.0
    lim = ClassLimits(pending_per_session=8, pending_per_address=100)
    one = [("s1", "a")] * 8
    assert "this page" in pending_refusal(one, "s1", "a", lim)
    assert pending_refusal(one, "s2", "a", lim) == ""
    class_of_30 = [(f"s{i}", "school") for i in range(30) for _ in range(3)]  # 90 events, 3 each
    assert pending_refusal(class_of_30, "s0", "school", lim) == ""
    abuser = [(f"x{i}", "school") for i in range(100)]  # 100 sessions
    assert "your network" in pending_refusal(abuser, "new", "school", lim)


def test_class_limits_from_the_environment(monkeypatch):
    from rlhf_demo.classroom.class_limits import ClassLimits

    monkeypatch.setenv("RLHF_DEMO_LABELS_TOTAL", "50")
    monkeypatch.setenv("RLHF_DEMO_LABEL_GAP_S", "0.5")
    lim = ClassLimits.from_env()
    assert lim.labels_total == 50 and lim.label_gap_s == 0.5 and lim.pending_per_session == 12
    monkeypatch.setenv("RLHF_DEMO_QUEUE_SIZE", "lots")
    with pytest.raises(ValueError, match="RLHF_DEMO_QUEUE_SIZE must be a number"):
        ClassLimits.from_env()


def test_roster_join_codes_proofs_and_identity_minting(tmp_path, monkeypatch):
    from rlhf_demo.classroom.class_limits import ClassLimits
    from rlhf_demo.classroom.roster import Roster, RosterError, check_join_proof, class_code, join_proof

    monkeypatch.delenv("RLHF_DEMO_CLASS_CODE", raising=False)
    code = class_code(tmp_path)
    assert len(code) == 6 and class_code(tmp_path) == code  # made once, kept
    monkeypatch.setenv("RLHF_DEMO_CLASS_CODE", "abc-123")
    assert class_code(tmp_path) == "ABC123"
    r = Roster(tmp_path, ClassLimits(new_identities_per_address=30, wrong_codes_per_address=2))
    for i in range(30):  # a class of 30 behind one address
        r.join(f"u{i}", f"n{i}", " abc 123 ", "ABC123", "school")
    assert all(r.joined(f"u{i}") for i in range(30))
    with pytest.raises(RosterError, match="too many new visitors"):
        r.join("u30", "n", "ABC123", "ABC123", "school")  # the 31st new identity: minting capped
    r.join("u0", "again", "ABC123", "ABC123", "school")  # a known identity joins again freely
    for _ in range(2):
        with pytest.raises(RosterError, match="not the class code"):
            r.join("v", "n", "WRONG", "ABC123", "home")
    with pytest.raises(RosterError, match="too many wrong class codes"):
        r.join("v", "n", "ABC123", "ABC123", "home")
    p = join_proof("tok", "ABC123", "secret")
    assert check_join_proof("tok", p, "ABC123", "secret") and not check_join_proof("tok", p, "NEWCODE", "secret")
    assert not check_join_proof("other", p, "ABC123", "secret")
    r.remove("u3")
    assert Roster(tmp_path).removed() == {"u3"}  # survives a restart


def test_sessions_are_capped_and_freed_after_unload():
    from rlhf_demo.classroom.identity import User
    from rlhf_demo.ui.context import Sessions

    s = Sessions(max_sessions=3, grace_s=60)
    freed = []
    s.on_free.append(freed.append)
    for i in range(5):
        s.bind(f"p{i}", User(f"u{i}", "n"))
    assert len(s) == 3 and freed == ["p0", "p1"]  # least recently used first
    s.close("p2", now=0.0)
    assert s.sweep(now=30.0) == [] and s.get("p3") is not None  # within the grace
    s.close("p3", now=0.0)
    s.get("p3")  # the page came back: kept
    assert s.sweep(now=61.0) == ["p2"] and s.get("p2") is None and s.get("p3") is not None
    assert freed == ["p0", "p1", "p2"]


def test_label_gate_rates_caps_joining_and_removal(tmp_path, monkeypatch):
    from rlhf_demo.classroom import limits
    from rlhf_demo.classroom.class_limits import ClassLimits
    from rlhf_demo.classroom.identity import User
    from rlhf_demo.ui.context import AppContext, Sessions

    monkeypatch.setenv("RLHF_DEMO_TEACHER_KEY", "k" * 20)
    monkeypatch.setenv("RLHF_DEMO_FEEDBACK", str(tmp_path / "labels.jsonl"))
    ctx = AppContext(
        runs_dir=tmp_path,
        sessions=Sessions(),
        class_limits=ClassLimits(label_burst=2, label_gap_s=1.0, labels_per_identity=3, labels_total=5),
    )

    class Req:
        def __init__(self, s):
            self.session_hash, self.client, self.headers = s, type("C", (), {"host": "10.0.0.7"})(), {}

    a, b = Req("sa"), Req("sb")
    ctx.sessions.bind("sa", User("ua", "ann"))
    ctx.sessions.bind("sb", User("ub", "bob"))
    with pytest.raises(limits.LimitError, match="join the class first"):
        ctx.gate(a, "label")
    with pytest.raises(limits.LimitError, match="join the class first"):
        ctx.gate(a, "train")
    ctx.roster.rejoin("ua", "ann")
    ctx.roster.rejoin("ub", "bob")
    store = FeedbackStore(tmp_path / "labels.jsonl")
    assert ctx.gate(a, "label").id == "ua"
    store.add("q", " a", " b", "A", labeller="ua")
    ctx.gate(a, "label")
    store.add("q", " a", " b", "A", labeller="ua")
    with pytest.raises(limits.LimitError, match="slow down"):  # the burst is used up
        ctx.gate(a, "label")
    time.sleep(1.05)
    ctx.gate(a, "label")
    store.add("q", " a", " b", "A", labeller="ua")
    time.sleep(1.05)
    with pytest.raises(limits.LimitError, match="the most one person"):  # 3 per identity
        ctx.gate(a, "label")
    for _ in range(2):
        ctx.gate(b, "label")
        store.add("q", " a", " b", "B", labeller="ub")
    time.sleep(1.05)
    with pytest.raises(limits.LimitError, match="pool is full"):  # 5 in total
        ctx.gate(b, "label")
    assert store.tally() == {"ua": 3, "ub": 2}
    assert store.remove_labeller("ua") == 3 and store.tally() == {"ub": 2}  # out of the pool, kept aside
    assert len(list(tmp_path.glob("labels-removed-*.jsonl"))) == 1
    ctx.roster.remove("ua")
    with pytest.raises(limits.LimitError, match="took your labels out"):
        ctx.gate(a, "label")


def test_owners_and_pins_survive_a_new_record_and_stay_inside_the_runs_folder(tmp_path):
    run = tmp_path / "ppo-1"
    run.mkdir()
    (run / "config.json").write_text("{}")
    rec = ClassRecord(tmp_path)
    rec.set_owner(run, "u1", "calm otter")
    rec.pin(run)
    again = ClassRecord(tmp_path)  # a restart reads the same files
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
    recs = [
        dict(pair_id="p1", labeller="u1", label="A"),
        dict(pair_id="p1", labeller="u2", label="A"),
        dict(pair_id="p1", labeller="u3", label="B"),
        dict(pair_id="p2", labeller="u1", label="B"),
        dict(pair_id="p2", labeller="u2", label="B"),
        dict(pair_id="p3", labeller="u1", label="A"),
        dict(pair_id="p2", labeller="u3", label="skip"),
    ]
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
    assert store.open_pairs("u4", max_labellers=3)[0]["prompt"] == "r"  # the full pair (3 labellers) is not offered
    assert store.export_pairs("u1") == [{"prompt": "q", "chosen": " a", "rejected": " b"}]
    assert store.export_pairs() == [{"prompt": "q", "chosen": " b", "rejected": " a"}, {"prompt": "r", "chosen": " c", "rejected": " d"}]
    assert store.counts("u2")["total"] == 2 and store.counts()["total"] == 4
    assert store.labellers() == {"u2": 2, "u1": 1, "u3": 1}
    with pytest.raises(ValueError):
        store.add("q", " a", " b", "A", labeller="u1", pair_id="../../etc")
    kept = store.clear()
    assert store.counts()["total"] == 0 and len(FeedbackStore(kept).records()) == 4  # moved aside, not lost


def test_teacher_reorders_removes_and_stops_jobs(tiny_model_dir, tmp_path):
    q = TrainingQueue()
    jobs = [
        q.submit(f"u{i}", "ppo", tmp_path / f"r{i}", builder(tiny_model_dir, steps=500 if i == 0 else 2), nickname=f"n{i}")
        for i in range(4)
    ]
    _wait(lambda: len(jobs[0].records) >= 1)
    assert q.current() is jobs[0]
    assert [j.nickname for j in q.waiting()] == ["n1", "n2", "n3"]
    q.move(jobs[3].id, -2)
    assert [j.nickname for j in q.waiting()] == ["n3", "n1", "n2"]
    q.move(jobs[3].id, -5)  # clamped at the front
    assert q.position(jobs[3]) == 1
    assert q.remove(jobs[1].id) == "left the queue" and jobs[1].state == "cancelled"
    with pytest.raises(QueueError):
        q.move(jobs[0].id, 1)  # the running job does not move
    with pytest.raises(QueueError):
        q.remove("nope")
    for j in (jobs[2], jobs[3]):
        q.remove(j.id)
    assert q.remove(jobs[0].id) == "stopping after the current step"
    _wait(lambda: jobs[0].done)
    assert jobs[0].state == "stopped" and q.current() is jobs[0]  # the last job that trained stays readable
    _wait(lambda: q.running() is None and q.jobs() == [])  # the worker lets go of it just after marking it done
