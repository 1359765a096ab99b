"""Best-of-N scored by the reward the config names (issue 27): ``generate --strategy best-of-n --reward
on-topic`` picks the hand argmax of that reward among the same N draws; on a shared server a ``py:``
reward is refused in one line before any model loads."""

from __future__ import annotations

import json

import pytest

from rlhf_demo.classroom import limits
from rlhf_demo.cli.main import main
from rlhf_demo.evaluate import on_topic

DRAW = ["--prompt", "The movie was", "--max-new-tokens", "10", "--num-return-sequences", "6", "--top-k", "0", "--temperature", "1"]
DRAW += ["--word-bias", "film: 7"]  # the tiny model names a film in about a third of its answers


@pytest.fixture(autouse=True)
def local(monkeypatch):
    """Local use unless a test says otherwise (the environment may be a shared server's)."""
    for env in (limits.SHARED_ENV, "SPACE_ID", "RLHF_DEMO_TEACHER_KEY"):
        monkeypatch.delenv(env, raising=False)


def _json(capsys, *argv) -> dict:
    assert main(["generate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_best_of_n_by_on_topic_picks_the_hand_argmax(capsys, tiny_model_dir):
    for seed in range(10):  # the first seed whose six draws are not all on topic or all off: the pick means something
        model = ["--model", str(tiny_model_dir), "--seed", str(seed)]
        drawn = [s["text"] for s in _json(capsys, *DRAW, *model)["sequences"]]  # plain sampling: the same six draws
        hand = [float(on_topic(t)) for t in drawn]  # on-topic scores the response alone
        if 0.0 in hand and 1.0 in hand:
            break
    assert 0.0 in hand and 1.0 in hand, drawn
    out = _json(capsys, *DRAW, *model, "--strategy", "best-of-n", "--reward", "on-topic")
    best = max(range(6), key=lambda i: (hand[i], -i))  # the first on ties
    assert out["config"]["reward"] == "on-topic" and out["sequences"][0]["text"] == drawn[best]
    assert [s["score"] for s in out["sequences"]] == sorted(hand, reverse=True)
    assert sorted(s["text"] for s in out["sequences"]) == sorted(drawn)
    assert out["notices"][0].startswith("Best of 6 by on-topic") and "log 6 − 5/6" in out["notices"][0]


def test_shared_server_refuses_a_python_reward_for_best_of_n(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(limits.SHARED_ENV, "1")
    rc = main(["generate", *DRAW, "--strategy", "best-of-n", f"--reward=py:{tmp_path / 'r.py'}:score", "--model", "nobody/none"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: best-of-N reward: py: ")
