"""The model card of ``--push-to-hub``: offline (the tests never reach the Hub) a 2-step training writes
``RUN/policy/README.md`` and says in one line that nothing was pushed; the card names the base
model, the data and the exact command, and carries the run's own held-out figures and curves."""

from __future__ import annotations

import json
import shlex

import pytest
from huggingface_hub import ModelCard

from rlhf_demo.cli.main import main
from rlhf_demo.runs.card import card_text, curve_table
from rlhf_demo.runs.folder import read_json, read_metrics

REPO = "someone/rlhf-lab-card-test"


@pytest.mark.integration
def test_ppo_card_on_the_real_model_offline(real_ppo_run):
    """conftest's shared real run, trained offline with ``--push-to-hub``."""
    run, out, err = real_ppo_run.path, real_ppo_run.out, real_ppo_run.err
    assert real_ppo_run.rc == 0, err[-2000:]
    assert real_ppo_run.repo == REPO
    assert f"note: --push-to-hub {REPO}: offline" in err  # said before training
    last = out.strip().splitlines()[-1]
    assert last.startswith("model card written to ") and f"nothing was pushed to {REPO}: offline" in last
    path = run / "policy" / "README.md"
    card = ModelCard.load(path)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.library_name == "peft"
    assert "ppo" in card.data.tags and card.data.pipeline_tag == "text-generation"
    text = path.read_text()
    command = json.loads((run / "config.json").read_text())["command"]
    assert command.startswith("python -m rlhf_demo train --algo ppo") and command in text  # the exact command
    for given in ("--steps 2", "--batch-size 8", shlex.join(["--reward", real_ppo_run.reward]), f"--push-to-hub {REPO}", f"--out {run}"):
        assert given in command
    assert f"prompts: `builtin`, reward: `{real_ppo_run.reward}`" in text  # the data
    final = read_json(run / "summary.json")["final_eval"]
    assert f"| held-out reward (mean) | {final['reward_mean']:+.3f} |" in text
    assert f"| held-out KL(π‖π_ref), nats per response | {final['kl']:+.3f} |" in text
    df = read_metrics(run)
    assert f"| 2 | {df['reward_mean'].iloc[-1]:+.3f} |" in text  # the curves, step by step
    assert "## Before → after" in text and read_json(run / "before_after.json") != {}


def test_reward_model_card_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "rm"
    assert (
        main(
            [
                "train",
                "--algo",
                "reward",
                "--steps",
                "2",
                "--model",
                str(tiny_model_dir),
                "--batch-size",
                "4",
                "--out",
                str(run),
                "--quiet",
                "--push-to-hub",
                REPO,
            ]
        )
        == 0
    )
    assert "nothing was pushed" in capsys.readouterr().out
    card = ModelCard.load(run / "policy" / "README.md")
    assert card.data.base_model == str(tiny_model_dir) and card.data.pipeline_tag == "text-classification"
    assert "reward-model" in card.data.tags
    final = read_json(run / "summary.json")["final_eval"]
    assert f"| held-out pair accuracy | {final['accuracy']:+.3f} |" in card.text
    assert "preference pairs: `shipped`" in card.text
    assert card_text(run).startswith("---\n")  # metadata first, as the Hub reads it


def test_curve_table_keeps_first_and_last_step(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 31)))
    lines = curve_table(tmp_path, "dpo", rows=5)
    steps = [int(line.split("|")[1]) for line in lines[2:]]
    assert steps[0] == 1 and steps[-1] == 30 and len(steps) == 5
    assert curve_table(tmp_path / "missing", "dpo") == ["No metrics were recorded."]


def test_a_bad_repo_id_is_one_line_before_training(tmp_path, capsys):
    assert main(["train", "--algo", "dpo", "--out", str(tmp_path / "x"), "--push-to-hub", "no spaces/allowed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --push-to-hub 'no spaces/allowed' is not a Hub repository id")
