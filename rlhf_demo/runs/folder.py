"""Run folders: every training run (PPO, DPO, ...) is a folder, written by one piece for every trainer
(``write_run``):

    RUN/config.json        the full config (algorithm, preset, model, hyper-parameters, seed, start time)
    RUN/metrics.jsonl      one JSON line per update/step, flushed as written (a crash loses nothing)
    RUN/samples.jsonl      sampled texts (query, response, reward) as the run goes ("kind": batch / eval)
    RUN/before_after.json  the same held-out queries answered by the reference and the trained policy
    RUN/summary.json       written at the end: status (finished / stopped / diverged / failed), message
    RUN/policy/            the trained policy: a peft LoRA adapter or a full model, in safetensors;
                           during training a checkpoint at least every ``checkpoint_s`` seconds (30 by
                           default; ``policy/checkpoint.json`` says which step), so a run killed at any
                           moment keeps a usable policy; written atomically, so it is always loadable
    RUN/process.json       which process writes the run (pid, host): a run without a summary whose
                           process is gone was interrupted (``runs/state.py``)

A data-parallel run (``accelerate launch --num_processes N``) is one folder too: process 0 writes it,
from records already reduced over the processes, and ``config.json`` says ``num_processes``.

Runs live under ``$RLHF_DEMO_RUNS`` (default ``./runs``). The shipped example policy lives in the
package (``rlhf_demo/assets/example-ppo``) and is listed like a run.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path

import pandas as pd

from rlhf_demo.algorithms import find
from rlhf_demo.runs import tracking
from rlhf_demo.runs.names import RUNS_ENV, model_short, run_short, runs_root  # noqa: F401 - runs_root is re-exported
from rlhf_demo.training import distributed

CHECKPOINT_ENV = "RLHF_DEMO_CHECKPOINT_S"
CHECKPOINT_S = 30.0
EXAMPLE_RUN = Path(__file__).resolve().parents[1] / "assets" / "example-ppo"
EXAMPLE_POLICY = EXAMPLE_RUN.name
"""The shipped example policy's model name (``runs/names.py``): what the KL tab opens on."""


