"""GRPO (``trl.GRPOTrainer`` behind our generator trainer): on a tiny model the LoRA adapter moves while
the reference (adapter off) does not, and each record's reward is the mean of the step's groups; bad
input is one clear line before any model loads; one short real-model run through the CLI writes a
run folder with reward_mean and kl in every step and a policy that loads (integration)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from rlhf_demo.cli.main import main
from rlhf_demo.grpo.config import GRPOConfig
from rlhf_demo.runs.folder import read_metrics


def chars(texts: list[str]) -> list[float]:
    """A reward that differs between almost any two completions (characters / 10), so every group has signal."""
    return [len(t) / 10.0 for t in texts]


def test_tiny_model_adapter_moves_reference_stays(tiny_model_dir):
    from rlhf_demo.grpo.trainer import GRPOTrainer
    from rlhf_demo.models.loading import load_model

    cfg = GRPOConfig.preset(
        "quick-cpu",
        model=str(tiny_model_dir),
        steps=2,
        batch_size=4,
        num_generations=2,
        response_tokens=4,
        num_iterations=1,
        eval_every=0,
        eval_at_start=False,
        kl_stop=0.0,
        max_seconds=0.0,
        device="cpu",
    )
    base = load_model(str(tiny_model_dir), device="cpu", dtype=torch.float32).model.eval()
    ids = torch.tensor([[1, 200, 300, 400, 500]])
    with torch.no_grad():
        base_logits = base(ids).logits
    trainer = GRPOTrainer(cfg, prompts=["The film was", "I watched it and", "Acting aside, the plot"], reward_fn=chars)
    records = list(trainer.train())

    steps = [r for r in records if r["step"] > 0]
    assert [r["step"] for r in steps] == [1, 2] and trainer.status == "finished"
    for r in steps:
        rows = r["samples"]
        assert len(rows) == cfg.batch_size
        assert set(Counter(row["query"] for row in rows).values()) == {cfg.num_generations}  # groups of G
        assert r["reward_mean"] == pytest.approx(sum(row["reward"] for row in rows) / len(rows), abs=1e-5)
        assert [row["reward"] for row in rows] == pytest.approx(chars([row["query"] + row["response"] for row in rows]))
        assert "kl" in r and r["kl"] >= 0.0  # β > 0: TRL logs its k3 batch KL
    assert "eval/reward_mean" in steps[-1] and "eval/kl" in steps[-1]  # held-out at the end

    lora_b = [p for n, p in trainer.policy.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # B starts at 0: training moved it
    model = trainer.policy.model.eval()
    with torch.no_grad():
        policy_logits = model(input_ids=ids).logits
        with trainer.policy.reference() as ref:
            ref_logits = ref(input_ids=ids).logits
    assert torch.allclose(ref_logits, base_logits, atol=1e-5)  # the reference did not move
    assert not torch.allclose(policy_logits, base_logits, atol=1e-5)  # the policy did


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--batch-size", "6", "--num-generations", "4"], "must be a multiple of num_generations"),
        (["--num-generations", "1"], "num_generations must be between"),
        (["--response-tokens", "4:8"], "response_tokens must be a whole number"),
        (["--gold-reward", "vader-positive"], "--gold-reward: not a GRPO setting"),
        (["--preset", "nonsense"], "unknown GRPO preset"),
    ],
)
def test_bad_input_is_one_clear_line(extra, match, tmp_path, capsys):
    code = main(["train", "--algo", "grpo", "--out", str(tmp_path / "r"), "--steps", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and match in err and err.count("\n") == 1
    assert "Traceback" not in err and not (tmp_path / "r").exists()


@pytest.mark.integration
def test_two_real_model_steps_through_the_cli(default_bundle, tmp_path):
    from rlhf_demo.models.loading import load_model

    run = tmp_path / "grpo"
    # batch 8: one group of the preset's G = 8 (the preset's 32 is four groups: the same code, four times the time)
    argv = ["train", "--algo", "grpo", "--steps", "2", "--batch-size", "8", "--out", str(run), "--no-eval-at-start", "--quiet"]
    assert main(argv) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == "grpo" and cfg["steps"] == 2 and cfg["num_generations"] == 8 and cfg["num_iterations"] == 4
    assert cfg["batch_size"] == 8
    df = read_metrics(run)
    steps = df[df["step"] > 0]
    assert list(steps["step"]) == [1, 2]
    for col in ("kl", "loss", "grad_norm"):
        assert steps[col].notna().all(), col
    assert steps["reward_mean"].notna().tolist() == [True, False]  # μ = 4: step 1 generates, step 2 reuses
    assert steps["eval/reward_mean"].notna().iloc[-1] and steps["eval/kl"].iloc[-1] > 0  # held-out at the end
    policy = load_model(str(run / "policy"), device="cpu")
    ids = torch.tensor([default_bundle.tokenizer("The movie was")["input_ids"]])
    with torch.no_grad():
        moved = policy.model(input_ids=ids).logits - default_bundle.model(input_ids=ids).logits
    assert moved.abs().max() > 0  # the saved adapter is the trained one
