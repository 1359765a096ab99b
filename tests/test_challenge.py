"""The class challenge: the pure ranking on made rows (order, ties, budget, another reward left out), the
class's settings round trip, a student refused by the teacher's action, and the class's ranking as each
viewer may see it."""

from __future__ import annotations

import pandas as pd
import pytest

from rlhf_demo.classroom.challenge import NOT_EVALUATED, OVER, WITHIN, Challenge, canonical, check_challenge, rank_runs, same_reward

SPEC = "0.7*vader-positive + 0.3*on-topic"


def _row(run, reward=SPEC, r=0.5, kl=1.0, base=None, d2=0.9, topic=0.8):
    return {"run": run, "who": run.upper(), "algo": "ppo", "reward": reward, "held-out reward": r, "base reward": base,
            "held-out KL": kl, "distinct-2": d2, "on topic": topic}  # fmt: skip


def test_ranking_by_gain_within_the_budget_ties_by_kl_then_over_budget_then_unevaluated():
    rows = pd.DataFrame(
        [
            _row("a", r=0.50, kl=2.0),  # gain 0.40
            _row("b", r=0.70, kl=9.0, d2=0.2, topic=0.1),  # the best gain, but over the budget: hacked
            _row("c", reward="0.3*on-topic + 0.7*vader-positive", r=0.50, kl=1.0),  # same reward written the other way; ties a, lower KL
            _row("d", r=0.45, kl=0.5, base=0.30),  # its own step-0 evaluation: gain 0.15
            _row("e", reward="vader-positive", r=0.9, kl=0.1),  # another reward: not in the challenge
            _row("f", r=None, kl=None),  # not evaluated yet
            _row("g", r=0.60, kl=3.0),  # exactly on the budget: within
        ]
    )
    out = rank_runs(rows, Challenge(SPEC, 3.0, base_reward=0.10))
    assert list(out["run"]) == ["g", "c", "a", "d", "b", "f"]
    assert list(out["rank"]) == [1, 2, 3, 4, None, None]
    assert list(out["budget"]) == [WITHIN] * 4 + [OVER, NOT_EVALUATED]
    assert list(out["gain"].round(3))[:5] == [0.5, 0.4, 0.4, 0.15, 0.6]
    assert out.loc[out["run"] == "b", ["distinct-2", "on topic"]].values.tolist() == [[0.2, 0.1]]
    assert rank_runs(rows, Challenge("vader-positive", 3.0, base_reward=0.1))["run"].tolist() == ["e"]
    assert rank_runs(rows.iloc[:0], Challenge(SPEC, 3.0)).empty


def test_same_reward_and_what_a_challenge_accepts():
    assert same_reward("vader-positive", "1*vader-positive") and same_reward(SPEC, "0.3*on-topic + 0.7*vader-positive")
    assert not same_reward(SPEC, "0.7*vader-positive - 0.3*on-topic") and not same_reward(SPEC, None)
    assert not same_reward("a + ", "a + ")  # does not parse: equals nothing
    assert check_challenge(" vader-positive ", 2) == ("vader-positive", 2.0)
    for budget in (0, -1, float("nan"), "3", True, 1e9):
        with pytest.raises(ValueError, match="KL budget"):
            check_challenge(SPEC, budget)
    with pytest.raises(ValueError, match="reward spec"):
        check_challenge("", 3)


def test_the_challenge_and_the_question_live_side_by_side_in_the_class_settings(tmp_path):
    from rlhf_demo.classroom.roster import (
        RosterError,
        class_challenge,
        feedback_question,
        set_class_challenge,
        set_feedback_question,
    )

    assert class_challenge(tmp_path) is None
    set_feedback_question(tmp_path, "Which one is kinder?")
    now = set_class_challenge(tmp_path, Challenge("0.3*on-topic + 0.7*vader-positive", 2.5, base_reward=0.12))
    assert now == class_challenge(tmp_path) and now.kl_budget == 2.5 and now.base_reward == 0.12
    assert same_reward(now.reward, SPEC)
    set_feedback_question(tmp_path, "Which one is warmer?")  # keeps the challenge
    assert class_challenge(tmp_path) == now and feedback_question(tmp_path) == "Which one is warmer?"
    with pytest.raises(RosterError, match="KL budget"):
        set_class_challenge(tmp_path, Challenge(SPEC, -1.0))
    assert class_challenge(tmp_path) == now  # a refused change leaves it
    assert set_class_challenge(tmp_path, None) is None and feedback_question(tmp_path) == "Which one is warmer?"
    (tmp_path / ".class" / "settings.json").write_text('{"challenge": {"reward": "", "kl_budget": 3}}')
    assert class_challenge(tmp_path) is None  # an unreadable challenge is no challenge


def test_a_student_is_refused_by_the_teacher_handler_and_nothing_changes(tmp_path, monkeypatch):
    from rlhf_demo.classroom import limits
    from rlhf_demo.classroom.challenge import HIDDEN, class_ranking
    from rlhf_demo.classroom.identity import User
    from rlhf_demo.classroom.roster import class_challenge, set_class_challenge
    from rlhf_demo.ui.class_actions import set_challenge
    from rlhf_demo.ui.context import AppContext, Sessions

    monkeypatch.setenv("RLHF_DEMO_SHARED", "1")
    ctx = AppContext(runs_dir=tmp_path, sessions=Sessions())

    class Req:
        def __init__(self, s):
            self.session_hash, self.client, self.headers = s, type("C", (), {"host": "10.0.0.9"})(), {}

    ctx.sessions.bind("s", User("u1", "ann"))
    set_class_challenge(tmp_path, Challenge(SPEC, 3.0, base_reward=0.1))
    for reward in (SPEC, "", "py:mine.py:score"):
        with pytest.raises(limits.LimitError, match="only the teacher"):
            set_challenge(ctx, Req("s"), reward, 1.0)
    assert class_challenge(tmp_path) == Challenge(canonical(SPEC), 3.0, base_reward=0.1)
    ctx.sessions.bind("t", User("u2", "teacher", teacher=True))
    with pytest.raises(limits.LimitError, match="py:"):  # the teacher too: no Python file on a shared server
        set_challenge(ctx, Req("t"), "py:mine.py:score", 1.0)
    run = tmp_path / "ppo-ann"
    run.mkdir()
    (run / "config.json").write_text(f'{{"algo": "ppo", "reward": "{SPEC}"}}')
    (run / "metrics.jsonl").write_text(
        '{"step": 4, "eval/reward_mean": 0.5, "eval/kl": 2.0, "eval/distinct2": 0.8, "eval/on_topic": 0.9}\n'
    )
    ctx.record.set_owner(run, "u1", "ann")
    _text, ranked, _ch = class_ranking(tmp_path, ctx.record, ctx.visible_runs(Req("t")))
    assert ranked[["rank", "who", "run", "gain"]].values.tolist() == [[1, "ann", "ppo-ann", 0.4]]
    ctx.sessions.bind("s2", User("u3", "bob"))
    assert class_ranking(tmp_path, ctx.record, ctx.visible_runs(Req("s2")))[1]["run"].tolist() == [HIDDEN]  # bob may not see ann's run
