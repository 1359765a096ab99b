"""Plot builders for the KL tab: DataFrames in, plotly figures out (no torch here).

Tokens are labelled "index:token" so repeated strings stay separate bars. ``COLORS`` and ``layout``
are shared with the Theory tab's figures (``plots.theory``), so π_ref and KL look the same in both.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {
    "kl_exact": "#1f2937",
    "k1": "#2563eb",
    "k2": "#f59e0b",
    "k3": "#16a34a",
    "policy": "#db2777",
    "reference": "#6366f1",
    "optimal": "#16a34a",
    "ml": "#9ca3af",
}
LABELS = {"kl_exact": "exact KL (whole vocabulary)", "k1": "k1 = log r", "k2": "k2 = ½ (log r)²", "k3": "k3 = (r−1) − log r"}


def layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    """Title, height, margins, a legend above the plot, the white template."""
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=50, r=20, t=50, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        template="plotly_white",
    )
    return fig


def token_labels(table: pd.DataFrame) -> list[str]:
    return [f"{i}:{t!r}"[:24] for i, t in zip(table["position"], table["token"])]


def per_token_figure(table: pd.DataFrame) -> go.Figure:
    """Per-token bars (exact KL, k1, k2, k3) above the running totals along the response."""
    x = token_labels(table)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.6, 0.4])
    for k in ("kl_exact", "k1", "k2", "k3"):
        fig.add_trace(go.Bar(x=x, y=table[k], name=LABELS[k], marker_color=COLORS[k], legendgroup=k), 1, 1)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=table[f"cum_{k}"],
                mode="lines+markers",
                name=LABELS[k],
                line=dict(color=COLORS[k], dash="solid" if k == "kl_exact" else "dot"),
                legendgroup=k,
                showlegend=False,
            ),
            2,
            1,
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickangle=-45, row=2, col=1)
    fig.update_yaxes(title_text="per token (nats)", row=1, col=1)
    fig.update_yaxes(title_text="running total", row=2, col=1)
    return layout(fig, "KL(π‖π_ref) token by token", height=560)


def top_candidates_figure(top: pd.DataFrame, position: int, token: str) -> go.Figure:
    """Top candidates of π and of π_ref at the max-KL position, side by side."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("policy π: its top tokens", "reference π_ref: its top tokens"), horizontal_spacing=0.18
    )
    y_pol = [f"{i}. {t!r}" for i, t in zip(top["rank"], top["policy_token"])][::-1]
    y_ref = [f"{i}. {t!r}" for i, t in zip(top["rank"], top["ref_token"])][::-1]
    fig.add_trace(go.Bar(y=y_pol, x=top["policy_p"][::-1], orientation="h", name="π", marker_color=COLORS["policy"]), 1, 1)
    fig.add_trace(go.Bar(y=y_pol, x=top["policy_p_ref"][::-1], orientation="h", name="π_ref", marker_color=COLORS["reference"]), 1, 1)
    fig.add_trace(
        go.Bar(y=y_ref, x=top["ref_p"][::-1], orientation="h", name="π_ref", marker_color=COLORS["reference"], showlegend=False), 1, 2
    )
    fig.add_trace(
        go.Bar(y=y_ref, x=top["ref_p_policy"][::-1], orientation="h", name="π", marker_color=COLORS["policy"], showlegend=False), 1, 2
    )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="probability")
    return layout(fig, f"Largest exact KL at position {position} (predicting {token!r})", height=420)


def estimator_spread_figure(samples: pd.DataFrame, true_kl: float) -> go.Figure:
    """Each sample's k1/k2/k3 sequence estimate and its exact value; the dashed line is the true KL."""
    fig = go.Figure()
    for k in ("kl_exact", "k1", "k2", "k3"):
        fig.add_trace(
            go.Box(
                y=samples[k],
                name=LABELS[k],
                marker_color=COLORS[k],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                boxmean=True,
                customdata=samples["response"],
                hovertemplate="%{y:.3f}<br>%{customdata}<extra></extra>",
            )
        )
    fig.add_hline(
        y=true_kl,
        line_dash="dash",
        line_color="#dc2626",
        annotation_text=f"true KL ≈ {true_kl:.3f} (mean exact)",
        annotation_position="top left",
    )
    fig.add_hline(y=0, line_color="#9ca3af", line_width=1)
    fig.update_yaxes(title_text="sequence KL estimate (nats)")
    return layout(fig, f"Estimator spread over {len(samples)} samples from π", height=440)


def contribution_highlights(table: pd.DataFrame, by: str = "kl_exact") -> list[tuple[str, float]]:
    """(token, value in −1…1) for gr.HighlightedText: each token's share of ``by``, scaled by the max |value|."""
    vals = table[by].astype(float)
    scale = float(vals.abs().max()) or 1.0
    return [(str(t), float(v) / scale) for t, v in zip(table["token"], vals)]
