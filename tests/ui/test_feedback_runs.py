"""Feedback → DPO → Runs in headless Chromium: label two pairs (a button and a keyboard shortcut), the
labels are on disk at once, train a short DPO run on them, then see it in the Runs tab."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlhf_demo.dpo.config import DPOConfig
from rlhf_demo.ui.config_form import config_from_form

SHOTS = Path("/tmp/shots")


def test_make_settings_from_ui_values():
    values = {
        "beta": 0.3,
        "loss_type": "ipo",
        "sft_weight": 0,
        "lr": 1e-4,
        "epochs": 1.0,
        "batch_size": 4.0,
        "max_length": 32.0,
        "full_finetune": False,
        "lora_r": 8.0,
        "eval_every": 5.0,
        "kl_stop": 0,
        "max_seconds": 0,
        "seed": 1.0,
        "model": " default ",
        "steps": 3.0,
    }
    s = config_from_form(DPOConfig, "quick-cpu", values)
    assert (s.beta, s.loss_type, s.steps, s.batch_size, s.kl_stop, s.max_seconds, s.model) == (0.3, "ipo", 3, 4, 0.0, 0.0, "default")
    with pytest.raises(ValueError, match="beta"):
        config_from_form(DPOConfig, "quick-cpu", {**values, "beta": -1})


def test_api_runs_endpoints_are_named_and_show_the_shipped_base_point(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = {ep: [p["parameter_name"] for p in api[ep]["parameters"]] for ep in api if ep.startswith("/runs_")}
    assert names == {
        "/runs_refresh": ["selected_runs"],
        "/runs_compare": ["selected_runs"],
        "/runs_export_csv": ["selected_runs"],
        "/runs_download_policy": ["run"],
        "/runs_overopt": ["selected_runs"],
    }
    frontier, overlay = client.predict([], api_name="/runs_compare")
    assert "base model" in json.dumps(frontier) and "target: reward ≥ +0.43" in json.dumps(frontier, ensure_ascii=False)
    with pytest.raises(Exception, match="Select at least one run"):
        client.predict([], api_name="/runs_export_csv")


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _labels_file() -> Path:
    return Path(os.environ["RLHF_DEMO_RUNS"]) / "feedback" / "labels.jsonl"


def _wait_pair(page):
    page.wait_for_function(
        "() => { const t = document.querySelector('#fb-resp-b textarea'); return t && t.value && t.value !== '…'; }", timeout=120_000
    )


@pytest.mark.browser
@pytest.mark.slow
def test_label_two_pairs_then_train_dpo_and_compare(page, app_url, tiny_model_dir):
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = len(_labels_file().read_text().splitlines()) if _labels_file().exists() else 0
    page.goto(app_url)
    page.get_by_role("tab", name="Feedback").click()
    page.locator("#fb-new").click()
    _wait_pair(page)
    page.locator("#fb-a").click()  # label 1: a button
    page.locator("#fb-counts").get_by_text("You: 1").wait_for(timeout=30_000)
    _wait_pair(page)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("2")  # label 2: the keyboard shortcut for B
    page.locator("#fb-counts").get_by_text("You: 2").wait_for(timeout=30_000)
    # both labels are on disk already (written and fsynced before the next pair was drawn)
    lines = _labels_file().read_text().splitlines()[before:]
    assert [json.loads(l)["label"] for l in lines] == ["A", "B"]
    _wait_pair(page)
    page.screenshot(path=str(SHOTS / "feedback.png"), full_page=True)

    page.locator("#fb-use").click()
    page.locator("#fb-note").get_by_text("labelled pairs").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Training").click()
    page.locator("#training-algo").get_by_text("DPO", exact=True).click()
    page.locator("#dpo-start").wait_for()
    page.get_by_text("Hyper-parameters", exact=True).click()
    _fill(page, "dpo-model", tiny_model_dir)
    _fill(page, "dpo-steps", 2)
    _fill(page, "dpo-batch-size", 2)
    _fill(page, "dpo-eval-every", 1)
    _fill(page, "dpo-max-length", 64)
    assert page.locator("#dpo-source input[value='Feedback labels']").is_checked()
    assert page.locator("#dpo-whose input[value='Mine']").is_checked()  # "Use for DPO": your own labels
    page.locator("#dpo-start").click()
    page.locator("#dpo-status").get_by_text("finished", exact=False).wait_for(timeout=240_000)
    assert page.locator("#dpo-plot .js-plotly-plot .scatterlayer .trace").count() >= 7
    assert "Held-out at the end" in page.locator("#dpo-status").inner_text()
    page.screenshot(path=str(SHOTS / "training_dpo.png"), full_page=True)

    page.get_by_role("tab", name="Runs").click()
    page.locator("#runs-refresh").click()
    page.wait_for_function("document.querySelector('#runs-table').innerText.includes('dpo-')", timeout=30_000)
    page.locator("#runs-frontier .js-plotly-plot").wait_for(timeout=30_000)
    page.wait_for_function("!document.body.innerText.includes('processing')", timeout=60_000)
    assert page.locator("#runs-frontier .js-plotly-plot .scatterlayer .trace").count() >= 1
    page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)


@pytest.mark.browser
def test_runs_frontier_draws_pi_star_and_the_table_reward_per_nat(page, app_url):
    """The shipped example on the frontier beside π*'s curve; reward per nat in the table."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Runs").click()
    page.locator("#runs-refresh").click()
    page.wait_for_function("document.querySelector('#runs-table').innerText.includes('reward per nat')", timeout=30_000)
    page.locator("#runs-frontier .js-plotly-plot").wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#runs-frontier').innerText.includes('π*')", timeout=30_000)
    page.locator("#runs-frontier").scroll_into_view_if_needed()
    page.locator("#runs-frontier").screenshot(path=str(SHOTS / "runs_frontier_pi_star.png"))
