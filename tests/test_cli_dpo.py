"""The command line: ``preferences`` then ``train --algo dpo`` write a preference file and a run folder;
bad input is one clear ``error:`` line with exit code 2. One short real-model run (integration)."""

from __future__ import annotations

import json

import pytest

from rlhf_demo.cli.main import main
from rlhf_demo.runs.folder import read_metrics


def test_preferences_then_train_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    prefs = tmp_path / "prefs.jsonl"
    assert (
        main(
            [
                "preferences",
                "--out",
                str(prefs),
                "--prompts",
                "4",
                "--samples",
                "3",
                "--cuts",
                "2",
                "--response-tokens",
                "6",
                "--reward",
                "length",
                "--model",
                str(tiny_model_dir),
                "--quiet",
            ]
        )
        == 0
    )
    rows = [json.loads(l) for l in prefs.read_text().splitlines()]
    assert rows and all(set(r) >= {"prompt", "chosen", "rejected"} for r in rows)
    assert "pairs to" in capsys.readouterr().out

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--algo",
                "dpo",
                "--steps",
                "2",
                "--preferences",
                str(prefs),
                "--out",
                str(run),
                "--model",
                str(tiny_model_dir),
                "--eval-every",
                "1",
                "--beta",
                "0.2",
                "--batch-size",
                "2",
                "--max-length",
                "48",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "finished" in out and run.name in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == "dpo" and cfg["beta"] == 0.2 and cfg["preferences"] == str(prefs)
    df = read_metrics(run)
    steps = df[df["step"] > 0]
    assert list(steps["step"]) == [1, 2]
    for col in ("loss", "rewards/margins", "rewards/accuracies", "eval/reward_mean", "eval/kl"):
        assert steps[col].notna().all(), col
    assert (run / "policy" / "adapter_config.json").exists()


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--preferences", "/nonexistent.jsonl"], "does not exist"),
        (["--beta", "-1"], "beta must be between"),
        (["--lr", "5"], "lr must be between"),
        (["--steps", "99999999"], "steps must be"),
        (["--preset", "nonsense"], "unknown DPO preset"),
        (["--prompts", "x.txt"], "--prompts: not a DPO setting"),
    ],
)
def test_bad_input_is_one_clear_line(extra, match, tmp_path, capsys):
    code = main(["train", "--algo", "dpo", "--out", str(tmp_path / "r"), "--steps", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and match in err
    assert "Traceback" not in err


def test_long_prompts_say_no_usable_examples(tiny_model_dir, tmp_path, capsys):
    prefs = tmp_path / "long.jsonl"
    prefs.write_text(json.dumps({"prompt": "word " * 50, "chosen": " good", "rejected": " bad"}) + "\n")
    code = main(
        [
            "train",
            "--algo",
            "dpo",
            "--steps",
            "1",
            "--preferences",
            str(prefs),
            "--out",
            str(tmp_path / "r"),
            "--model",
            str(tiny_model_dir),
            "--max-length",
            "16",
        ]
    )
    assert code == 2
    assert "no usable examples" in capsys.readouterr().err


def test_existing_output_is_refused(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    out.write_text("x")
    assert main(["preferences", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.integration
def test_short_real_model_run(default_bundle, tmp_path):
    """Synthesis from the shared (read-only) default model, then 2 DPO steps on a fresh copy."""
    import torch

    from rlhf_demo.data.preferences import SynthConfig, synthesize_pairs
    from rlhf_demo.dpo.config import DPOConfig
    from rlhf_demo.dpo.trainer import DPOTrainer
    from rlhf_demo.rewards.functions import make_reward
    from rlhf_demo.runs.folder import write_run

    before = {k: v.clone() for k, v in list(default_bundle.model.state_dict().items())[:4]}
    rows = synthesize_pairs(
        default_bundle.model,
        default_bundle.tokenizer,
        make_reward("vader-positive"),
        SynthConfig(n_prompts=4, cuts_per_prompt=1, samples=4, response_tokens=8),
    )
    assert rows
    settings = DPOConfig.preset("quick-cpu", steps=2, batch_size=4, eval_every=0, eval_at_start=False)
    tr = DPOTrainer(settings, rows)
    list(write_run(tr, tmp_path / "run"))
    assert tr.status == "finished"
    df = read_metrics(tmp_path / "run")
    assert list(df["step"]) == [1, 2] and df["eval/kl"].notna().iloc[-1]
    assert all(torch.equal(v, default_bundle.model.state_dict()[k]) for k, v in before.items())  # shared model untouched
