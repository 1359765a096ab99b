"""Comparing runs: run folders (of any registered algorithm) → DataFrames for the Runs tab and the command line.

- ``runs_table``: one row per run with its settings and outcome.
- ``load_curves``: every run's metrics.jsonl stacked, with a ``run`` column.
- ``eval_points``: every held-out evaluation of every run (reward against KL: the DPO paper's
  Figure 2 frontier), plus the base model as KL = 0, each with its algorithm's marker and label.
- ``base_point``: the base policy's held-out evaluation, shipped as ``assets/base_eval.json``.
- ``pi_star_curve``: the KL-regularised optimum π* on the same held-out queries (reward gain against
  KL, one point per β), computed once by ``bench/ppo_frontier.py`` and shipped as ``assets/pi_star.json``.
- ``best_of_n_points``: best-of-N of the reference on the same held-out queries (expected gain and the
  KL bound log N − (N − 1)/N, N = 2 … 64), made by ``scripts/make_best_of_n.py`` with
  ``expected_best_of_n`` and shipped as ``assets/best_of_n.json``.
- ``held_out_rows``: each run's reward spec, last held-out evaluation (reward, KL, distinct-2, on
  topic) and step-0 evaluation, for the class challenge's ranking (``classroom.challenge.rank_runs``).
- ``reward_per_nat``: a run's held-out gain over the base divided by its held-out KL.
- ``export_csv`` / ``zip_policy``: files to download.

Held-out evaluations are the ``eval/reward_mean``, ``eval/kl`` (, ``eval/reward_sem``) keys of a
record, for every algorithm. Runs written before an algorithm used those names logged them under the
older names its declaration lists (``Algorithm.legacy_keys``: DPO's top-level ``reward_mean`` / ``kl``);
``with_held_out_keys`` reads those runs as if they had the new keys.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pandas as pd

from rlhf_demo.algorithms import find
from rlhf_demo.runs.folder import EXAMPLE_RUN, list_runs, read_json, read_metrics

BASE_EVAL = Path(__file__).resolve().parents[1] / "assets" / "base_eval.json"
"""The base policy's held-out evaluation (standard EvalConfig), shipped with the package."""
PI_STAR = Path(__file__).resolve().parents[1] / "assets" / "pi_star.json"
"""π*'s curve on the held-out queries (``bench/ppo_frontier.py --json``), shipped with the package."""
BEST_OF_N = Path(__file__).resolve().parents[1] / "assets" / "best_of_n.json"
"""Best-of-N's points on the held-out queries (``scripts/make_best_of_n.py``), shipped with the package."""
MIN_KL_PER_NAT = 0.1
"""Below this held-out KL (nats) a run has not moved: "reward per nat" is left empty, not divided by ~0."""
TARGET_GAIN, TARGET_KL = 0.3, 6.0
"""The course's target on the frontier: held-out reward ≥ base + TARGET_GAIN at KL ≤ TARGET_KL nats."""
BASE = {"algo": "base", "label": "base model", "symbol": "star"}
"""The base model's point on the frontier: not a run of any algorithm."""

SETTING_KEYS = (
    "algo",
    "preset",
    "model",
    "beta",
    "learning_rate",
    "lr",
    "batch_size",
    "loss_type",
    "epochs",
    "steps",
    "seed",
    "full_finetune",
    "preferences",
    "n_pairs",
    "reward",
    "kl_target",
)


