"""Run folders: every training run (PPO or DPO) is a folder

    RUN/config.json      the full config (algorithm, model, hyper-parameters, seed, start time)
    RUN/metrics.jsonl    one JSON line per update/step, flushed as written (a crash loses nothing)
    RUN/samples.jsonl    sampled texts (query, response, reward) as the run goes
    RUN/summary.json     written at the end: status (finished / stopped / diverged / failed), message
    RUN/policy/          the trained policy: a peft LoRA adapter or a full model, in safetensors

Runs live under ``$RLHF_DEMO_RUNS`` (default ``./runs``). The shipped example policy lives in the
package (``rlhf_demo/assets/example-ppo``) and is listed like a run.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

import pandas as pd

RUNS_ENV = "RLHF_DEMO_RUNS"
EXAMPLE_RUN = Path(__file__).resolve().parents[1] / "assets" / "example-ppo"


def runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser()


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

    def __init__(self, out: str | Path, config, overwrite: bool = False):
        self.dir = Path(out).expanduser()
        if self.dir.exists() and any(self.dir.iterdir()) and not overwrite:
            raise FileExistsError(f"run folder {str(self.dir)!r} exists and is not empty; choose another --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = asdict(config) if is_dataclass(config) else dict(config)
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

    def log_samples(self, step: int, rows: list[dict]) -> None:
        for r in rows:
            self._samples.write(json.dumps(_clean({"step": step, **r})) + "\n")
        self._samples.flush()

    def finish(self, status: str, message: str = "", **extra) -> None:
        (self.dir / "summary.json").write_text(json.dumps(_clean({"status": status, "message": message, **extra}), indent=2))

    def close(self) -> None:
        for f in (self._metrics, self._samples):
            if not f.closed:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def list_runs(root: str | Path | None = None, include_example: bool = True) -> list[Path]:
    """Run folders (those with a config.json), newest first; the shipped example last."""
    base = Path(root) if root is not None else runs_root()
    found = []
    if base.exists():
        found = sorted((p for p in base.iterdir() if (p / "config.json").exists()), key=lambda p: p.stat().st_mtime, reverse=True)
    if include_example and (EXAMPLE_RUN / "config.json").exists():
        found.append(EXAMPLE_RUN)
    return found


def policy_choices(root: str | Path | None = None) -> list[tuple[str, str]]:
    """(label, model name) pairs for dropdowns: the base model, then every run that saved a policy."""
    from rlhf_demo.models.loading import DEFAULT_MODEL

    out = [("base: SmolLM2-135M-Instruct (default)", DEFAULT_MODEL)]
    for run in list_runs(root):
        pol = run / "policy"
        if pol.exists() and ((pol / "adapter_config.json").exists() or (pol / "config.json").exists()):
            cfg = read_json(run / "config.json")
            label = f"run: {run.name} ({cfg.get('algo', '?')})" if run != EXAMPLE_RUN else "example: PPO-tuned (shipped)"
            out.append((label, str(pol)))
    return out
