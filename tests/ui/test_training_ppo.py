"""The PPO panel of the Training tab in headless Chromium: start a tiny run, watch the curves, Stop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.ui.config_form import config_from_form
from rlhf_demo.ui.training_ppo import batch_frame
from rlhf_demo.ui.training_widgets import before_after_frame


def make_config(preset, values):
    return config_from_form(PPOConfig, preset, values)


SHOTS = Path("/tmp/shots")


def test_make_config_turns_ui_values_into_clear_errors():
    cfg = make_config("quick-cpu", {"steps": 5.0, "batch_size": 8.0, "beta": 0.1})
    assert cfg.steps == 5 and isinstance(cfg.steps, int) and cfg.batch_size == 8
    with pytest.raises(ValueError, match="whole number"):
        make_config("quick-cpu", {"batch_size": 4.5})
    with pytest.raises(ValueError, match="is empty"):
        make_config("quick-cpu", {"lr": None})
    with pytest.raises(ValueError, match="beta"):
        make_config("quick-cpu", {"beta": -1.0})
    assert make_config("course", {"beta": 0.0}).adaptive_kl is False  # β = 0: no controller, as on the CLI
    assert make_config("quick-cpu", {"response_tokens": "8:12"}).response_tokens == (8, 12)
    assert make_config("no-kl", {}).beta == 0


def test_tables_show_raw_reward_outputs():
    df = batch_frame(
        [
            {
                "query": "q",
                "response": "r",
                "reward": 0.51234,
                "kl": 0.1,
                "details": {"neg": 0.0, "neu": 0.5, "pos": 0.5, "compound": 0.51234},
            }
        ]
    )
    assert list(df.iloc[0])[:4] == ["q", "r", 0.512, 0.1] and "compound 0.51" in df.iloc[0, 4]
    ba = before_after_frame([{"query": "q", "reference": "a", "reference_reward": 0.0, "policy": "b", "policy_reward": 0.9}])
    assert isinstance(ba, pd.DataFrame) and ba.shape == (1, 5)


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _wait_for_the_end(page, timeout=180_000):
    """Until the status line says how the run ended (whichever way: the assertion after it then shows the words)."""
    page.wait_for_function("/(finished|stopped|diverged|failed)[:]/.test(document.querySelector('#ppo-status').innerText)", timeout=timeout)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_tiny_run_shows_curves_and_before_after(page, app_url, tiny_model_dir):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    page.locator("#ppo-start").wait_for()
    for title in ("Optimisation", "Rollouts", "Model and LoRA", "Evaluation"):
        page.get_by_text(title, exact=True).first.click()
    _fill(page, "ppo-model", tiny_model_dir)
    _fill(page, "ppo-steps", 6)
    _fill(page, "ppo-batch-size", 4)
    _fill(page, "ppo-ppo-epochs", 1)
    _fill(page, "ppo-response-tokens", 6)
    _fill(page, "ppo-eval-every", 3)
    page.locator("#ppo-start").click()
    # live: the curves appear after the first update, with the status line counting updates
    page.locator("#ppo-plot .js-plotly-plot").wait_for(timeout=120_000)
    page.locator("#ppo-status").get_by_text("Update", exact=False).wait_for(timeout=120_000)
    page.wait_for_function("document.querySelector('#ppo-batch').innerText.includes('compound')", timeout=60_000)
    page.screenshot(path=str(SHOTS / "training_ppo_midrun.png"), full_page=True)
    _wait_for_the_end(page)
    assert "finished" in page.locator("#ppo-status").inner_text()
    assert page.locator("#ppo-plot .js-plotly-plot .scatterlayer .trace").count() >= 9
    assert page.locator("#ppo-before-after").get_by_text("This movie was", exact=False).count() >= 1
    assert "Held-out at the end" in page.locator("#ppo-status").inner_text()
    page.screenshot(path=str(SHOTS / "training_ppo.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_stop_leaves_a_stopped_run(page, app_url, tiny_model_dir):
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    for title in ("Model and LoRA", "Optimisation", "Evaluation"):
        page.get_by_text(title, exact=True).first.click()
    _fill(page, "ppo-model", tiny_model_dir)
    _fill(page, "ppo-steps", 200)
    _fill(page, "ppo-batch-size", 4)
    page.locator("#ppo-eval-final input").uncheck()
    page.locator("#ppo-start").click()
    page.locator("#ppo-status").get_by_text("Update", exact=False).wait_for(timeout=120_000)
    page.locator("#ppo-stop").click()
    _wait_for_the_end(page, timeout=120_000)
    text = page.locator("#ppo-status").inner_text()
    assert "stopped by request" in text and "Run folder" in text
