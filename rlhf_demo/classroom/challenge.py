"""The class challenge: the teacher sets the class's reward (a builder spec, ``rewards/spec.py``) and a KL
budget in nats; the class's runs trained on that reward are ranked by how much held-out reward they
bought within the budget.

    gain(run) = held-out reward of its last evaluation − the base model's held-out reward (same spec)
    ranked:     runs with held-out KL ≤ budget, by gain (highest first; ties: lower KL first),
                then the runs over the budget (marked), then those not evaluated yet

Beside each run its held-out KL, distinct-2 and on-topic share (``evaluate.py``), so "who hacked the
reward" shows: a run that bought its gain with collapsed, off-topic praise has low distinct-2 and
on-topic share. The base reward is the run's own step-0 evaluation when it has one (``eval_at_start``:
the untrained policy, the same sampler and seed), else the challenge's ``base_reward``, measured once
when the teacher set it (``measure_base``).

A run takes part when its ``config.json``'s ``reward`` is the challenge's spec after parsing
(``same_reward``: the same terms and weights, in any order). The challenge is stored with the class's
settings (``classroom.roster``: ``RUNS/.class/settings.json``); only the teacher sets it
(``ui.class_actions.set_challenge``, ``/teacher_challenge``). ``class_ranking`` reads the class's runs
for the Runs and Teacher tabs; who may see which run is the caller's to say. Pure apart from
``class_ranking`` (reads run folders) and ``measure_base`` (samples the model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from rlhf_demo.classroom.ownership import ClassRecord
from rlhf_demo.rewards.spec import SpecError, format_spec, parse_spec

MAX_BUDGET = 100.0
"""A KL budget above this many nats is no budget (the default PPO run spends ~5)."""
OVER = "over budget ✗"
WITHIN = "within budget"
NOT_EVALUATED = "no held-out evaluation yet"
ROW_COLUMNS = ("run", "who", "algo", "reward", "held-out reward", "base reward", "held-out KL", "distinct-2", "on topic")
"""What ``rank_runs`` reads (``runs.compare.held_out_rows`` writes them; ``who`` may be missing)."""
RANK_COLUMNS = ("rank", "who", "run", "algo", "gain", "held-out KL", "distinct-2", "on topic", "budget")
"""The ranking table's columns, in order."""
HIDDEN = "(another's run)"
"""Shown instead of the name of a run the viewer may not see."""
NO_OWNER = "(command line)"
"""Shown as ``who`` of a run nobody in the class started (``python -m rlhf_demo train``)."""


@dataclass(frozen=True)
class Challenge:
    """The class's challenge: the reward (canonical spec text), the KL budget (nats per response, on the
    held-out evaluation), and the base model's held-out reward under that spec (None: not measured)."""

    reward: str
    kl_budget: float
    base_reward: float | None = None
    base_model: str = "default"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> Challenge | None:
        """The stored challenge, or None when ``data`` is not one (never set, cleared, or unreadable)."""
        if not isinstance(data, dict):
            return None
        try:
            reward, budget = check_challenge(data.get("reward"), data.get("kl_budget"))
        except ValueError:
            return None
        base = data.get("base_reward")
        base = float(base) if isinstance(base, (int, float)) and not isinstance(base, bool) and math.isfinite(base) else None
        model = data.get("base_model")
        return cls(reward, budget, base, model if isinstance(model, str) and model else "default")

    def describe(self) -> str:
        base = f"; the base model scores {self.base_reward:+.3f} on it" if self.base_reward is not None else ""
        return f"reward `{self.reward}`, KL budget {self.kl_budget:g} nats (held-out){base}"


def canonical(spec) -> str:
    """The spec's canonical text (``format_spec`` of its terms sorted by name); ValueError (SpecError)
    in one line when it does not parse."""
    if not isinstance(spec, str):
        raise SpecError("reward spec must be text")
    return format_spec(sorted(parse_spec(spec), key=lambda t: t.name))


def same_reward(a, b) -> bool:
    """Whether two specs are the same reward: the same components with the same weights, in any order
    (``vader-positive`` = ``1*vader-positive``; ``0.3*on-topic + 0.7*vader-positive`` =
    ``0.7*vader-positive + 0.3*on-topic``). A spec that does not parse equals nothing."""
    try:
        return canonical(a) == canonical(b)
    except ValueError:
        return False


def check_challenge(reward, kl_budget) -> tuple[str, float]:
    """(canonical spec, budget) of a challenge, else ValueError with one line: the spec must parse and
    the budget be a number of nats above 0 and at most ``MAX_BUDGET``."""
    spec = canonical(reward)
    if isinstance(kl_budget, bool) or not isinstance(kl_budget, (int, float)) or not math.isfinite(kl_budget):
        raise ValueError("the KL budget must be a number of nats, e.g. 3")
    if not 0 < kl_budget <= MAX_BUDGET:
        raise ValueError(f"the KL budget must be above 0 and at most {MAX_BUDGET:g} nats (got {kl_budget:g})")
    return spec, float(kl_budget)