def base_point(path: str | Path = BASE_EVAL) -> dict | None:
    """The base policy's held-out evaluation: {"reward_mean", "reward_sem", "kl", "n", ...} (the file's
    keys), or None if the file is missing or unreadable. Read from the package, never the cwd."""
    try:
        data = json.loads(Path(path).read_text())
        data["reward_mean"] = float(data["reward_mean"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data


def pi_star_curve(path: str | Path = PI_STAR) -> pd.DataFrame:
    """π*'s points (columns beta, gain, kl; KL ascending), or an empty frame if the file is missing or
    unreadable. ``gain`` is E_π*[r] − E_ref[r] on the held-out queries, so the frontier draws it from the
    base model's held-out reward (``base_point``), the point π* starts from at β → ∞."""
    cols = ["beta", "gain", "kl"]
    try:
        rows = json.loads(Path(path).read_text())["optimum"]
        df = pd.DataFrame(rows)[cols].astype(float)
    except (OSError, ValueError, KeyError, TypeError):
        return pd.DataFrame(columns=cols)
    return df.sort_values("kl").reset_index(drop=True)


def expected_best_of_n(scores: list[float], n: int) -> float:
    """The expected best of ``n`` of the M ``scores`` drawn without replacement (unbiased for the best of
    n independent draws when the scores are M independent samples). With the scores sorted,
    s_(1) ≤ … ≤ s_(M), the k-th smallest is the best of the n exactly when it is drawn and the other
    n − 1 come from the k − 1 below it:

        E[max] = Σ_{k=n}^{M} C(k − 1, n − 1) / C(M, n) · s_(k)

    (a U-statistic: the average of the best over all C(M, n) subsets, counted as Codex's unbiased
    pass@k, Chen et al. 2021, counts for 0/1 scores). n = 1 gives the mean, n = M the maximum."""
    s = sorted(float(x) for x in scores)
    m = len(s)
    if not 1 <= n <= m:
        raise ValueError(f"best of {n} needs 1 ≤ n ≤ {m} scores")
    total = math.comb(m, n)
    return sum(math.comb(k - 1, n - 1) * s[k - 1] for k in range(n, m + 1)) / total


def best_of_n_points(path: str | Path = BEST_OF_N) -> pd.DataFrame:
    """Best-of-N's points (columns n, gain, kl_bound; N ascending), or an empty frame if the file is
    missing or unreadable. ``gain`` = E[best of N] − E_ref[r] on the held-out queries (averaged over
    them), ``kl_bound`` = log N − (N − 1)/N: best-of-N's KL to the reference is at most that, so the
    frontier draws each point at its bound, from the base model's held-out reward as π*'s curve."""
    cols = ["n", "gain", "kl_bound"]
    try:
        rows = json.loads(Path(path).read_text())["best_of_n"]
        df = pd.DataFrame(rows)[cols].astype(float)
    except (OSError, ValueError, KeyError, TypeError):
        return pd.DataFrame(columns=cols)
    return df.astype({"n": int}).sort_values("n").reset_index(drop=True)


def reward_per_nat(reward: float, base_reward: float | None, kl: float) -> float | None:
    """(held-out reward − base reward) / held-out KL: how much reward a run bought per nat of KL
    (None without a base or below ``MIN_KL_PER_NAT``). π* reaches about +0.4 per nat near 1 nat."""
    if base_reward is None or not kl or kl < MIN_KL_PER_NAT:
        return None
    return (float(reward) - float(base_reward)) / float(kl)


def frontier_target(base_reward: float | None) -> tuple[float, float] | None:
    """(minimum held-out reward, maximum KL) of the course's target box, or None without a base."""
    return None if base_reward is None else (base_reward + TARGET_GAIN, TARGET_KL)


def with_held_out_keys(df: pd.DataFrame, algo: str) -> pd.DataFrame:
    """``df`` with ``eval/reward_mean`` and ``eval/kl`` for every algorithm: a run of an algorithm with
    ``legacy_keys`` (DPO) that has no ``eval/reward_mean`` at all was written before the rename, and its
    top-level ``reward_mean`` / ``kl`` are its held-out values (copied; the record's own keys are kept)."""
    alg = find(algo)
    renamed = dict(alg.legacy_keys) if alg is not None else {}
    legacy = (
        bool(renamed)
        and len(df) > 0
        and "reward_mean" in df.columns
        and ("eval/reward_mean" not in df.columns or df["eval/reward_mean"].isna().all())
    )
    if not legacy:
        return df
    return df.assign(**{new: df[old] for new, old in renamed.items() if old in df.columns})


def run_label(run: Path) -> str:
    return f"{Path(run).name} (shipped)" if Path(run).parent == EXAMPLE_RUN.parent else Path(run).name


LEAD_COLUMNS = ("run", "algo", "held-out reward", "held-out KL", "reward per nat", "on topic", "status")
"""What a learner compares first, in this order; the settings follow (``split_table``)."""


def split_table(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(outcome, settings) of a ``runs_table``: the ``LEAD_COLUMNS`` it has, in order; then ``run`` and
    every other column (hyper-parameters, steps done, policy saved, started)."""
    lead = [c for c in LEAD_COLUMNS if c in table.columns]
    rest = ["run"] + [c for c in table.columns if c not in lead] if "run" in table.columns else []
    return table[lead], table[rest]


def kept_evaluation(ev: pd.DataFrame, summary: dict) -> pd.Series:
    """The held-out evaluation of the policy a run kept (``ev``: its evaluation rows, in step order): the
    step a KL stop restored (``summary["restored"]["step"]``: the run evaluated one step further, past the
    stop, and saved the policy before it), else the last one."""
    step = (summary.get("restored") or {}).get("step")
    if step is not None and "step" in ev.columns:
        kept = ev[ev["step"] == step]
        if len(kept):
            return kept.iloc[-1]
    return ev.iloc[-1]


def runs_table(runs: list[Path], base_reward: float | None = None) -> pd.DataFrame:
    """Runs with their settings and outcome: name, algo, key hyper-parameters, steps, the held-out
    reward, KL, reward per nat (with ``base_reward``: ``reward_per_nat``) and on-topic share of the policy
    kept (``kept_evaluation``), status, and whether a policy was saved. Without ``base_reward`` the
    shipped base evaluation is used."""
    if base_reward is None:
        base = base_point()
        base_reward = base["reward_mean"] if base else None
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
            last = kept_evaluation(df[df[kl_col].notna()], summary)
            row["held-out reward"] = round(float(last["eval/reward_mean"]), 3)
            row["held-out KL"] = round(float(last[kl_col]), 2)
            per_nat = reward_per_nat(last["eval/reward_mean"], base_reward, float(last[kl_col]))
            row["reward per nat"] = None if per_nat is None else round(per_nat, 3)
            if "eval/on_topic" in last.index and pd.notna(last["eval/on_topic"]):
                row["on topic"] = round(float(last["eval/on_topic"]), 2)
        row["status"] = summary.get("status", "running?" if df.shape[0] else "empty")
        row["policy"] = "yes" if (run / "policy").exists() else "no"
        row["started"] = cfg.get("started", "")
        rows.append(row)
    table = pd.DataFrame(rows)
    lead = [c for c in LEAD_COLUMNS if c in table.columns]
    return table[lead + [c for c in table.columns if c not in lead]]


def held_out_rows(runs: list[Path], who=None) -> pd.DataFrame:
    """One row per run: run (label), who (``who(folder)``, e.g. the owner's nickname; '' without it),
    algo, reward (config.json's spec), held-out reward, held-out KL, distinct-2, on topic (the evaluation
    of the policy it kept, ``kept_evaluation``; None before any) and base reward (its step-0 evaluation, the untrained
    policy, when it ran one)."""
    rows = []
    for run in runs:
        cfg, summary = read_json(run / "config.json"), read_json(run / "summary.json")
        df = with_held_out_keys(read_metrics(run), cfg.get("algo", "?"))
        row = {"run": run_label(run), "who": who(run) if who else "", "algo": cfg.get("algo", "?"), "reward": cfg.get("reward")}
        if {"eval/kl", "eval/reward_mean"} <= set(df.columns):
            ev = df[df["eval/kl"].notna() & df["eval/reward_mean"].notna()]
            if len(ev):
                last = kept_evaluation(ev, summary)
                row.update({"held-out reward": float(last["eval/reward_mean"]), "held-out KL": float(last["eval/kl"])})
                for key, col in (("eval/distinct2", "distinct-2"), ("eval/on_topic", "on topic")):
                    if key in last.index and pd.notna(last[key]):
                        row[col] = round(float(last[key]), 2)
                first = ev[ev["step"] == 0] if "step" in ev.columns else ev.iloc[:0]
                if len(first):
                    row["base reward"] = float(first.iloc[0]["eval/reward_mean"])
        rows.append(row)
    cols = ["run", "who", "algo", "reward", "held-out reward", "base reward", "held-out KL", "distinct-2", "on topic"]
    return pd.DataFrame(rows, columns=cols)


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


def marker(algo: str) -> dict:
    """{label, symbol} of a run's algorithm on the plots (its declaration's; an unknown one: its name, a circle)."""
    alg = find(algo)
    return {"label": alg.label, "symbol": alg.symbol} if alg is not None else {"label": str(algo), "symbol": "circle"}


def eval_points(runs: list[Path], base_reward: float | None = None, base_sem: float | None = None) -> pd.DataFrame:
    """Every held-out evaluation of every run: columns run, algo, label, symbol, step, time_s, reward, kl,
    reward_sem (from ``eval/reward_mean``, ``eval/kl``, ``eval/reward_sem``; label and symbol from the
    run's algorithm, ``marker``); with ``base_reward`` the base model comes first, at KL = 0 (e.g.
    ``base_point()["reward_mean"]``)."""
    curves = load_curves(runs)
    cols = ["run", "algo", "label", "symbol", "step", "time_s", "reward", "kl", "reward_sem"]
    if not {"eval/kl", "eval/reward_mean"} <= set(curves.columns):
        pts = pd.DataFrame(columns=cols)
    else:
        d = curves[curves["eval/kl"].notna() & curves["eval/reward_mean"].notna()]
        pts = pd.DataFrame(
            {
                "run": d["run"],
                "algo": d["algo"],
                "label": d["algo"].map(lambda a: marker(a)["label"]),
                "symbol": d["algo"].map(lambda a: marker(a)["symbol"]),
                "step": d["step"],
                "time_s": d["time_s"] if "time_s" in d.columns else None,
                "reward": d["eval/reward_mean"],
                "kl": d["eval/kl"],
                "reward_sem": d["eval/reward_sem"] if "eval/reward_sem" in d.columns else None,
            }
        )
    if base_reward is not None:
        pts = pd.concat(
            [
                pd.DataFrame(
                    [
                        {
                            "run": "base model",
                            **BASE,
                            "step": 0,
                            "time_s": 0.0,
                            "reward": float(base_reward),
                            "kl": 0.0,
                            "reward_sem": base_sem,
                        }
                    ]
                ),
                pts,
            ],
            ignore_index=True,
        )
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
