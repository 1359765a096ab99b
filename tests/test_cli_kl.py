"""``python -m rlhf_demo kl`` on the real default model (integration)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.cli.main import main

PROMPT, RESPONSE = "The movie was", " great fun"


def _run(capsys, *argv) -> dict:
    assert main(["kl", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def lora_policy_dir(tmp_path_factory, default_bundle):
    """A 'tuned' policy: a LoRA adapter with random (non-zero) weights on the default model, saved as
    a run's policy folder would be. Built on a separate copy, so the shared registry model is untouched."""
    from peft import LoraConfig, get_peft_model

    from rlhf_demo.models.loading import load_model

    base = load_model("default", device="cpu", dtype=torch.float32)
    torch.manual_seed(0)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base.model, cfg)
    out = tmp_path_factory.mktemp("lora-policy")
    peft_model.save_pretrained(out)
    (out / "base_model.txt").write_text("default\n")
    return out


@pytest.mark.integration
def test_default_against_itself_gives_exact_zeros(capsys, default_bundle):
    out = _run(capsys, "--prompt", PROMPT, "--response", RESPONSE, "--json")
    n = len(default_bundle.tokenizer(RESPONSE, add_special_tokens=False).input_ids)
    assert len(out["tokens"]) == n == 2
    assert "".join(t["token"] for t in out["tokens"]) == RESPONSE
    for t in out["tokens"]:
        assert set(t) == {"token", "logp_policy", "logp_ref", "k1", "k2", "k3", "kl_exact"}
        assert t["k1"] == t["k2"] == t["k3"] == t["kl_exact"] == 0.0
        assert t["logp_policy"] == t["logp_ref"] < 0
    assert out["total"] == {"k1": 0.0, "k2": 0.0, "k3": 0.0, "kl_exact": 0.0}


@pytest.mark.integration
def test_tuned_policy_exact_kl_matches_explicit_vocabulary_sum(capsys, default_bundle, lora_policy_dir):
    out = _run(capsys, "--policy", str(lora_policy_dir), "--prompt", PROMPT, "--response", RESPONSE, "--json")
    tok = default_bundle.tokenizer
    q = tok(PROMPT, add_special_tokens=False).input_ids
    r = tok(RESPONSE, add_special_tokens=False).input_ids
    from rlhf_demo.models.loading import REGISTRY

    policy = REGISTRY.get(str(lora_policy_dir)).model  # the merged adapter the command used
    ids = torch.tensor([q + r])
    with torch.no_grad():
        lp = F.log_softmax(policy(ids).logits[0].double(), -1)
        lq = F.log_softmax(default_bundle.model(ids).logits[0].double(), -1)
    total = 0.0
    for t, entry in enumerate(out["tokens"]):
        pos = len(q) - 1 + t
        explicit = math.fsum(p * (a - b) for p, a, b in zip(lp[pos].exp().tolist(), lp[pos].tolist(), lq[pos].tolist()))
        assert entry["kl_exact"] >= 0
        assert entry["kl_exact"] == pytest.approx(explicit, rel=1e-4, abs=1e-6)
        logr = entry["logp_policy"] - entry["logp_ref"]
        assert entry["k1"] == pytest.approx(logr, abs=1e-6)
        assert entry["k3"] == pytest.approx(math.expm1(-logr) + logr, abs=1e-6) and entry["k3"] >= 0
        total += explicit
    assert out["total"]["kl_exact"] == pytest.approx(total, rel=1e-4)
    assert out["total"]["kl_exact"] > 1e-3  # the adapter really changed the model


@pytest.mark.integration
def test_generated_response_and_text_output(capsys, default_bundle):
    out = _run(capsys, "--prompt", PROMPT, "--max-new-tokens", "5", "--policy-temperature", "1.5", "--json")
    assert 1 <= len(out["tokens"]) <= 5
    assert all(t["kl_exact"] > 0 for t in out["tokens"])  # T ≠ 1: π differs from π_ref everywhere
    assert main(["kl", "--prompt", PROMPT, "--response", RESPONSE]) == 0
    text = capsys.readouterr().out
    assert "KL exact" in text and "top candidates" in text


def test_empty_response_is_a_clear_error():
    p = subprocess.run(
        [sys.executable, "-m", "rlhf_demo", "kl", "--prompt", PROMPT, "--response", "", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "error: --response is empty" in p.stderr and "Traceback" not in p.stderr
