"""Experiment tracking (``--report-to``): trackio receives a run's records offline, into ``$TRACKIO_DIR``,
under the same names and steps as ``metrics.jsonl`` (read back with trackio's own storage API); a
tracker that is not installed, or any tracker on a shared server, is one line before training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_demo.classroom import costs, limits
from rlhf_demo.cli.main import main
from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.runs.folder import read_metrics
from rlhf_demo.runs.tracking import scalars

ROOT = Path(__file__).resolve().parents[1]
READ_BACK = "import json, sys; from rlhf_demo.runs.tracking import read_trackio; print(json.dumps(read_trackio(sys.argv[1]), default=str))"


def _env(trackio_dir: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRACKIO_DIR": str(trackio_dir), "RLHF_DEMO_CHECKPOINT_S": "1000"}


def test_ppo_report_to_trackio_leaves_the_runs_metrics_in_trackio_dir(tiny_model_dir, tmp_path):
    run, store = tmp_path / "P", tmp_path / "trackio"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_demo",
            "train",
            "--algo",
            "ppo",
            "--steps",
            "2",
            "--report-to",
            "trackio",
            "--model",
            str(tiny_model_dir),
            "--batch-size",
            "8",
            "--num-mini-batches",
            "2",
            "--response-tokens",
            "6",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(store),
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert list(store.glob("*.db")), "trackio wrote no database into TRACKIO_DIR"
    back = subprocess.run(
        [sys.executable, "-c", READ_BACK, run.name], capture_output=True, text=True, cwd=ROOT, env=_env(store), timeout=120
    )
    assert back.returncode == 0, back.stderr[-2000:]
    logged = {int(row["step"]): row for row in json.loads(back.stdout)}
    ours = read_metrics(run)
    assert sorted(logged) == sorted(int(s) for s in ours["step"]) == [1, 2]
    for rec in ours.to_dict("records"):
        want = scalars({k: v for k, v in rec.items() if not (isinstance(v, float) and math.isnan(v))})
        got = logged[int(rec["step"])]
        assert set(want) <= set(got), sorted(set(want) - set(got))  # the same names ...
        for k in ("reward_mean", "objective/kl", "loss/policy_avg", "eval/reward_mean", "eval/kl"):
            if k in want:
                assert got[k] == pytest.approx(want[k], rel=1e-6), k  # ... and the same numbers
    assert "eval/reward_mean" in logged[2]  # the final held-out evaluation too
    assert json.loads((run / "config.json").read_text())["report_to"] == "trackio"


def test_report_to_wandb_without_wandb_is_one_line_before_training(tmp_path, capsys):
    pytest.importorskip("trackio")
    if __import__("importlib").util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    for algo in ("ppo", "dpo", "reward"):
        code = main(["train", "--algo", algo, "--report-to", "wandb", "--out", str(tmp_path / algo)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith("error: --report-to wandb: the wandb package is not installed (pip install wandb)")
        assert not (tmp_path / algo).exists()


def test_a_shared_server_allows_no_tracker_and_the_form_says_so():
    shared = limits.Limits(shared=True)
    with pytest.raises(limits.LimitError, match="experiment tracking is off on this shared server"):
        costs.check_training(PPOConfig.preset(report_to="trackio", max_seconds=60.0), shared)
    costs.check_training(PPOConfig.preset(report_to="none", max_seconds=60.0).validate(), shared)
    assert shared.knob_note("report_to") == "On this shared server: none only."
    assert shared.fit("report_to", "wandb") == "none" and limits.Limits().fit("report_to", "wandb") == "wandb"
    assert PPOConfig.knob("report_to").metadata["choices"] == ("none", "trackio", "wandb")
