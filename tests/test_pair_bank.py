"""The bank of pairs sampled before the lesson (``data/pair_bank.py``) and the pool that hands it out first."""

from __future__ import annotations

import json
import random

from rlhf_demo.data.pair_bank import BANK, SETTING, labelled_pairs, load_bank
from rlhf_demo.data.pair_pool import PairPool
from rlhf_demo.data.prompts import builtin_prompts
from rlhf_demo.models.loading import GGUF_FILE


def _write(path, **over):
    bank = {"model": "m.gguf", "response_tokens": 16, "temperature": 1.0, "pairs": [[f"q{i}", f"a{i}", f"b{i}"] for i in range(10)]}
    bank.update(over)
    path.write_text(json.dumps(bank))
    return path


def test_bank_loads_only_for_its_model_and_setting(tmp_path):
    p = _write(tmp_path / "bank.json")
    assert len(load_bank(p, model="m.gguf", response_tokens=16, temperature=1.0)) == 10
    assert load_bank(p, model="other.gguf", response_tokens=16, temperature=1.0) == []
    assert load_bank(p, model="m.gguf", response_tokens=24, temperature=1.0) == []
    assert load_bank(p, model="m.gguf", response_tokens=16, temperature=0.7) == []
    assert load_bank(tmp_path / "missing.json", model="m.gguf", response_tokens=16, temperature=1.0) == []
    (tmp_path / "bad.json").write_text("{not json")
    assert load_bank(tmp_path / "bad.json", model="m.gguf", response_tokens=16, temperature=1.0) == []


def test_bank_is_shuffled_and_leaves_out_labelled_pairs(tmp_path):
    p = _write(tmp_path / "bank.json")
    records = [
        {"prompt": "q3", "response_a": "a3", "response_b": "b3", "label": "A"},
        {"prompt": "q5", "response_a": "a5", "response_b": "x"},
    ]
    pairs = load_bank(p, model="m.gguf", response_tokens=16, temperature=1.0, labelled=labelled_pairs(records), rng=random.Random(1))
    assert ("q3", "a3", "b3") not in pairs and ("q5", "a5", "b5") in pairs  # only the exact labelled pair leaves
    assert len(pairs) == 9 and len(set(pairs)) == 9
    assert pairs != sorted(pairs, key=lambda t: int(t[0][1:]))  # a new order (seeded: this one differs from the file's)


def test_pool_hands_out_the_bank_first_and_refills_only_when_low():
    made = []

    def make(n):
        made.append(n)
        return [("live", "a", "b")] * n

    pool = PairPool(make, size=4, low=2, batch=2, ahead=[("bank", str(i), "") for i in range(5)])
    first = [pool.take() for _ in range(2)]
    assert [p[0] for p in first] == ["bank", "bank"] and made == []  # 3 left > low: nothing sampled
    pool.take()  # 2 left = low: a refill starts
    pool.refill(wait=True)
    assert made and all(n <= 2 for n in made)
    rest = [pool.take() for _ in range(len(pool))]
    assert [p[0] for p in rest[:2]] == ["bank", "bank"]  # the bank's pairs still go first
    assert {p[0] for p in rest[2:]} == {"live"}


def test_shipped_bank_is_the_default_models_pairs_at_the_feedback_setting():
    bank = json.loads(BANK.read_text(encoding="utf-8"))
    assert (bank["model"], bank["response_tokens"], bank["temperature"]) == (GGUF_FILE, *SETTING)
    pairs = load_bank(BANK, model=GGUF_FILE, response_tokens=SETTING[0], temperature=SETTING[1])
    assert len(pairs) >= 300  # a class of 30 labelling 10 pairs each, half of them shared
    openings = builtin_prompts("train")
    for q, a, b in pairs:
        assert any(o.startswith(q) for o in openings), q  # opened from a training prompt, cut at a word
        assert a.strip() and b.strip()
    assert sum(a != b for _, a, b in pairs) >= 0.95 * len(pairs)  # two samples, not one twice
