"""Comparing runs: run folders (PPO or DPO) → DataFrames for the Runs tab and the command line.

- ``runs_table``: one row per run with its settings and outcome.
- ``load_curves``: every run's metrics.jsonl stacked, with a ``run`` column.
- ``eval_points``: every held-out evaluation of every run (reward against KL: the DPO paper's
  Figure 2 frontier), plus the base model as KL = 0.
- ``base_point``: the base policy's held-out evaluation, shipped as ``assets/base_eval.json``.
- ``export_csv`` / ``zip_policy``: files to download.

Held-out evaluations are the ``eval/reward_mean``, ``eval/kl`` (, ``eval/reward_sem``) keys of a
record, for every algorithm. DPO runs written before DPO used those names logged them as top-level
``reward_mean`` / ``kl``; ``with_held_out_keys`` reads those runs as if they had the new keys.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd

from rlhf_demo.runs.folder import EXAMPLE_RUN, list_runs, read_json, read_metrics

BASE_EVAL = Path(__file__).resolve().parents[1] / "assets" / "base_eval.json"
"""The base policy's held-out evaluation (standard EvalConfig), shipped with the package."""
TARGET_GAIN, TARGET_KL = 0.3, 6.0
"""The course's target on the frontier: held-out reward ≥ base + TARGET_GAIN at KL ≤ TARGET_KL nats."""
LEGACY_DPO_KEYS = {"eval/reward_mean": "reward_mean", "eval/kl": "kl"}
"""Held-out keys of DPO records → the top-level keys DPO runs wrote them under before the rename."""

SETTING_KEYS = ("algo", "preset", "model", "beta", "learning_rate", "lr", "batch_size", "loss_type", "epochs",
                "steps", "seed", "full_finetune", "preferences", "n_pairs", "reward", "kl_target")


def base_point(path: str | Path = BASE_EVAL) -> dict | None:
    """The base policy's held-out evaluation: {"reward_mean", "reward_sem", "kl", "n", ...} (the file's
    keys), or None if the file is missing or unreadable. Read from the package, never the cwd."""
    try:
        data = json.loads(Path(path).read_text())
        data["reward_mean"] = float(data["reward_mean"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data


def frontier_target(base_reward: float | None) -> tuple[float, float] | None:
    """(minimum held-out reward, maximum KL) of the course's target box, or None without a base."""
    return None if base_reward is None else (base_reward + TARGET_GAIN, TARGET_KL)


def with_held_out_keys(df: pd.DataFrame, algo: str) -> pd.DataFrame:
    """``df`` with ``eval/reward_mean`` and ``eval/kl`` for every algorithm: a DPO run that has no
    ``eval/reward_mean`` at all was written before the rename, and its top-level ``reward_mean`` /
    ``kl`` are its held-out values (copied; the record's own keys are kept)."""
    legacy = (str(algo).lower() == "dpo" and len(df) > 0 and "reward_mean" in df.columns
              and ("eval/reward_mean" not in df.columns or df["eval/reward_mean"].isna().all()))
    if not legacy:
        return df
    return df.assign(**{new: df[old] for new, old in LEGACY_DPO_KEYS.items() if old in df.columns})


def run_label(run: Path) -> str:
    return "example-ppo (shipped)" if Path(run) == EXAMPLE_RUN else Path(run).name


def runs_table(runs: list[Path]) -> pd.DataFrame:
    """Runs with their settings and outcome: name, algo, key hyper-parameters, steps, last held-out
    reward and KL, status, and whether a policy was saved."""
    rows = []
    for run in runs:
        cfg, summary = read_json(run / "config.json"), read_json(run / "summary.json")
        df = with_held_out_keys(read_metrics(run), cfg.get("algo", "?"))
        row = {"run": run_label(run)}
        for k in SETTING_KEYS:
            if k in cfg and cfg[k] not in (None, "", []):
                v = cfg[k]
                if k in ("model", "preferences") and isinstance(v, str) and "/" in v:
                    v = Path(v).name  # a path: its last part is enough to tell runs apart
                row["lr" if k == "learning_rate" else k] = v
        row["steps done"] = int(df["step"].max()) if "step" in df.columns and len(df) else 0
        kl_col = "eval/kl" if "eval/kl" in df.columns else None
        if kl_col and df[kl_col].notna().any():
            last = df[df[kl_col].notna()].iloc[-1]
            row["held-out reward"] = round(float(last["eval/reward_mean"]), 3)
            row["held-out KL"] = round(float(last[kl_col]), 2)
        row["status"] = summary.get("status", "running?" if df.shape[0] else "empty")
        row["policy"] = "yes" if (run / "policy").exists() else "no"
        row["started"] = cfg.get("started", "")
        rows.append(row)
    return pd.DataFrame(rows)


def load_curves(runs: list[Path]) -> pd.DataFrame:
    """All metrics of the given runs in one long DataFrame with ``run`` and ``algo`` columns (held-out
    values under ``eval/…`` for every run, see ``with_held_out_keys``)."""
    frames = []
    for run in runs:
        df = read_metrics(run)
        if len(df):
            algo = read_json(run / "config.json").get("algo", "?")
            frames.append(with_held_out_keys(df, algo).assign(run=run_label(run), algo=algo))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "algo", "step"])


