"""The over-optimisation panel and the Reward-model panel of the Training tab, in headless Chromium: a short PPO
run on a learned reward model (``rm:``, listed in the reward dropdown) draws proxy and gold against KL; a
tiny reward model trained from the panel shows its curves, its held-out accuracy, the disagreement table
and a typed text's scores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlhf_demo.ppo.config import preset as ppo_preset
from rlhf_demo.reward_model.config import RewardConfig
from rlhf_demo.reward_model.inspect import latest_heldout
from rlhf_demo.reward_model.trainer import RewardTrainer
from rlhf_demo.runs.folder import write_run
from rlhf_demo.ui.training_ppo import reward_choices, shows_overopt
from rlhf_demo.ui.training_reward import disagreement_frame

SHOTS = Path("/tmp/shots")
PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and moving.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
    {"prompt": "I loved", "chosen": " every minute of it", "rejected": " nothing about it"},
    {"prompt": "The plot", "chosen": " kept me hooked", "rejected": " made no sense at all, sadly"},
]


@pytest.fixture(scope="module")
def rm_run(tiny_model_dir) -> Path:
    """A tiny reward-model run in the app's runs folder (so the PPO panel lists it)."""
    cfg = RewardConfig.preset(
        "quick-cpu",
        model=str(tiny_model_dir),
        heldout_every=2,
        batch_size=2,
        steps=2,
        eval_every=0,
        eval_at_start=False,
        max_seconds=0.0,
        lr=1e-2,
        device="cpu",
    )
    out = Path(os.environ["RLHF_DEMO_RUNS"]) / "reward-tiny-for-overopt"
    if not (out / "summary.json").exists():
        list(write_run(RewardTrainer(cfg, PAIRS), out, overwrite=True))
    return out


def test_reward_dropdown_lists_reward_model_runs_and_the_panel_needs_a_distinct_gold(rm_run):
    from rlhf_demo.ui.context import AppContext

    values = [v for _label, v in reward_choices(AppContext())]
    assert "vader-positive" in values and f"rm:run:{rm_run.name}" in values  # a short name (runs/names.py)
    assert not any(v.startswith("rm:") and "example-ppo" in v for v in values)  # the example PPO run is no reward model
    assert shows_overopt(ppo_preset("quick-cpu", reward=f"rm:{rm_run}"))
    assert not shows_overopt(ppo_preset("quick-cpu"))  # gold = reward: nothing to compare
    assert not shows_overopt(ppo_preset("quick-cpu", reward=f"rm:{rm_run}", gold_reward="none"))


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


@pytest.mark.browser
@pytest.mark.slow
def test_browser_overopt_panel_appears_with_proxy_and_gold(page, app_url, tiny_model_dir, rm_run):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    page.locator("#ppo-start").wait_for()
    assert not page.locator("#ppo-overopt").is_visible()
    for title in ("Optimisation", "Rollouts", "Model and LoRA", "Evaluation"):
        page.get_by_text(title, exact=True).first.click()
    reward = page.locator("#ppo-reward input").first
    reward.click()
    page.wait_for_timeout(800)  # focus refreshes the choices from the run folders
    page.get_by_role("option", name=f"rm: reward model {rm_run.name}").click()  # listed among the runs
    page.wait_for_function("document.querySelector('#ppo-reward input').value.includes('reward model')")
    _fill(page, "ppo-model", tiny_model_dir)
    _fill(page, "ppo-steps", 3)
    _fill(page, "ppo-batch-size", 4)
    _fill(page, "ppo-ppo-epochs", 1)
    _fill(page, "ppo-response-tokens", 6)
    page.locator("#ppo-eval-final input").uncheck()
    page.locator("#ppo-start").click()
    page.locator("#ppo-overopt .js-plotly-plot").wait_for(timeout=120_000)
    page.locator("#ppo-status").get_by_text("finished", exact=False).wait_for(timeout=180_000)
    page.wait_for_timeout(2500)  # the last tick redraws the panel
    traces = page.locator("#ppo-overopt .js-plotly-plot .scatterlayer .trace")
    assert traces.count() == 5  # proxy and gold: batch markers and a smoothed line each, the gold's peak ★; no held-out ◆ without an eval
    legend = page.locator("#ppo-overopt .legend").first.text_content()
    assert "proxy (batch, smoothed)" in legend and "gold (batch, smoothed)" in legend
    page.locator("#ppo-overopt").screenshot(path=str(SHOTS / "overopt_panel_live.png"))
    page.screenshot(path=str(SHOTS / "overopt_training_tab.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_reward_model_panel_trains_scores_and_ranks(page, app_url, tiny_model_dir):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    page.locator("#training-algo").get_by_text("Reward model", exact=True).click()
    page.locator("#rm-start").wait_for()
    page.locator("#rm-start").scroll_into_view_if_needed()
    page.locator('[id="training-panel-reward model"]').get_by_text("Hyper-parameters", exact=True).click()
    _fill(page, "rm-model", tiny_model_dir)
    _fill(page, "rm-steps", 3)
    _fill(page, "rm-batch-size", 4)
    page.locator("#rm-start").click()
    page.locator("#rm-status").get_by_text("Held-out pairs at the end", exact=False).wait_for(timeout=180_000)
    page.locator("#rm-plot .js-plotly-plot").wait_for(timeout=30_000)
    assert page.locator("#rm-plot .js-plotly-plot .scatterlayer .trace").count() >= 4
    page.wait_for_function("document.querySelector('#rm-run input').value.startsWith('reward-')", timeout=30_000)
    name = page.locator("#rm-run input").first.input_value()
    expected = disagreement_frame(latest_heldout(Path(os.environ["RLHF_DEMO_RUNS"]) / name))
    assert len(expected) == 10
    top = expected["text"][0].splitlines()[0][:30]
    page.wait_for_function(f"document.querySelector('#rm-disagree').innerText.includes({json.dumps(top)})", timeout=30_000)
    _fill(page, "rm-text", "This movie was a delight from start to finish.")
    page.locator("#rm-score").click()
    page.locator("#rm-scored").get_by_text("gold (VADER): +0.", exact=False).wait_for(timeout=60_000)
    assert "Reward model:" in page.locator("#rm-scored").inner_text()
    page.screenshot(path=str(SHOTS / "reward_model_panel.png"), full_page=True)
