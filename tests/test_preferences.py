"""Preference data: upload validation (per-row errors, whole-file errors), the shipped set, synthesis."""

from __future__ import annotations

import json

import pytest

from rlhf_demo.data.preferences import (
    MAX_FILE_BYTES,
    PreferenceError,
    SynthConfig,
    load_preferences,
    parse_preferences,
    synthesize_pairs,
    to_csv,
)
from rlhf_demo.data.prompts import builtin_prompts
from rlhf_demo.rewards.functions import make_reward

GOOD = {"prompt": "This movie was", "chosen": " great", "rejected": " awful"}


def jsonl(*objs) -> bytes:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs).encode()


def test_jsonl_bad_rows_are_reported_and_good_rows_kept():
    data = jsonl(
        GOOD,
        "{not json",
        {"prompt": "x", "chosen": "y"},
        {**GOOD, "rejected": GOOD["chosen"]},
        {**GOOD, "chosen": [{"role": "assistant", "content": "hi"}]},
        {**GOOD, "score": 1.0},
        "",
    )
    out = parse_preferences(data, "up.jsonl")
    assert len(out) == 2
    assert out.rows[1]["score"] == 1.0
    assert [e.split(":")[0] for e in out.errors] == ["line 2", "line 3", "line 4", "line 5"]
    assert "missing rejected" in out.errors[1]
    assert "identical" in out.errors[2]
    assert "chat messages" in out.errors[3]
    assert "2 usable pairs" in out.summary()


def test_csv_round_trip_and_row_errors():
    text = to_csv([GOOD, {**GOOD, "prompt": "Another, with a comma"}]) + 'p,"",r\n'
    out = parse_preferences(text.encode(), "up.csv")
    assert [r["prompt"] for r in out.rows] == ["This movie was", "Another, with a comma"]
    assert out.errors == ["row 3: empty chosen or rejected response"]


@pytest.mark.parametrize(
    "data,name,match",
    [
        (b"", "a.jsonl", "empty"),
        (b"   \n", "a.csv", "empty"),
        ("prompt,chosen,rejected\ncaf\xe9,a,b\n".encode("latin-1"), "a.csv", "not UTF-8"),
        (b"text,label\nhello,1\n", "a.csv", "missing: prompt, chosen, rejected"),
        (jsonl({"text": "a", "label": 1}), "a.jsonl", "no prompt/chosen/rejected fields"),
        (jsonl("{oops", "[1"), "a.jsonl", "no usable preference pairs"),
        (b"x" * (MAX_FILE_BYTES + 1), "a.jsonl", "limit"),
        (jsonl(GOOD), "a.parquet", "unsupported file type"),
    ],
)
def test_whole_file_problems_raise_clear_errors(data, name, match):
    with pytest.raises(PreferenceError, match=match):
        parse_preferences(data, name)


def test_missing_file_and_offline_hub():
    with pytest.raises(PreferenceError, match="does not exist"):
        load_preferences("/nonexistent/prefs.jsonl")
    with pytest.raises(PreferenceError, match="could not load Hub dataset"):
        load_preferences("hf:nobody/no-such-dataset-xyz")


def test_shipped_set_is_valid_and_never_uses_heldout_openings():
    prefs = load_preferences("shipped")
    assert len(prefs) >= 300 and not prefs.errors
    train, heldout = builtin_prompts("train"), builtin_prompts("heldout")
    for row in prefs.rows:
        p = row["prompt"].strip()
        assert any(o.startswith(p) for o in train), p
        assert row["chosen_score"] > row["rejected_score"]
    # every held-out opening that is not also a training opening's prefix stays unseen
    prompts = {r["prompt"].strip() for r in prefs.rows}
    assert not any(h in prompts for h in heldout if not any(t.startswith(h) for t in train))


def test_synthesize_best_vs_worst(tiny_bundle):
    seen = []
    cfg = SynthConfig(n_prompts=4, cuts_per_prompt=2, samples=3, response_tokens=6, reward="length", seed=3)
    rows = synthesize_pairs(tiny_bundle.model, tiny_bundle.tokenizer, make_reward("length"), cfg, progress=lambda f, m: seen.append(f))
    assert 1 <= len(rows) <= 8
    assert seen[-1] == 1.0
    for r in rows:
        assert set(r) >= {"prompt", "chosen", "rejected"}
        assert r["chosen_score"] > r["rejected_score"]
        assert r["chosen"] != r["rejected"]
    again = synthesize_pairs(tiny_bundle.model, tiny_bundle.tokenizer, make_reward("length"), cfg)
    assert again == rows  # seeded


def test_synth_config_rejects_nonsense():
    with pytest.raises(ValueError, match="samples"):
        SynthConfig(samples=1).validate()
    with pytest.raises(ValueError, match="prompts"):
        SynthConfig(n_prompts=-1).validate()  # 0 = all of the training split