def eval_points(runs: list[Path], base_reward: float | None = None, base_sem: float | None = None) -> pd.DataFrame:
    """Every held-out evaluation of every run: columns run, algo, step, time_s, reward, kl, reward_sem
    (from ``eval/reward_mean``, ``eval/kl``, ``eval/reward_sem``); with ``base_reward`` the base model
    comes first, at KL = 0 (e.g. ``base_point()["reward_mean"]``)."""
    curves = load_curves(runs)
    cols = ["run", "algo", "step", "time_s", "reward", "kl", "reward_sem"]
    if not {"eval/kl", "eval/reward_mean"} <= set(curves.columns):
        pts = pd.DataFrame(columns=cols)
    else:
        d = curves[curves["eval/kl"].notna() & curves["eval/reward_mean"].notna()]
        pts = pd.DataFrame({
            "run": d["run"], "algo": d["algo"], "step": d["step"],
            "time_s": d["time_s"] if "time_s" in d.columns else None,
            "reward": d["eval/reward_mean"], "kl": d["eval/kl"],
            "reward_sem": d["eval/reward_sem"] if "eval/reward_sem" in d.columns else None,
        })
    if base_reward is not None:
        pts = pd.concat([pd.DataFrame([{"run": "base model", "algo": "base", "step": 0, "time_s": 0.0,
                                        "reward": float(base_reward), "kl": 0.0, "reward_sem": base_sem}]), pts],
                        ignore_index=True)
    return pts.reset_index(drop=True)


def export_csv(runs: list[Path], path: str | Path) -> Path:
    """The stacked metrics of ``runs`` as one CSV (a ``run`` column tells them apart)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = load_curves(runs)
    front = [c for c in ("run", "algo", "step", "time_s") if c in df.columns]
    df[front + [c for c in df.columns if c not in front]].to_csv(path, index=False)
    return path


def zip_policy(run: Path, path: str | Path) -> Path:
    """Zip ``RUN/policy`` (adapter or full model) with the run's config.json and summary.json."""
    run, path = Path(run), Path(path)
    pol = run / "policy"
    if not pol.is_dir():
        raise FileNotFoundError(f"run {run.name!r} has no saved policy")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in sorted(pol.rglob("*")):
            if f.is_file():
                z.write(f, f"{run.name}/policy/{f.relative_to(pol)}")
        for name in ("config.json", "summary.json"):
            if (run / name).exists():
                z.write(run / name, f"{run.name}/{name}")
    return path


def find_runs(root: str | Path | None = None, extra_roots: list[str | Path] = ()) -> list[Path]:
    """Runs under the runs folder (and any extra folders given, e.g. a benchmark's output), newest first."""
    found = list_runs(root)
    for extra in extra_roots:
        if Path(extra).exists():
            found += [r for r in list_runs(extra, include_example=False) if r not in found]
    return found