def rank_runs(rows: pd.DataFrame, challenge: Challenge) -> pd.DataFrame:
    """The challenge's ranking of ``rows`` (columns ``ROW_COLUMNS``, one row per run; see the module
    docstring for the order). Rows whose ``reward`` is not the challenge's (``same_reward``) are left
    out. Returns ``RANK_COLUMNS``: rank 1, 2, … within the budget, empty for the others; ``budget`` says
    ``WITHIN``, ``OVER`` or ``NOT_EVALUATED``; gain, KL, distinct-2 and on topic as numbers (None where
    unknown)."""
    if rows is None or len(rows) == 0 or "reward" not in rows.columns:
        return pd.DataFrame(columns=list(RANK_COLUMNS))
    d = rows[rows["reward"].map(lambda r: same_reward(r, challenge.reward))].copy()
    for col in ROW_COLUMNS:
        if col not in d.columns:
            d[col] = None
    base = pd.to_numeric(d["base reward"], errors="coerce")
    if challenge.base_reward is not None:
        base = base.fillna(challenge.base_reward)
    reward, kl = pd.to_numeric(d["held-out reward"], errors="coerce"), pd.to_numeric(d["held-out KL"], errors="coerce")
    d["gain"] = (reward - base).round(3)  # shown to 3 decimals: equal as shown is a tie, broken by KL
    d["held-out KL"] = kl
    evaluated = d["gain"].notna() & kl.notna()
    d["budget"] = NOT_EVALUATED
    d.loc[evaluated & (kl <= challenge.kl_budget), "budget"] = WITHIN
    d.loc[evaluated & (kl > challenge.kl_budget), "budget"] = OVER
    order = {WITHIN: 0, OVER: 1, NOT_EVALUATED: 2}
    d = d.assign(_group=d["budget"].map(order), _neg_gain=-d["gain"]).sort_values(
        ["_group", "_neg_gain", "held-out KL", "run"], na_position="last", kind="mergesort"
    )
    within = (d["budget"] == WITHIN).to_numpy()
    d["rank"] = pd.Series([i + 1 if w else None for i, w in enumerate(within)], index=d.index, dtype=object)
    return d[list(RANK_COLUMNS)].reset_index(drop=True)


def class_ranking(runs_dir: Path, record: ClassRecord, visible: Iterable[Path]) -> tuple[str, pd.DataFrame, Challenge | None]:
    """(a line on the challenge, its ranking of the class's runs, the challenge) for the Runs and Teacher
    tabs: every run in ``runs_dir`` (the shipped example aside) trained on the class challenge's reward,
    ranked by ``rank_runs``, its owner's nickname (``record``) beside it. ``visible``: the run folders the
    viewer may see (``AppContext.visible_runs``); any other run's name is shown as ``HIDDEN``. No
    challenge: ("No class challenge is set.", an empty frame, None)."""
    from rlhf_demo.classroom.roster import class_challenge  # the roster stores a Challenge: it imports this module
    from rlhf_demo.runs.compare import held_out_rows, run_label  # the run folders (and torch) only when ranking
    from rlhf_demo.runs.folder import list_runs, read_json

    ch = class_challenge(runs_dir)
    if ch is None:
        return "No class challenge is set.", pd.DataFrame(), None
    runs = [r for r in list_runs(runs_dir, include_example=False) if same_reward(read_json(r / "config.json").get("reward"), ch.reward)]
    seen = {run_label(r) for r in visible}
    rows = held_out_rows(runs, who=lambda r: record.owner(r).get("nickname", NO_OWNER))
    rows["run"] = rows["run"].map(lambda r: r if r in seen else HIDDEN)
    ranked = rank_runs(rows, ch)
    within = int((ranked["budget"] == WITHIN).sum()) if len(ranked) else 0
    text = (
        f"**Class challenge:** {ch.describe()}. Runs trained on this reward are ranked by held-out reward gain over "
        f"the base model among those within the budget (ties: lower KL first); {within} of {len(ranked)} are within it. "
        "Low distinct-2 or on-topic share beside a high gain: the reward was hacked."
    )
    return text, ranked.round({"gain": 3, "held-out KL": 2}), ch


def measure_base(model, tokenizer, spec: str) -> float:
    """The base model's held-out reward under ``spec``: ``evaluate.evaluate_policy`` with the model as
    its own reference (KL = 0), the same queries, sampler and seed as every run's evaluation."""
    from rlhf_demo.evaluate import EvalConfig, evaluate_policy
    from rlhf_demo.rewards.functions import make_reward

    return float(evaluate_policy(model, tokenizer, make_reward(spec), EvalConfig(), reference=model)["reward_mean"])
