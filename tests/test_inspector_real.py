"""The token inspector on the real default model (issue 26's "Done when"): a 2-update PPO run with
batch 8, then ``inspect``; the shipped DPO example (its saved policy and its training pairs,
``pairs.jsonl``) inspected against an independent forward. The same recomputations as
``test_inspector.py`` (where a DPO run writes its pairs and is inspected, on the tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_inspector import PPO_KEYS, SIDE_TOKEN_KEYS, TOKEN_KEYS, independent_logps, inspect_json, recompute

from rlhf_demo.cli.main import main

EXAMPLE_DPO = Path(__file__).resolve().parents[1] / "rlhf_demo" / "assets" / "example-dpo"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ppo_two_updates_then_inspect(default_bundle, tmp_path, capsys):
    run = tmp_path / "ppo"
    argv = ["train", "--algo", "ppo", "--steps", "2", "--batch-size", "8", "--no-eval-final", "--gold-reward", "none"]
    assert main([*argv, "--out", str(run), "--quiet"]) == 0
    view = inspect_json(capsys, run, "--step", 2, "--episode", 1)
    assert PPO_KEYS <= set(view) and (view["step"], view["episode"], view["episodes"]) == (2, 1, 8)
    assert len(view["tokens"]) == 12 and all(set(t) == TOKEN_KEYS for t in view["tokens"])
    rewards, adv, returns = recompute(view)
    for t, r, a, g in zip(view["tokens"], rewards, adv, returns):
        assert t["reward"] == pytest.approx(r, abs=1e-3)
        assert t["advantage_raw"] == pytest.approx(a, abs=1e-3)
        assert t["return"] == pytest.approx(g, abs=1e-3)
    assert any(t["ratio"] != 1.0 for t in view["tokens"])  # the last of 2 epochs ran on a moved policy
    size = sum(p.stat().st_size for p in (run / "tokens").iterdir())
    assert size < 2 * 40_000  # 8 × 12 tokens an update


def test_the_shipped_dpo_example_inspected_against_an_independent_forward(default_bundle, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rlhf_demo.models.loading import default_model_dir

    run = EXAMPLE_DPO
    view = inspect_json(capsys, run, "--pair", 0)
    pair = json.loads((run / "pairs.jsonl").read_text().splitlines()[0])
    summary = json.loads((run / "summary.json").read_text())
    assert view["prompt"] == pair["prompt"] and view["pairs"] == summary["n_pairs"] and view["step"] >= 1
    base_dir = default_model_dir()
    ref = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), run / "policy").eval()
    tok = default_bundle.tokenizer
    for side in ("chosen", "rejected"):
        part = view[side]
        ids = [t["token_id"] for t in part["tokens"]]
        assert all(set(t) == SIDE_TOKEN_KEYS for t in part["tokens"]) and ids[-1] == tok.eos_token_id
        assert [t["logp_policy"] for t in part["tokens"]] == pytest.approx(independent_logps(policy, view["prompt_ids"], ids), abs=1e-3)
        assert [t["logp_ref"] for t in part["tokens"]] == pytest.approx(independent_logps(ref, view["prompt_ids"], ids), abs=1e-3)
        assert sum(t["implicit_reward"] for t in part["tokens"]) == pytest.approx(part["reward"], abs=1e-3)
    assert view["margin"] == pytest.approx(view["chosen"]["reward"] - view["rejected"]["reward"], abs=1e-3)
