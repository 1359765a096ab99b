"""Human labels: written at once, there after a restart or a killed process, exported as TRL pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlhf_demo.data.feedback import FeedbackStore, make_pair
from rlhf_demo.data.preferences import parse_preferences


def test_labels_survive_a_restart_and_export(tmp_path):
    path = tmp_path / "labels.jsonl"
    store = FeedbackStore(path)
    store.add("This movie was", " great", " bad", "A", labeller="s1")
    store.add("The plot", " dull", " clever", "B", labeller="s1")
    store.add("The plot", " ok", " fine", "tie", labeller="s2")
    store.add("The plot", " ok", " meh", "skip", labeller="s2")
    del store
    again = FeedbackStore(path)  # a new process would do exactly this
    assert again.counts() == {"A": 1, "B": 1, "tie": 1, "skip": 1, "pairs": 2, "total": 4}
    assert again.counts(labeller="s2")["total"] == 2
    assert again.export_pairs() == [
        {"prompt": "This movie was", "chosen": " great", "rejected": " bad"},
        {"prompt": "The plot", "chosen": " clever", "rejected": " dull"},
    ]
    out = again.export_jsonl(tmp_path / "pairs.jsonl")
    assert len(parse_preferences(out.read_bytes(), out.name)) == 2


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "labels.jsonl"
    FeedbackStore(path).add("p", " a", " b", "A")
    with open(path, "a") as f:
        f.write('{"id": "x", "label": "B", "prompt": "p", "resp')  # a crash mid-write
    store = FeedbackStore(path)
    assert store.counts()["total"] == 1
    store.add("p", " c", " d", "B")  # appending after a torn line still works
    assert FeedbackStore(path).counts()["total"] == 2


def test_a_killed_process_loses_no_label(tmp_path):
    path = tmp_path / "labels.jsonl"
    code = (
        "import os, signal\n"
        "from rlhf_demo.data.feedback import FeedbackStore\n"
        f"s = FeedbackStore({str(path)!r})\n"
        "for i in range(3):\n"
        "    s.add('prompt %d' % i, ' a', ' b', 'A')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode != 0  # it really was killed
    assert [r["prompt"] for r in FeedbackStore(path).records()] == ["prompt 0", "prompt 1", "prompt 2"]


def test_bad_labels_are_refused(tmp_path):
    store = FeedbackStore(tmp_path / "l.jsonl")
    with pytest.raises(ValueError, match="label"):
        store.add("p", " a", " b", "C")
    with pytest.raises(ValueError, match="no pair"):
        store.add("p", "", "", "A")
    assert not (tmp_path / "l.jsonl").exists()


def test_malformed_upload_keeps_the_good_rows():
    good = {"prompt": "p", "chosen": " a", "rejected": " b"}
    data = "\n".join([json.dumps(good), "garbage", json.dumps({"prompt": "q"}), json.dumps(good)]).encode()
    out = parse_preferences(data, "labels.jsonl")
    assert len(out.rows) == 2 and len(out.errors) == 2


def test_make_pair(tiny_bundle):
    q, a, b = make_pair(tiny_bundle.model, tiny_bundle.tokenizer, "This movie was really", query_tokens=3, response_tokens=5, seed=1)
    assert q == "This movie was"
    assert a and b and a != b


def test_pairs_drawn_together_come_from_one_batch(tiny_bundle):
    """make_pairs: each pair keeps its own (cut) prompt; concurrent draws through labelling.PAIRS share one
    generate (counted by SharedWork.batches), and each caller gets its own pair."""
    import threading

    from rlhf_demo.data.feedback import make_pairs
    from rlhf_demo.shared_work import SharedWork

    pairs = make_pairs(
        tiny_bundle.model, tiny_bundle.tokenizer, [("This movie was really", 3), ("I hated the plot", 2)], response_tokens=5, seed=1
    )
    assert [q for q, _, _ in pairs] == ["This movie was", "I hated"]
    assert all(a and b for _, a, b in pairs)

    work, calls = SharedWork(lock=threading.Lock(), max_items=16, cache_size=1, ttl_s=0.0), []

    def run_batch(items):
        calls.append(len(items))
        return make_pairs(tiny_bundle.model, tiny_bundle.tokenizer, items, response_tokens=4, seed=0)

    gate, out = threading.Lock(), {}
    gate.acquire()  # hold the model so that all six wait, then release them together
    work.lock = gate
    threads = [
        threading.Thread(target=lambda i=i: out.__setitem__(i, work.run(f"k{i}", (4, 1.0), (f"Prompt number {i} here", None), run_batch)))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    import time

    time.sleep(0.3)
    gate.release()
    for t in threads:
        t.join(timeout=60)
    assert sorted(out) == list(range(6)) and [q for q, _, _ in (out[i] for i in range(6))] == [f"Prompt number {i} here" for i in range(6)]
    assert sum(calls) == 6 and len(calls) <= 2  # one batch (two if a thread came late), never six
