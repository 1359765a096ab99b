"""Comparing runs: run folders (PPO or DPO) → DataFrames for the Runs tab and the command line.

- ``runs_table``: one row per run with its settings and outcome.
- ``load_curves``: every run's metrics.jsonl stacked, with a ``run`` column.
- ``eval_points``: every held-out evaluation of every run (reward against KL: the DPO paper's
  Figure 2 frontier), plus the base model as KL = 0.
- ``export_csv`` / ``zip_policy``: files to download.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

from rlhf_demo.runs.folder import EXAMPLE_RUN, list_runs, read_json, read_metrics

SETTING_KEYS = ("algo", "preset", "model", "beta", "learning_rate", "lr", "batch_size", "loss_type", "epochs",
                "steps", "seed", "full_finetune", "preferences", "n_pairs", "reward", "kl_target")


def run_label(run: Path) -> str:
    return "example-ppo (shipped)" if Path(run) == EXAMPLE_RUN else Path(run).name


def runs_table(runs: list[Path]) -> pd.DataFrame:
    """Runs with their settings and outcome: name, algo, key hyper-parameters, steps, last held-out
    reward and KL, status, and whether a policy was saved."""
    rows = []
    for run in runs:
        cfg, summary = read_json(run / "config.json"), read_json(run / "summary.json")
        df = read_metrics(run)
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
    """All metrics of the given runs in one long DataFrame with ``run`` and ``algo`` columns."""
    frames = []
    for run in runs:
        df = read_metrics(run)
        if len(df):
            df = df.assign(run=run_label(run), algo=read_json(run / "config.json").get("algo", "?"))
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "algo", "step"])


def eval_points(runs: list[Path], base_reward: float | None = None) -> pd.DataFrame:
    """Every held-out evaluation of every run: columns run, algo, step, time_s, reward, kl, reward_sem."""
    curves = load_curves(runs)
    cols = ["run", "algo", "step", "time_s", "reward", "kl", "reward_sem"]
    if "eval/kl" not in curves.columns:
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
                                        "reward": base_reward, "kl": 0.0, "reward_sem": None}]), pts],
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
    """Runs under the runs folder (and any extra folders, e.g. bench/results), newest first."""
    found = list_runs(root)
    for extra in extra_roots:
        if Path(extra).exists():
            found += [r for r in list_runs(extra, include_example=False) if r not in found]
    return found

