"""The over-optimisation figure (DataFrame in, plotly out): its traces hold exactly the records' proxy, gold
and KL, in step order, one colour per run, proxy solid on the left axis and gold dashed on the right."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rlhf_demo.plots.overopt import NO_GOLD, overopt_figure

NAN = math.nan


def live_records() -> pd.DataFrame:
    """Records as one PPO job yields them (no run column); step 2's gold is missing, step 3 is evaluated."""
    return pd.DataFrame(
        {
            "step": [1, 2, 3, 4],
            "objective/kl_exact": [0.1, 1.5, 4.0, 9.0],
            "reward_mean": [0.2, 0.9, 1.6, 2.4],
            "gold_reward_mean": [0.3, NAN, 0.5, 0.1],
            "eval/kl": [NAN, NAN, 3.8, NAN],
            "eval/reward_mean": [NAN, NAN, 1.5, NAN],
            "eval/gold_reward_mean": [NAN, NAN, 0.45, NAN],
        }
    )


def test_live_traces_equal_the_records():
    fig = overopt_figure(live_records())
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {
        "proxy (batch)",
        "gold (batch)",
        "proxy (batch, smoothed)",
        "gold (batch, smoothed)",
        "proxy (held-out ◆)",
        "gold (held-out ◆)",
        "gold peak ★ (smoothed batch gold)",  # one evaluation: the peak of the smoothed batch gold
    }
    proxy, gold = by_name["proxy (batch)"], by_name["gold (batch)"]
    assert list(proxy.x) == [0.1, 4.0, 9.0] and list(proxy.y) == [0.2, 1.6, 2.4]  # step 2 has no gold: left out
    assert list(gold.x) == [0.1, 4.0, 9.0] and list(gold.y) == [0.3, 0.5, 0.1]
    assert proxy.mode == gold.mode == "markers"  # batch points: markers, no zig-zag line in time order
    sp, sg = by_name["proxy (batch, smoothed)"], by_name["gold (batch, smoothed)"]
    assert sp.line.dash == "solid" and sg.line.dash == "dash" and sp.yaxis == "y" and sg.yaxis == "y2"
    # a centred running mean of 3 neighbours in KL order (KL 0.1, 4.0, 9.0), by hand
    assert sp.x == pytest.approx([(0.1 + 4.0) / 2, (0.1 + 4.0 + 9.0) / 3, (4.0 + 9.0) / 2])
    assert sg.y == pytest.approx([(0.3 + 0.5) / 2, (0.3 + 0.5 + 0.1) / 3, (0.5 + 0.1) / 2])
    assert proxy.yaxis == "y" and gold.yaxis == "y2" and fig.layout.yaxis2.overlaying == "y"
    held = by_name["gold (held-out ◆)"]
    assert list(held.x) == [3.8] and list(held.y) == [0.45] and by_name["proxy (held-out ◆)"].y == (1.5,)
    assert "KL" in fig.layout.xaxis.title.text
    peak = by_name["gold peak ★ (smoothed batch gold)"]
    assert list(peak.x) == pytest.approx([(0.1 + 4.0) / 2]) and list(peak.y) == pytest.approx([(0.3 + 0.5) / 2])
    assert [s.x0 for s in fig.layout.shapes] == pytest.approx([(0.1 + 4.0) / 2])  # the dotted line at its KL


def test_several_runs_one_colour_each_in_step_order():
    a = live_records().assign(run="beta0")
    b = pd.DataFrame({"step": [2, 1], "objective/kl_exact": [2.0, 0.5], "reward_mean": [0.7, 0.1], "gold_reward_mean": [0.4, 0.2]}).assign(
        run="preset"
    )
    c = pd.DataFrame({"step": [1], "loss": [0.6]}).assign(run="dpo")  # no gold: draws nothing
    fig = overopt_figure(pd.concat([a, b, c], ignore_index=True))
    names = [t.name for t in fig.data]
    assert not any(n.startswith("dpo") for n in names)
    pb = next(t for t in fig.data if t.name == "preset: proxy (batch)")
    gb = next(t for t in fig.data if t.name == "preset: gold (batch)")
    assert list(pb.x) == [0.5, 2.0] and list(pb.y) == [0.1, 0.7] and list(gb.y) == [0.2, 0.4]  # sorted by step
    colors = {t.name.split(":")[0]: t.line.color for t in fig.data if t.mode == "lines"}
    assert colors["beta0"] != colors["preset"]
    assert {t.line.color or t.marker.color for t in fig.data if t.name.startswith("beta0")} == {colors["beta0"]}
    sm = {t.name: t for t in fig.data if t.name.endswith("(batch, smoothed)")}
    assert sm["preset: proxy (batch, smoothed)"].line.dash == "solid" and sm["preset: gold (batch, smoothed)"].line.dash == "dash"


def test_no_gold_gives_a_placeholder():
    for df in (None, pd.DataFrame(), pd.DataFrame({"step": [1], "reward_mean": [0.1], "objective/kl_exact": [0.2]})):
        fig = overopt_figure(df)
        assert not fig.data and fig.layout.annotations[0].text == NO_GOLD
    import rlhf_demo.plots.overopt as p

    assert "import torch" not in open(p.__file__).read()
