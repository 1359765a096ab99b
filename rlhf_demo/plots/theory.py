"""Plot builders for the Theory tab: DataFrames in, plotly figures out (no torch here).

- ``optimal_policy_figure``: π_ref (renormalised over the candidates) beside π* at β.
- ``beta_curves_figure``: E_π*[r] and KL(π*‖π_ref) against β, the β sweep of ``theory.optimal``.
- ``toy_update_figure`` / ``toy_history_figure``: one REINFORCE step, and π(word) over the steps.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlhf_demo.plots.kl import COLORS, layout

WORD_PALETTE = [
    "#2563eb",
    "#16a34a",
    "#f59e0b",
    "#dc2626",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#ea580c",
    "#4b5563",
    "#0d9488",
    "#a16207",
]
"""One colour per toy word (12 = MAX_WORDS)."""


def optimal_policy_figure(table: pd.DataFrame, beta: float) -> go.Figure:
    """π_ref (renormalised over the candidates) beside π* at β, one pair of bars per candidate."""
    order = table.sort_values("reward", ascending=False)
    x = [f"{i}: r={r:+.2f} {t[:28]!r}" for i, (r, t) in enumerate(zip(order["reward"], order["response"]))]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=order["q_ref"], name="π_ref (renormalised)", marker_color=COLORS["reference"]))
    fig.add_trace(go.Bar(x=x, y=order["pi_star"], name=f"π* at β = {beta:g}", marker_color=COLORS["optimal"]))
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickangle=-35)
    fig.update_yaxes(title_text="probability over the K candidates")
    return layout(fig, "π*(y) ∝ π_ref(y)·exp(r(y)/β), candidates sorted by reward", height=480)


def beta_curves_figure(sweep: pd.DataFrame, beta: float | None = None) -> go.Figure:
    """Expected reward of π* and KL(π*‖π_ref) against β (log axis); the current β marked."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(x=sweep["beta"], y=sweep["expected_reward"], name="E_π*[r]", line=dict(color=COLORS["optimal"])), secondary_y=False
    )
    fig.add_trace(
        go.Scatter(x=sweep["beta"], y=sweep["ref_expected_reward"], name="E_π_ref[r]", line=dict(color=COLORS["reference"], dash="dot")),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(x=sweep["beta"], y=sweep["kl"], name="KL(π*‖π_ref)", line=dict(color=COLORS["kl_exact"], dash="dash")), secondary_y=True
    )
    if beta is not None and beta > 0:  # a trace, not a shape: shapes on log axes take log10 units
        lo, hi = float(sweep["expected_reward"].min()), float(sweep["expected_reward"].max())
        fig.add_trace(
            go.Scatter(
                x=[beta, beta],
                y=[lo, hi],
                mode="lines+text",
                name=f"β = {beta:g}",
                text=["", f"β = {beta:g}"],
                textposition="top right",
                line=dict(color="#dc2626", width=2),
            ),
            secondary_y=False,
        )
    fig.update_xaxes(type="log", title_text="β (small: chase reward · large: stay at π_ref)")
    fig.update_yaxes(title_text="expected reward", secondary_y=False)
    fig.update_yaxes(title_text="KL (nats)", secondary_y=True)
    return layout(fig, "The trade-off: reward vs KL as β varies", height=400)


def toy_update_figure(probs: pd.DataFrame) -> go.Figure:
    """Toy policy before the step, after REINFORCE, after maximum likelihood on the same samples, π*."""
    fig = go.Figure()
    series = [
        ("before", "before the step", COLORS["reference"]),
        ("reinforce", "after REINFORCE", COLORS["policy"]),
        ("max_likelihood", "after max-likelihood (same samples)", COLORS["ml"]),
        ("optimal", "analytic π*", COLORS["optimal"]),
    ]
    for col, name, color in series:
        if col in probs:
            fig.add_trace(go.Bar(x=probs["word"], y=probs[col], name=name, marker_color=color))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="probability", range=[0, 1])
    return layout(fig, "One step: REINFORCE vs maximum likelihood", height=380)


def toy_history_figure(history: pd.DataFrame, words: list[str], optimal: list[float] | None = None) -> go.Figure:
    """π(word) over steps (history columns: step, and one per word); dashed lines at π* if given."""
    fig = go.Figure()
    for i, w in enumerate(words):
        c = WORD_PALETTE[i % len(WORD_PALETTE)]
        if w in history:
            fig.add_trace(go.Scatter(x=history["step"], y=history[w], name=w, line=dict(color=c)))
        if optimal is not None:
            fig.add_hline(y=optimal[i], line_dash="dash", line_color=c, line_width=1)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="π(word)", range=[0, 1])
    sub = " (dashed: analytic π*)" if optimal is not None else " (no KL penalty: heads for the best word)"
    return layout(fig, "Policy over steps" + sub, height=380)
