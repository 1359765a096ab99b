"""The class challenge in the browser: with a challenge set, the Runs tab ranks the class's runs on its
reward (the one within the budget first, the one over it below and marked, a run on another reward
left out), and the frontier shows best-of-N's points beside π*."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rlhf_demo.classroom.challenge import Challenge
from rlhf_demo.classroom.roster import set_class_challenge

SHOTS = Path("/tmp/shots/issue-27")
SPEC = "0.7*vader-positive + 0.3*on-topic - 0.5*repetition"


def _run(root: Path, name: str, reward: str, r: float, kl: float, d2: float, topic: float) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "reward": reward, "seed": 0}))
    rec = {"step": 8, "time_s": 60.0, "eval/reward_mean": r, "eval/kl": kl, "eval/distinct2": d2, "eval/on_topic": topic}
    (run / "metrics.jsonl").write_text(json.dumps(rec) + "\n")
    (run / "summary.json").write_text('{"status": "finished"}')
    return run


@pytest.mark.browser
def test_runs_tab_ranks_the_challenge_within_the_budget_first(page, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Runs").click()
    frontier = page.locator("#runs-frontier")
    page.wait_for_function("document.querySelector('#runs-frontier').innerText.includes('N=64')", timeout=30_000)
    frontier.scroll_into_view_if_needed()
    frontier.screenshot(path=str(SHOTS / "frontier-bon.png"))
    assert not page.locator("#runs-challenge-box").is_visible()  # no challenge: no ranking
    root = Path(os.environ["RLHF_DEMO_RUNS"])
    made = [
        _run(root, "ch-honest", SPEC, 0.45, 2.1, 0.82, 0.9),
        _run(root, "ch-hacker", SPEC, 0.80, 7.9, 0.21, 0.15),
        _run(root, "ch-other", "vader-positive", 0.95, 1.0, 0.8, 0.9),
    ]
    set_class_challenge(root, Challenge(SPEC, 3.0, base_reward=0.05))
    try:
        page.locator("#runs-refresh").click()
        box = page.locator("#runs-challenge")
        box.get_by_text("ch-hacker").wait_for(timeout=30_000)
        text = box.inner_text()
        assert "ch-other" not in text, text  # trained on another reward
        assert text.index("ch-honest") < text.index("within budget") < text.index("ch-hacker") < text.index("over budget"), text
        assert "0.4" in text and "0.21" in text, text  # honest's gain (0.45 − 0.05), hacker's distinct-2
        assert "KL budget 3 nats" in page.locator("#runs-challenge-md").inner_text()
        page.locator("#runs-challenge-box").screenshot(path=str(SHOTS / "challenge.png"))
    finally:
        set_class_challenge(root, None)
        for run in made:
            shutil.rmtree(run, ignore_errors=True)
