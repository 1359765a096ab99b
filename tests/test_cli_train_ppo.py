"""``python -m rlhf_demo train --algo ppo`` end to end (tiny model; the real model: conftest's shared run)."""

import json
from pathlib import Path

import pytest

from rlhf_demo.cli.main import main


def test_train_ppo_writes_a_run_folder_then_generate_loads_it(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "ppo-tiny"
    rc = main(
        [
            "train",
            "--algo",
            "ppo",
            "--steps",
            "2",
            "--out",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--batch-size",
            "4",
            "--response-tokens",
            "4",
            "--ppo-epochs",
            "1",
            "--no-eval-final",
            "--kl-target",
            "2",
            "--kl-estimator",
            "k3",
            "--seed",
            "3",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Update 2/2" in text and "finished" in text
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    assert all({"step", "reward_mean", "reward_std", "objective/kl", "objective/kl_exact"} <= set(l) for l in lines)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["algo"] == "ppo" and cfg["kl_estimator"] == "k3" and cfg["kl_target"] == 2
    assert cfg["seed"] == 3 and cfg["response_tokens"] == [4, 4]
    assert (out / "samples.jsonl").read_text().count('"kind": "batch"') == 8
    assert (out / "policy" / "adapter_model.safetensors").exists()
    assert (out / "policy" / "base_model.txt").read_text().strip() == str(Path(tiny_model_dir).resolve())
    # the playground's command loads the trained policy
    rc = main(["generate", "--model", str(out / "policy"), "--prompt", "The movie was", "--max-new-tokens", "3", "--seed", "0"])
    assert rc == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--beta", "-1"], "beta must be between"),
        (["--lr", "0"], "lr must be between"),
        (["--steps", "100000"], "steps must be between"),
        (["--response-tokens", "abc"], "MIN:MAX"),
        (["--preset", "fast"], "unknown PPO preset"),
        (["--reward", "sentiment"], "unknown reward"),
        (["--prompts", "/no/such/prompts.txt"], "does not exist"),
        (["--kl-budget", "-1"], "kl_budget"),
        (["--kl-budget-lr-factor", "0"], "kl_budget_lr_factor"),
        (["--lora-layers", "-2"], "lora_layers"),
        (["--loss-type", "ipo"], "--loss-type: not a PPO setting"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, tmp_path, capsys, tiny_model_dir):
    rc = main(["train", "--algo", "ppo", "--out", str(tmp_path / "x"), "--model", str(tiny_model_dir)] + argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_flags_reach_the_config(tmp_path, tiny_model_dir):
    from rlhf_demo.cli.flags import config_from_args
    from rlhf_demo.cli.main import build_parser
    from rlhf_demo.ppo.config import PPOConfig

    args = build_parser().parse_args(
        [
            "train",
            "--algo",
            "ppo",
            "--out",
            str(tmp_path / "x"),
            "--model",
            str(tiny_model_dir),
            "--kl-budget",
            "4.5",
            "--lora-layers",
            "4",
            "--beta",
            "0.02",
            "--kl-budget-lr-factor",
            "0.5",
            "--value-grad-to-policy",
            "--query-tokens",
            "3:5",
            "--eval-at-seconds",
            "60,120",
        ]
    )
    cfg = config_from_args(PPOConfig, args)
    assert (cfg.kl_budget, cfg.lora_layers, cfg.beta, cfg.kl_budget_lr_factor) == (4.5, 4, 0.02, 0.5)
    assert cfg.value_grad_to_policy and cfg.query_tokens == (3, 5) and cfg.eval_at_seconds == (60.0, 120.0)


def test_existing_out_folder_is_refused(tmp_path, capsys, tiny_model_dir):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.jsonl").write_text("")
    rc = main(["train", "--algo", "ppo", "--out", str(tmp_path / "x"), "--model", str(tiny_model_dir)])
    assert rc == 2 and "not empty" in capsys.readouterr().err


@pytest.mark.integration
def test_smoke_command_on_the_default_model(real_ppo_run, capsys):
    """The quick preset on the real model through the CLI (conftest's shared run: 2 updates of batch 8,
    its final held-out evaluation included), then ``generate`` loads the trained policy."""
    out = real_ppo_run.path
    assert real_ppo_run.rc == 0, real_ppo_run.err[-2000:]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    assert (out / "policy" / "base_model.txt").read_text().strip() == "default"
    # the quick preset's shared trunk passed its check on the real model: only layers 22–29 run again
    assert json.loads((out / "summary.json").read_text())["trunk_layer"] == 22
    assert all(l["objective/kl_exact"] >= 0 for l in lines)
    capsys.readouterr()
    rc = main(["generate", "--model", str(out / "policy"), "--prompt", "This movie was", "--max-new-tokens", "8", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["sequences"][0]["steps"]


def test_quick_preset_is_fixed_beta_with_a_budget_and_beta_zero_keeps_the_budget(tmp_path):
    from rlhf_demo.cli.flags import config_from_args
    from rlhf_demo.cli.main import build_parser
    from rlhf_demo.ppo.config import PPOConfig

    cfg = config_from_args(PPOConfig, build_parser().parse_args(["train", "--algo", "ppo", "--out", str(tmp_path / "q")]))
    assert (cfg.batch_size, cfg.num_mini_batches, cfg.beta, cfg.adaptive_kl, cfg.kl_budget) == (32, 4, 0.03, False, 5.5)
    assert cfg.kl_budget_lr_factor == 0.5 and not cfg.value_grad_to_policy and cfg.lr == 1e-3
    zero = config_from_args(PPOConfig, build_parser().parse_args(["train", "--algo", "ppo", "--out", str(tmp_path / "z"), "--beta", "0"]))
    assert zero.beta == 0 and zero.kl_budget == 5.5 and not zero.adaptive_kl  # a pure trust region is allowed
