"""The Training tab as a newcomer meets it (issue 25): preset → Start → Stop in the first viewport at
1400×1000 for every algorithm; while the owner's run trains no figure is drawn twice on the page; the
curves' panels carry their own legends; the gold reward is named only when it is not the reward; TRL's
set-up (DPO's reference log-probabilities) says its progress with an ETA and ends on Stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from rlhf_demo.plots.training import COLORS, training_figure
from rlhf_demo.training.setup_progress import Progress, SetupStopped, eta_line

SHOTS = Path("/tmp/shots")


# ----------------------------------------------------------------------------- pure
def test_each_panel_names_its_own_lines_and_no_shared_legend_covers_the_plots():
    df = pd.DataFrame(
        {
            "step": [1, 2, 3],
            "reward_mean": [0.1, 0.2, 0.3],
            "objective/kl": [0.0, 0.1, 0.2],
            "objective/kl_exact": [0.0, 0.2, 0.3],
            "policy/clipfrac_avg": [0.1, 0.1, 0.1],
            "val/clipfrac_avg": [0.2, 0.2, 0.2],
        }
    )
    fig = training_figure(df)
    assert fig.layout.showlegend is False
    titles = {a.text.split("<br>")[0]: a.text for a in fig.layout.annotations}
    kl, clip = titles["KL to reference"], titles["Clip fraction"]
    assert "batch KL (k1)" in kl and "batch KL (exact)" in kl and "value clipfrac" in clip
    # within a panel each line has its own colour, and the title says it in that colour
    for trace in fig.data:
        if trace.name == "batch KL (exact)":
            assert trace.line.color == COLORS[1] and f"color:{COLORS[1]}'>━ batch KL (exact)" in kl


def test_gold_is_named_only_when_it_is_not_the_reward():
    from rlhf_demo.ppo.algorithm import status
    from rlhf_demo.ppo.config import PPOConfig
    from rlhf_demo.training.status import heldout_line, progress_lines

    rec = {
        "step": 2,
        "time_s": 4.0,
        "reward_mean": 0.28,
        "gold_reward_mean": 0.28,
        "objective/kl_exact": 0.1,
        "objective/kl": 0.1,
        "beta": 0.05,
    }
    same = PPOConfig.preset("quick-cpu", reward="vader-positive", gold_reward="vader-positive")
    other = PPOConfig.preset("quick-cpu", reward="length", gold_reward="vader-positive")
    assert "gold" not in status(same, rec, 10)[0]
    assert "gold +0.280" in status(other, rec, 10)[0]
    ev = {**rec, "eval/reward_mean": 0.3, "eval/reward_sem": 0.01, "eval/kl": 0.2, "eval/distinct2": 0.9, "eval/gold_reward_mean": 0.3}
    assert "gold" not in progress_lines(same, ev)[-1] and "gold" in progress_lines(other, ev)[-1]
    assert "gold" not in heldout_line(ev, gold=False)


def test_setup_progress_says_batch_and_eta_and_stops_within_one_batch():
    said: list[str] = []
    stop = threading.Event()
    items = []
    with pytest.raises(SetupStopped):
        for i in Progress(lambda f, m: said.append(m), stop.is_set, iterable=list(range(10)), desc="Computing reference log probs"):
            items.append(i)
            time.sleep(0.12)
            if i == 5:
                stop.set()
    assert items == list(range(6))  # the batch after the Stop never ran
    assert said[0].startswith("Computing reference log probs: batch 0/10")
    assert any("ETA ≈" in m for m in said)
    assert eta_line("x", 2, 10, 4.0) == "x: batch 2/10 · 4 s · ETA ≈ 16 s"


def test_dpo_setup_reports_reference_logprobs_and_a_stop_during_it_ends_the_run(tiny_model_dir):
    from rlhf_demo.dpo.config import DPOConfig
    from rlhf_demo.dpo.trainer import DPOTrainer

    pairs = [{"prompt": f"Film {i} was", "chosen": " great fun.", "rejected": " a bore."} for i in range(96)]
    base = dict(model=str(tiny_model_dir), max_length=32, batch_size=2, eval_every=0, eval_at_start=False, kl_stop=0.0, max_seconds=0.0)
    said: list[str] = []
    tr = DPOTrainer(DPOConfig.preset("quick-cpu", steps=2, **base), pairs, progress=lambda f, m: said.append(m))
    recs = list(tr.train())
    assert any(m.startswith("Computing reference log probs") and "batch 3/3" in m for m in said), said
    assert tr.status == "finished" and recs

    stop = threading.Event()

    def say(f, m):
        if "batch 0/" in m:
            stop.set()  # a Stop in the middle of the reference log-probabilities

    tr = DPOTrainer(DPOConfig.preset("quick-cpu", steps=50, **base), pairs, stop=stop.is_set, progress=say)
    t0 = time.perf_counter()
    recs = list(tr.train())
    assert tr.status == "stopped" and "during set-up" in tr.message
    assert not [r for r in recs if "loss" in r] and time.perf_counter() - t0 < 15


# ----------------------------------------------------------------------------- browser
def _in_first_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 1000


@pytest.mark.browser
def test_start_and_stop_are_in_the_first_viewport_for_every_algorithm(page, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    for label, prefix in (("PPO", "ppo"), ("DPO", "dpo"), ("Reward model", "rm"), ("GRPO", "grpo")):
        page.locator("#training-algo").get_by_text(label, exact=True).click()
        page.locator(f"#{prefix}-start").wait_for(state="visible")
        assert page.evaluate("window.scrollY") == 0
        for what in ("start", "stop", "preset"):
            assert _in_first_viewport(page, f"#{prefix}-{what}"), (label, what)
        assert page.locator(f"#{prefix}-start").inner_text().startswith("Start")
        assert page.locator(f"#{prefix}-stop").inner_text().startswith("Stop")
    page.locator("#training-algo").get_by_text("PPO", exact=True).click()
    page.screenshot(path=str(SHOTS / "after-training.png"))


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


@pytest.mark.browser
@pytest.mark.slow
def test_the_owner_sees_each_figure_once_while_their_run_trains(page, app_url, tiny_model_dir):
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    for title in ("Model and LoRA", "Optimisation", "Evaluation"):
        page.get_by_text(title, exact=True).first.click()
    _fill(page, "ppo-model", tiny_model_dir)
    _fill(page, "ppo-steps", 40)
    _fill(page, "ppo-batch-size", 4)
    page.locator("#ppo-start").click()
    page.locator("#ppo-plot .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=120_000)
    page.wait_for_timeout(2 * 2000 + 500)  # two ticks of the live box's timer
    assert "Your run" in page.locator("#live-status").inner_text()
    assert not page.locator("#live-plot").is_visible()  # the panel draws the curves, the live box does not
    assert not page.locator("#live-batch").is_visible()
    visible = page.locator(".js-plotly-plot:visible").count()
    titles = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter(e => e.offsetParent)"
        ".map(e => [...e.querySelectorAll('.annotation-text')].map(a => a.textContent).join('|'))"
    )
    assert visible == len(titles) and len(set(titles)) == len(titles), titles  # no figure twice
    page.screenshot(path=str(SHOTS / "after-training-running.png"), full_page=True)
    page.locator("#ppo-stop").click()
    page.wait_for_function("/(finished|stopped|failed)[:]/.test(document.querySelector('#ppo-status').innerText)", timeout=120_000)
