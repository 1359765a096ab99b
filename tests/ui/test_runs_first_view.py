"""The Runs tab as a newcomer meets it (issue 25): the first click shows the shipped runs, the table leads
with what a learner compares (run, algorithm, held-out reward, KL, reward per nat, on topic, status) and
its headers do not wrap letter by letter; the settings are a second table; the over-optimisation plot
draws batch points as markers under a smoothed line, held-out points large."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rlhf_demo.plots.overopt import overopt_figure, smooth_by_kl
from rlhf_demo.runs.compare import EXAMPLE_RUN, LEAD_COLUMNS, runs_table, split_table

SHOTS = Path("/tmp/shots")


def test_the_table_leads_with_the_outcome_and_the_settings_come_second():
    runs = [p for p in sorted(Path(EXAMPLE_RUN).parent.iterdir()) if (p / "config.json").exists()]
    outcome, settings = split_table(runs_table(runs))
    assert list(outcome.columns) == [c for c in LEAD_COLUMNS if c in outcome.columns][: len(outcome.columns)]
    assert list(outcome.columns)[:3] == ["run", "algo", "held-out reward"] and "status" in outcome.columns
    assert settings.columns[0] == "run" and "lr" in settings.columns and "lr" not in outcome.columns
    assert len(outcome) == len(settings) == len(runs)


def test_smoothing_runs_along_kl_not_time():
    x = pd.Series([0.0, 4.0, 1.0, 3.0, 2.0, 5.0])  # KL back and forth in time order
    y = pd.Series([0.0, 4.0, 1.0, 3.0, 2.0, 5.0])
    sx, sy = smooth_by_kl(x, y, window=3)
    assert sx == sorted(sx) and sy == pytest.approx([0.5, 1.0, 2.0, 3.0, 4.0, 4.5])


def test_overopt_batch_points_are_markers_with_a_smoothed_line_and_held_out_points_large():
    df = pd.DataFrame(
        {
            "step": [1, 2, 3, 4],
            "objective/kl_exact": [0.1, 2.0, 1.0, 3.0],
            "reward_mean": [0.1, 0.9, 0.5, 1.2],
            "gold_reward_mean": [0.2, 0.3, 0.25, 0.1],
            "eval/kl": [None, 1.5, None, None],
            "eval/reward_mean": [None, 0.8, None, None],
            "eval/gold_reward_mean": [None, 0.3, None, None],
        }
    )
    by = {t.name: t for t in overopt_figure(df).data}
    assert by["proxy (batch)"].mode == "markers"
    smooth = by["proxy (batch, smoothed)"]
    assert smooth.mode == "lines" and list(smooth.x) == sorted(smooth.x)
    assert by["proxy (held-out ◆)"].marker.size > 2 * by["proxy (batch)"].marker.size


@pytest.mark.browser
def test_first_click_on_runs_shows_the_runs_with_readable_headers(page, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Runs").click()
    page.locator("#runs-table").get_by_text("example-ppo (shipped)").wait_for(timeout=15_000)
    headers = page.locator("#runs-table thead th")
    names = [h.strip() for h in headers.all_inner_texts()]
    assert [n for n in names if n][:3] == ["run", "algo", "held-out reward"], names
    for i in range(headers.count()):  # one line each: no "bat ch_ size"
        box = headers.nth(i).bounding_box()
        assert box is None or box["height"] < 60, names[i]
    page.locator("#runs-frontier .js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=15_000)
    page.screenshot(path=str(SHOTS / "after-runs-first-click.png"))
