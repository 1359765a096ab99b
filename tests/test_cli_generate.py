"""``python -m rlhf_demo generate``: the --json schema, the table, and clear errors (exit 2)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LogitsProcessorList, TopKLogitsWarper

from rlhf_demo.cli.main import main

STEP_KEYS = {"token", "token_id", "prob", "raw_prob", "entropy", "top"}
TOP_KEYS = {"token", "token_id", "raw_prob", "prob"}


def _run_json(capsys, *argv) -> dict:
    assert main(["generate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.integration
def test_issue_example_schema_and_kept_probs_sum_to_one(capsys, default_bundle):
    out = _run_json(capsys, "--prompt", "The movie was", "--max-new-tokens", "8", "--top-k", "5", "--seed", "0")
    assert isinstance(out["model"], str) and len(out["sequences"]) == 1
    seq = out["sequences"][0]
    assert isinstance(seq["text"], str) and 1 <= len(seq["steps"]) <= 8
    tok, model = default_bundle.tokenizer, default_bundle.model
    prefix = tok("The movie was", add_special_tokens=False)["input_ids"]
    P, ids = len(prefix), prefix + [s["token_id"] for s in seq["steps"]]
    with torch.no_grad():  # independent check: one plain forward pass gives every step's raw logits
        all_raw = model(torch.tensor([ids])).logits[0, P - 1 : len(ids) - 1].float()  # [T, V]
    warpers = LogitsProcessorList([TopKLogitsWarper(5)])
    for t, step in enumerate(seq["steps"]):
        assert STEP_KEYS <= set(step) and all(TOP_KEYS <= set(c) for c in step["top"])
        kept = [c["prob"] for c in step["top"] if c["prob"] > 0]
        assert len(kept) == 5 and sum(kept) == pytest.approx(1.0, abs=1e-4)
        raw = all_raw[t]  # then transformers' top-k warper and a softmax
        want = torch.softmax(warpers(torch.tensor([ids[: P + t]]), raw[None].clone()), -1)[0]
        raw_p = torch.softmax(raw, -1)
        for c in step["top"]:
            assert c["prob"] == pytest.approx(float(want[c["token_id"]]), abs=1e-4)
            assert c["raw_prob"] == pytest.approx(float(raw_p[c["token_id"]]), abs=1e-4)
        assert step["prob"] == pytest.approx(float(want[step["token_id"]]), abs=1e-4)
        assert step["entropy"] == pytest.approx(float(-(raw_p * raw_p.clamp_min(1e-30).log()).sum()), abs=1e-3)
        assert step["token"] == tok.decode([step["token_id"]])


def test_table_and_json_on_tiny_model(capsys, tiny_model_dir):
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_model_dir),
                "--prompt",
                "Hello there",
                "--max-new-tokens",
                "4",
                "--num-return-sequences",
                "2",
                "--top",
                "3",
                "--top-p",
                "0.9",
                "--repetition-penalty",
                "1.2",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "RepetitionPenaltyLogitsProcessor(penalty=1.2) → TopKLogitsWarper(top_k=50) → TopPLogitsWarper(top_p=0.9)" in table
    assert "sequence 1:" in table and "sequence 2:" in table and table.count("  top candidates") == 2
    out = _run_json(capsys, "--model", str(tiny_model_dir), "--prompt", "Hello", "--max-new-tokens", "3", "--greedy", "--top", "4")
    assert out["mode"] == "greedy" and all(len(s["top"]) == 4 for s in out["sequences"][0]["steps"])
    beams = _run_json(capsys, "--model", str(tiny_model_dir), "--prompt", "Hello", "--max-new-tokens", "3", "--num-beams", "3")
    assert beams["mode"] == "beam" and len(beams["sequences"]) == 3 and all(s["score"] is not None for s in beams["sequences"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "x", "--temperature", "-1"], "temperature must be between"),
        (["--prompt", "x", "--temperature", "nan"], "temperature must be a finite number"),
        (["--prompt", "x", "--top-p", "0"], "top_p must be > 0"),
        (["--prompt", "x", "--max-new-tokens", "1000000"], "max_new_tokens must be between 1 and 512"),
        (["--prompt", "x", "--num-return-sequences", "9"], "num_samples must be between 1 and 8"),
        (["--prompt", "x", "--word-bias", "great"], "WORD:BIAS"),
        (["--prompt", "x", "--top", "0"], "--top must be between"),
        (["--prompt", "x", "--model", "/no/such/folder"], "does not exist"),
        (["--prompt", "x", "--model", "nobody/no-such-model"], "Hub"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, argv, message):
    assert main(["generate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_top_k_above_vocabulary(capsys, tiny_model_dir):
    assert main(["generate", "--model", str(tiny_model_dir), "--prompt", "x", "--top-k", "100000"]) == 2
    assert "larger than the vocabulary (49152 tokens)" in capsys.readouterr().err
