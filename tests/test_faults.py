"""Nothing lost when a process dies: a training run killed with SIGKILL mid-run keeps its metrics up to
the kill and a checkpoint of its policy that loads and generates; ``runs --json`` calls it interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlhf_demo.cli.main import main
from rlhf_demo.runs.state import run_state

ROOT = Path(__file__).resolve().parents[1]


def _wait(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _start(argv, env_extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "rlhf_demo", *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _kill_mid_run(argv, run: Path, min_steps: int, timeout: float, env_extra) -> int:
    proc = _start(argv, env_extra)
    try:

        def progressed():
            if proc.poll() is not None:
                raise AssertionError(f"training ended early: {proc.stderr.read().decode()[-2000:]}")
            ckpt = run / "policy" / "checkpoint.json"
            return ckpt.exists() and run_state(run)["steps"] >= min_steps

        _wait(progressed, timeout, f"{min_steps} steps and a checkpoint")
        assert run_state(run)["status"] == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return run_state(run)["steps"]


def test_a_killed_ppo_run_is_interrupted_with_a_loadable_checkpoint(tiny_model_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    run = root / "ppo-killed"
    steps = _kill_mid_run(
        [
            "train",
            "--algo",
            "ppo",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "2000",
            "--batch-size",
            "4",
            "--num-mini-batches",
            "2",
            "--response-tokens",
            "4",
            "--no-eval-final",
            "--kl-budget",
            "0",
            "--out",
            str(run),
        ],
        run,
        4,
        240,
        {"RLHF_DEMO_CHECKPOINT_S": "0.5"},
    )
    assert not (run / "summary.json").exists()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in lines] == list(range(1, len(lines) + 1)) and len(lines) >= steps
    assert main(["runs", "--json", "--root", str(root)]) == 0
    (state,) = json.loads(capsys.readouterr().out)
    assert state["status"] == "interrupted" and state["steps"] >= 4 and state["checkpoint_step"] >= 1
    assert state["message"].startswith(f"interrupted at step {state['steps']}")
    # the checkpoint is a whole policy: it loads and writes
    assert main(["generate", "--model", str(run / "policy"), "--prompt", "The movie was", "--max-new-tokens", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"][0]["steps"]


def test_runs_lists_finished_runs_with_their_last_metrics(tiny_model_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--algo",
                "ppo",
                "--model",
                str(tiny_model_dir),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--num-mini-batches",
                "2",
                "--response-tokens",
                "4",
                "--no-eval-final",
                "--quiet",
                "--out",
                str(root / "done"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["runs", "--root", str(root)]) == 0
    table = capsys.readouterr().out
    assert "done" in table and "finished" in table
    assert main(["runs", "--json", "--root", str(root)]) == 0
    (state,) = json.loads(capsys.readouterr().out)
    assert state["status"] == "finished" and state["steps"] == 2 and "reward_mean" in state["last"]
    assert json.loads((root / "done" / "policy" / "checkpoint.json").read_text())["step"] == 2


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_real_model_run_keeps_a_checkpoint(tmp_path, capsys):
    """The default model, the quick preset at batch 4: killed after its first checkpoint (5 s here); the
    checkpoint loads and generates."""
    run = tmp_path / "ppo-real"
    _kill_mid_run(
        ["train", "--algo", "ppo", "--batch-size", "4", "--steps", "50", "--no-eval-final", "--out", str(run)],
        run,
        2,
        400,
        {"RLHF_DEMO_CHECKPOINT_S": "5"},
    )
    state = run_state(run)
    assert state["status"] == "interrupted" and state["checkpoint_step"] >= 1
    assert (run / "policy" / "base_model.txt").read_text().strip() == "default"
    assert main(["generate", "--model", str(run / "policy"), "--prompt", "This movie was", "--max-new-tokens", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"][0]["steps"]
