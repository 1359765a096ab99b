"""Looking into a trained reward model: score any text beside the gold reward, and find the held-out texts
where the two disagree most (what the Reward-model panel shows; no I/O beyond reading a run's files).

A reward model's score r has no fixed zero or unit (Bradley–Terry learns only differences), and the
gold reward (VADER's compound score, from which the shipped pairs were made) lives in [−1, 1]. To
compare them, both are standardised over the same held-out texts x_1 … x_N:

    z_r(x) = (r(x) − mean_i r(x_i)) / std_i r(x_i)        z_g(x) = (g(x) − mean_i g(x_i)) / std_i g(x_i)
    d(x)   = z_r(x) − z_g(x)

and the texts are ranked by |d|: d > 0 where the reward model likes a text more than the gold does
(the openings a PPO policy can exploit), d < 0 where it likes it less. A typed text is placed among the
held-out texts by percentile (the share of them scoring below it), on both scores.

The held-out texts and their reward-model scores are those of the run's last held-out evaluation
(``samples.jsonl``, kind "eval": every held-out pair's prompt + chosen and prompt + rejected), so the
table needs no model; scoring a new text loads the reward model once (``Scorers``, a small cache).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import pandas as pd

from rlhf_demo.runs.folder import read_json

GOLD = "vader-positive"
"""The gold reward the panel compares with (the shipped pairs come from it)."""
TABLE_COLUMNS = ["text", "reward model", "gold (VADER)", "z reward model", "z gold", "z gap (rm − gold)"]


def reward_model_runs(runs: list[Path]) -> list[Path]:
    """The runs among ``runs`` that are reward models with a saved model (``train --algo reward``)."""
    return [Path(r) for r in runs if read_json(Path(r) / "config.json").get("algo") == "reward" and (Path(r) / "policy").is_dir()]


def latest_heldout(run_dir: str | Path) -> list[dict]:
    """The held-out pairs of a reward-model run's last evaluation, with ``reward_chosen`` and
    ``reward_rejected`` (``samples.jsonl``); [] when it has none yet."""
    path, rows = Path(run_dir) / "samples.jsonl", []
    if not path.exists():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a run still writing
        if row.get("kind") == "eval" and "reward_chosen" in row:
            rows.append(row)
    last = max((r["step"] for r in rows), default=None)
    return [r for r in rows if r["step"] == last]


def heldout_texts(pairs: list[dict]) -> pd.DataFrame:
    """Held-out pairs → one row per distinct text (prompt + chosen, prompt + rejected) with its
    reward-model score: columns text, reward model."""
    rows = [(p["prompt"] + p[side], float(p[f"reward_{side}"])) for p in pairs for side in ("chosen", "rejected")]
    return pd.DataFrame(rows, columns=["text", "reward model"]).drop_duplicates("text").reset_index(drop=True)


def standardise(x: pd.Series) -> pd.Series:
    """(x − mean) / std over the series (population std; 0 everywhere when the std is 0)."""
    std = float(x.std(ddof=0))
    return (x - x.mean()) / std if std > 0 else x * 0.0


def disagreements(texts: pd.DataFrame, gold: list[float], top: int = 10) -> pd.DataFrame:
    """The ``top`` texts where reward model and gold disagree most (|z_r − z_g|, see the module
    docstring), largest first: ``TABLE_COLUMNS``. ``texts``: columns text, reward model; ``gold``: g per text."""
    if len(texts) == 0:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    d = texts.assign(**{"gold (VADER)": [float(g) for g in gold]})
    d["z reward model"] = standardise(d["reward model"])
    d["z gold"] = standardise(d["gold (VADER)"])
    d["z gap (rm − gold)"] = d["z reward model"] - d["z gold"]
    order = d["z gap (rm − gold)"].abs().sort_values(ascending=False, kind="stable").index
    return d.loc[order[:top], TABLE_COLUMNS].round(3).reset_index(drop=True)


def percentile(value: float, among: pd.Series) -> float:
    """Share of ``among`` strictly below ``value`` (0…1; NaN when ``among`` is empty)."""
    return float((among < value).mean()) if len(among) else float("nan")


def score_line(text: str, rm_score: float, gold_score: float, texts: pd.DataFrame, gold: list[float]) -> dict:
    """One typed text's scores and where they fall among the held-out texts (percentiles 0…1)."""
    return {
        "text": text,
        "reward_model": float(rm_score),
        "gold": float(gold_score),
        "reward_model_percentile": percentile(rm_score, texts["reward model"]) if len(texts) else float("nan"),
        "gold_percentile": percentile(gold_score, pd.Series(gold, dtype=float)),
    }


class Scorers:
    """Loaded reward models by run folder (at most ``size``, the least recently used dropped first),
    each behind the ``rm:`` reward (``rewards.learned.LearnedReward``: frozen, no gradient), plus the
    gold reward. Safe to share between sessions: models are only read."""

    def __init__(self, size: int = 1, device: str = "cpu"):
        self.size, self.device = size, device
        self._lock = threading.Lock()
        self._models: OrderedDict[str, object] = OrderedDict()
        self._gold = None

    def reward(self, run_dir: str | Path):
        from rlhf_demo.rewards.learned import LearnedReward

        key = str(Path(run_dir).resolve())
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            rm = LearnedReward(str(run_dir), device=self.device)  # RewardError in one line if not a reward model
            self._models[key] = rm
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return rm

    def gold(self):
        from rlhf_demo.rewards.functions import make_reward

        with self._lock:
            if self._gold is None:
                self._gold = make_reward(GOLD)
            return self._gold

    def score(self, run_dir: str | Path, texts: list[str]) -> tuple[list[float], list[float]]:
        """(reward-model scores, gold scores) of ``texts``."""
        return self.reward(run_dir)(texts), self.gold()(texts)
