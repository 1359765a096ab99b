"""Data parallelism on CPU: ``accelerate launch --cpu --num_processes 2`` (two processes, gloo) trains one
model and writes one run folder.

- PPO (ours, tiny model): one update on the same global batch gives the same losses, gradient norm
  and weights in two processes as in one (tolerance 1e-5 relative: only the order of float sums
  differs); the CLI writes one complete folder with ``num_processes: 2``.
- DPO (TRL's trainer, tiny model; the real default model's DPO runs in test_cli_dpo.py): the same global
  batches give the same losses at each step (tolerance 1e-4), one folder with ``num_processes: 2``.
- The reward model (TRL's RewardTrainer, tiny model): the same, loss, accuracy and margin at each step.
- A ``--num_processes`` the batch cannot be split over: one line before any model is loaded.
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_demo.cli.main import main
from rlhf_demo.runs.folder import read_json, read_metrics

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
REL = 1e-5  # PPO: same batch, same update; only the order of float sums differs
DPO_ABS = 1e-4  # DPO: TRL gathers and averages the per-process losses


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ENV = {"HF_HUB_OFFLINE": "1", "RLHF_DEMO_CHECKPOINT_S": "1000"}


def _run(args: list[str], processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python ARGS`` (one process) or ``accelerate launch --cpu --num_processes N ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    head = (
        [
            ACCELERATE,
            "launch",
            "--cpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(_port()),
        ]
        if processes > 1
        else [sys.executable]
    )
    return subprocess.run(head + args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def _run_here(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-process reference in this process: ``python ARGS`` without starting an interpreter (the
    two-process side is what needs its own processes)."""
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    if args[0] == "-m":  # -m rlhf_demo ARGV
        assert args[1] == "rlhf_demo" and main(args[2:]) == 0
    else:  # SCRIPT ARGV
        monkeypatch.setattr(sys, "argv", list(args))
        runpy.run_path(args[0], run_name="__main__")


def _close(a: float, b: float, rel: float = REL) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def test_ppo_update_on_one_global_batch_is_the_same_in_two_processes(tiny_model_dir, tmp_path, monkeypatch):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    script = str(ROOT / "tests" / "ddp_ppo_update.py")
    _run_here([script, str(tiny_model_dir), str(one)], monkeypatch)
    res = _run([script, str(tiny_model_dir), str(two)], processes=2)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["num_processes"], a["local_rows"], b["num_processes"], b["local_rows"]) == (1, 8, 2, 4)
    assert a["samples"] == b["samples"] == 8  # the record describes the whole batch
    assert a["grad_norm"] > 0 and a["loss/policy_avg"] != 0
    for k in (
        "reward_mean",
        "objective/kl",
        "loss/policy_avg",
        "loss/value_avg",
        "grad_norm",
        "policy/approxkl_avg",
        "val/mean_value",
        "weights",
        "abs_weights",
    ):
        assert _close(a[k], b[k]), (k, a[k], b[k])


def test_ppo_cli_on_two_processes_writes_one_run_folder(tiny_model_dir, tmp_path):
    run = tmp_path / "p"
    res = _run(
        [
            "-m",
            "rlhf_demo",
            "train",
            "--algo",
            "ppo",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--num-mini-batches",
            "2",
            "--response-tokens",
            "6",
            "--no-eval-final",
            "--out",
            str(run),
        ],
        processes=2,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("finished:") == 1  # one process prints
    cfg, summary = read_json(run / "config.json"), read_json(run / "summary.json")
    assert cfg["num_processes"] == 2 and cfg["batch_size"] == 8 and "--num_processes 2" in cfg["command"]
    assert summary["status"] == "finished" and summary["steps"] == 2
    df = read_metrics(run)
    assert list(df["step"]) == [1, 2] and list(df["episodes"]) == [8, 16]
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [sum(r["step"] == s for r in rows) for s in (1, 2)] == [8, 8]  # both processes' episodes
    assert (run / "policy" / "adapter_model.safetensors").exists()
    assert not list(tmp_path.glob("p?*"))  # no second folder


def test_more_processes_than_the_batch_allows_is_one_line_before_training(tmp_path):
    run = tmp_path / "p3"
    res = _run(
        ["-m", "rlhf_demo", "train", "--algo", "ppo", "--batch-size", "8", "--num-mini-batches", "4", "--out", str(run)], processes=3
    )
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr[-2000:]  # checked before the processes start: said once
    assert "batch_size = 8 cannot be split over 3 processes" in lines[0] and "--num_processes" in lines[0]
    assert "Loading" not in res.stderr and not (run / "config.json").exists()


def _trl_one_and_two(tmp_path, monkeypatch, algo: str, extra: list[str], keys: tuple[str, ...], pairs: int) -> None:
    """A 2-step TRL run (``algo``) on the first ``pairs`` shipped pairs, in 1 process (this one) and then
    in 2: the 2-process run leaves one complete folder with ``num_processes: 2`` and one saved adapter,
    and each of ``keys`` agrees at both steps within ``DPO_ABS``; the model moved between the steps."""
    shipped = ROOT / "rlhf_demo" / "assets" / "preferences.jsonl"
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("\n".join(shipped.read_text().splitlines()[:pairs]) + "\n")
    runs = {}
    for n in (1, 2):
        run = tmp_path / f"{algo}{n}"
        args = [
            "-m",
            "rlhf_demo",
            "train",
            "--algo",
            algo,
            *extra,
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--preferences",
            str(prefs),
            "--no-eval-at-start",
            "--eval-every",
            "0",
            "--max-seconds",
            "0",
            "--out",
            str(run),
        ]
        if n == 1:
            _run_here(args, monkeypatch)
        else:
            res = _run(args, processes=n)
            assert res.returncode == 0, res.stderr[-3000:]
        runs[n] = run
    cfg, summary = read_json(runs[2] / "config.json"), read_json(runs[2] / "summary.json")
    assert cfg["num_processes"] == 2 and summary["status"] == "finished" and summary["steps"] == 2
    assert (runs[2] / "policy" / "adapter_model.safetensors").exists()
    assert not list(tmp_path.glob(f"{algo}2?*"))  # no second folder
    one, two = (read_metrics(runs[n]).set_index("step") for n in (1, 2))
    assert list(one.index) == list(two.index) == [1, 2]
    for k in keys:
        for step in (1, 2):
            assert abs(one.loc[step, k] - two.loc[step, k]) <= DPO_ABS * max(1.0, abs(one.loc[step, k])), (k, step)
    assert one.loc[2, "loss"] != one.loc[1, "loss"]  # the model moved between the steps


def test_dpo_two_processes_match_one(tiny_model_dir, tmp_path, monkeypatch):
    args = ["--model", str(tiny_model_dir), "--kl-stop", "0"]
    _trl_one_and_two(tmp_path, monkeypatch, "dpo", args, ("loss", "rewards/margins", "logps/chosen"), pairs=8)


def test_reward_model_two_processes_match_one(tiny_model_dir, tmp_path, monkeypatch):
    """TRL's RewardTrainer under 2 processes: the same global batches give the same loss, accuracy and
    margin at each step as 1 process, in one run folder with ``num_processes: 2`` and one saved model."""
    _trl_one_and_two(tmp_path, monkeypatch, "reward", ["--model", str(tiny_model_dir)], ("loss", "accuracy", "margin"), pairs=20)
