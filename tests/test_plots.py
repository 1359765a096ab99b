"""Training-curve figures from metric DataFrames (no torch)."""

import pandas as pd

from rlhf_demo.plots.training import PPO_PANELS, empty_figure, training_figure


def test_ppo_figure_has_a_panel_per_metric_and_eval_markers():
    df = pd.DataFrame(
        {
            "step": [1, 2, 3],
            "reward_mean": [0.1, 0.2, 0.3],
            "reward_std": [0.3, 0.3, 0.2],
            "objective/kl": [0.0, 0.5, 1.0],
            "eval/reward_mean": [None, None, 0.4],
            "beta": [0.05, 0.06, 0.07],
        }
    )
    fig = training_figure(df, PPO_PANELS)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("Reward") and any(t.startswith("KL") for t in titles) and any(t.startswith("β") for t in titles)
    assert len(titles) == 3  # panels with no data are skipped
    names = [t.name for t in fig.data]
    assert "held-out reward" in names and "batch reward" in names
    held = next(t for t in fig.data if t.name == "held-out reward")
    assert list(held.x) == [3] and "markers" in held.mode
    band = [t for t in fig.data if t.fill == "toself"]
    assert len(band) == 1 and max(band[0].y) == 0.5  # 0.3 + 0.2 at step 3


def test_generic_panels_for_other_trainers():
    df = pd.DataFrame({"step": [1, 2], "loss": [0.69, 0.6], "rewards/margins": [0.0, 0.1]})
    fig = training_figure(df, [("Loss", ["loss"]), ("Margin", ["rewards/margins"]), ("Absent", ["nope"])], bands={})
    assert [a.text for a in fig.layout.annotations] == ["Loss", "Margin"]


def test_empty_inputs_give_a_placeholder():
    assert training_figure(pd.DataFrame()).layout.annotations[0].text.startswith("Start a run")
    assert empty_figure("x").layout.annotations[0].text == "x"
    import rlhf_demo.plots.training as p

    assert "import torch" not in open(p.__file__).read()


def test_kl_budget_line_and_zero_based_beta_axis():
    from rlhf_demo.plots.training import KL_PANEL

    df = pd.DataFrame({"step": [1, 2, 3], "reward_mean": [0.1, 0.2, 0.3], "objective/kl": [0.0, 2.5, 5.5], "beta": [0.03, 0.03, 0.03]})
    fig = training_figure(df, PPO_PANELS, hlines={KL_PANEL: (5.0, "KL budget 5")})
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].y0 == lines[0].y1 == 5.0 and lines[0].yref == "y2"  # the KL panel's axis
    assert "KL budget 5" in [a.text for a in fig.layout.annotations]
    assert fig.layout.yaxis3.rangemode == "tozero" and fig.layout.yaxis2.rangemode == "tozero"  # β and KL panels
    assert fig.layout.yaxis.rangemode != "tozero"  # the reward panel is not


def test_theory_figures_from_dataframes():
    from rlhf_demo.plots import kl as plots_kl
    from rlhf_demo.plots.theory import beta_curves_figure, optimal_policy_figure, toy_history_figure, toy_update_figure

    table = pd.DataFrame(
        {"response": [" fine", " great", " bad"], "reward": [0.1, 0.9, -0.5], "q_ref": [0.5, 0.3, 0.2], "pi_star": [0.3, 0.65, 0.05]}
    )
    fig = optimal_policy_figure(table, 0.2)
    assert [t.name for t in fig.data] == ["π_ref (renormalised)", "π* at β = 0.2"]
    assert list(fig.data[1].y) == [0.65, 0.3, 0.05]  # sorted by reward, best first
    sweep = pd.DataFrame(
        {"beta": [0.01, 1.0, 100.0], "expected_reward": [0.9, 0.5, 0.2], "kl": [1.2, 0.3, 0.0], "ref_expected_reward": [0.2] * 3}
    )
    curves = beta_curves_figure(sweep, beta=0.5)
    assert curves.layout.xaxis.type == "log" and list(curves.data[-1].x) == [0.5, 0.5]
    assert len(beta_curves_figure(sweep).data) == 3  # no β marker without a β
    probs = pd.DataFrame({"word": ["a", "b"], "before": [0.5, 0.5], "reinforce": [0.6, 0.4], "max_likelihood": [0.55, 0.45]})
    assert [t.name for t in toy_update_figure(probs).data] == ["before the step", "after REINFORCE", "after max-likelihood (same samples)"]
    hist = pd.DataFrame({"step": [0, 1, 2], "a": [0.5, 0.6, 0.7], "b": [0.5, 0.4, 0.3]})
    h = toy_history_figure(hist, ["a", "b"], optimal=[0.8, 0.2])
    assert [t.name for t in h.data] == ["a", "b"] and sorted(s.y0 for s in h.layout.shapes) == [0.2, 0.8]
    assert "no KL penalty" in toy_history_figure(hist, ["a", "b"]).layout.title.text
    assert not hasattr(plots_kl, "optimal_policy_figure")  # the KL tab's module keeps only its own figures