def _clean(obj):
    """JSON-safe: NaN/inf become None, tensors/numpy become floats."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


class RunWriter:
    """Writes one run folder as training goes. Use as a context manager or call ``close``."""

    @staticmethod
    def check(out: str | Path, overwrite: bool = False) -> Path:
        """Refuse a run folder that exists and is not empty (before a model is loaded for it)."""
        path = Path(out).expanduser()
        if path.exists() and any(path.iterdir()) and not overwrite:
            shown = str(path) if not path.is_absolute() else path.name
            raise FileExistsError(f"run folder {shown!r} exists and is not empty; choose another --out")
        return path

    def __init__(self, out: str | Path, config, overwrite: bool = False):
        self.dir = self.check(out, overwrite)
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = config.to_dict() if hasattr(config, "to_dict") else asdict(config) if is_dataclass(config) else dict(config)
        cfg.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))
        (self.dir / "config.json").write_text(json.dumps(_clean(cfg), indent=2))
        self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")
        self._samples = open(self.dir / "samples.jsonl", "a", encoding="utf-8")

    @property
    def policy_dir(self) -> Path:
        return self.dir / "policy"

    def log_metrics(self, record: dict) -> None:
        self._metrics.write(json.dumps(_clean(record)) + "\n")
        self._metrics.flush()
        os.fsync(self._metrics.fileno())

    def log_samples(self, step: int, rows: list[dict], kind: str = "batch") -> None:
        for r in rows:
            row = {k: v for k, v in r.items() if k != "details"}  # raw reward-model outputs stay on screen only
            self._samples.write(json.dumps(_clean({"step": step, "kind": kind, **row})) + "\n")
        self._samples.flush()

    def write_json(self, name: str, obj) -> None:
        """``RUN/name`` written atomically (a temporary file, then a rename)."""
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(json.dumps(_clean(obj), indent=2))
        tmp.replace(self.dir / name)

    def finish(self, status: str, message: str = "", **extra) -> None:
        self.write_json("summary.json", {"status": status, "message": message, **extra})

    def close(self) -> None:
        for f in (self._metrics, self._samples):
            if not f.closed:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Checkpointer:
    """Saves the policy into ``RUN/policy/`` when ``every_s`` seconds have passed since the last save.
    Trainers call it at their safe points (after a step, in the thread that trains)."""

    def __init__(self, policy_dir: Path, every_s: float):
        self.policy_dir, self.every_s = policy_dir, float(every_s)
        self.last = time.monotonic()
        self.saved_step = 0

    def __call__(self, policy, step: int) -> None:
        if step > self.saved_step and time.monotonic() - self.last >= self.every_s:
            self.save(policy, step)

    def save(self, policy, step: int) -> None:
        policy.save(self.policy_dir, meta={"step": step, "saved": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.last, self.saved_step = time.monotonic(), step


def checkpoint_seconds() -> float:
    return float(os.environ.get(CHECKPOINT_ENV, CHECKPOINT_S))


def write_run(
    trainer,
    out: str | Path,
    *,
    preset: str | None = None,
    overwrite: bool = False,
    info: dict | None = None,
    checkpoint_s: float | None = None,
) -> Iterator[dict]:
    """Run ``trainer.train()`` and write its run folder as it goes; yield the records unchanged.

    Works for every trainer with ``cfg`` (a ``config.TrainerConfig``), ``train()`` (records), ``policy``
    (a ``models.lora.TrainablePolicy``), ``status``, ``message``, ``step_no``, ``time_s``, ``last_eval``,
    ``before_after`` and ``run_info()``. The policy is saved at the end whatever ended the run (stop,
    closed generator, divergence after some steps); an exception is recorded as ``failed``.
    Records also go to the experiment tracker ``cfg.report_to`` names (``runs/tracking.py``), under the
    same names. In a process other than 0 of a data-parallel run, nothing is written."""
    if not distributed.is_main():
        records = trainer.train()
        try:
            yield from records
        finally:
            records.close()
        return
    config = {**trainer.cfg.to_dict(), "preset": preset, "num_processes": distributed.world_size(), **(info or {})}
    writer = RunWriter(out, config, overwrite=overwrite)
    tracker = tracking.start(getattr(trainer.cfg, "report_to", "none"), writer.dir, config)
    writer.write_json("process.json", {"pid": os.getpid(), "host": socket.gethostname()})
    trainer.checkpoint = Checkpointer(writer.policy_dir, checkpoint_seconds() if checkpoint_s is None else checkpoint_s)
    trainer.run_dir = writer.dir  # where a trainer keeps more than records (PPO's per-token store, DPO's pairs)
    failed, records = None, trainer.train()
    try:
        for rec in records:
            writer.log_metrics({k: v for k, v in rec.items() if k not in ("samples", "eval/samples")})
            tracker.log(rec)
            if rec.get("samples"):
                writer.log_samples(rec["step"], rec["samples"], "batch")
            if rec.get("eval/samples"):
                writer.log_samples(rec["step"], rec["eval/samples"], "eval")
            yield rec
    except Exception as exc:  # noqa: BLE001 - recorded, then raised again
        failed = exc
        raise
    finally:
        records.close()  # a closed write_run (Stop, a closed tab) ends the trainer's loop too
        try:
            if trainer.step_no > 0:
                trainer.checkpoint.save(trainer.policy, trainer.step_no)
            if trainer.before_after:
                writer.write_json("before_after.json", trainer.before_after)
            final = {k: v for k, v in (trainer.last_eval or {}).items() if k != "samples"}
            status = "failed" if failed is not None else trainer.status
            message = str(failed) if failed is not None else trainer.message
            writer.finish(
                status, message, steps=trainer.step_no, time_s=getattr(trainer, "time_s", 0.0), final_eval=final, **trainer.run_info()
            )
        finally:
            writer.close()
            tracker.finish()


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """``metrics.jsonl`` as a DataFrame (empty if none); a torn last line is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return pd.DataFrame(rows)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def example_runs() -> list[Path]:
    """The shipped example runs (``assets/example-*`` with a config.json), the PPO example first."""
    found = sorted(p for p in EXAMPLE_RUN.parent.glob("example-*") if (p / "config.json").exists())
    return sorted(found, key=lambda p: p != EXAMPLE_RUN)


def list_runs(root: str | Path | None = None, include_example: bool = True) -> list[Path]:
    """Run folders (those with a config.json), newest first; the shipped examples last."""
    base = Path(root) if root is not None else runs_root()
    found = []
    if base.exists():
        found = sorted((p for p in base.iterdir() if (p / "config.json").exists()), key=lambda p: p.stat().st_mtime, reverse=True)
    if include_example:
        found += example_runs()
    return found


def is_reward_model(folder: str | Path) -> bool:
    """A sequence classifier (a reward model), not a causal LM: a SEQ_CLS adapter, or a config whose
    architectures are ``*ForSequenceClassification``. Read from the folder's JSON only."""
    p = Path(folder)
    adapter = read_json(p / "adapter_config.json")
    if adapter:
        return adapter.get("task_type") == "SEQ_CLS"
    archs = read_json(p / "config.json").get("architectures") or []
    return any(str(a).endswith("ForSequenceClassification") for a in archs)


def policy_choices(root: str | Path | None = None) -> list[tuple[str, str]]:
    """(label, model name) pairs for dropdowns: the base model, then every run that saved a policy
    (reward-model runs score text: they are not policies). Names are short (``example-ppo``,
    ``run:NAME``; ``runs/names.py``), never server paths."""
    from rlhf_demo.models.loading import DEFAULT_MODEL

    out = [("base: SmolLM2-135M-Instruct (default)", DEFAULT_MODEL)]
    for run in list_runs(root):
        pol = run / "policy"
        if pol.exists() and ((pol / "adapter_config.json").exists() or (pol / "config.json").exists()):
            algo = read_json(run / "config.json").get("algo", "?")
            alg = find(algo)
            if (alg is not None and not alg.is_policy) or is_reward_model(pol):
                continue
            label = (
                f"example: {alg.label if alg else algo}-tuned (shipped)"
                if run.parent == EXAMPLE_RUN.parent
                else f"run: {run.name} ({algo})"
            )
            out.append((label, run_short(run)))
    return out
