"""Training curves: a metrics DataFrame (one row per update/step) → one plotly figure of subplots.

Generic: ``training_figure(df, panels)`` takes a list of ``(title, [columns])``; a column named in
``bands`` gets a shaded ±band (e.g. reward_mean ± reward_std); columns that are only sometimes present
(``eval/...``) are drawn as markers on the rows that have them. ``PPO_PANELS`` and ``DPO_PANELS`` are the two trainers' sets. No torch here.

One legend per panel: a panel with several lines names them in its own title, each name in its line's
colour ("━ batch KL (k1) · ━ batch KL (exact) · ◆ held-out KL"), so no shared legend covers an axis
and a colour means one thing within the panel that shows it.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PPO_PANELS: list[tuple[str, list[str]]] = [
    ("Reward (batch mean ± std; ◆ held-out)", ["reward_mean", "eval/reward_mean"]),
    ("KL to reference (nats / response)", ["objective/kl", "objective/kl_exact", "eval/kl"]),
    ("Score − β·KL", ["objective/rlhf_reward"]),
    ("Entropy (nats / token)", ["policy/entropy_avg"]),
    ("Clip fraction", ["policy/clipfrac_avg", "val/clipfrac_avg"]),
    ("Approx-KL π_old → π", ["policy/approxkl_avg"]),
    ("Value loss", ["loss/value_avg"]),
    ("Response length (tokens)", ["response_length"]),
    ("β (KL coefficient)", ["beta"]),
]
DPO_PANELS: list[tuple[str, list[str]]] = [
    ("Loss −log σ(β·margin)", ["loss"]),
    ("Implicit rewards β·log π/π_ref", ["rewards/chosen", "rewards/rejected"]),
    ("Reward margin (chosen − rejected)", ["rewards/margins"]),
    ("Preference accuracy (r_c > r_r)", ["rewards/accuracies"]),
    ("log π(response): chosen vs rejected", ["logps/chosen", "logps/rejected"]),
    ("Held-out reward ◆", ["eval/reward_mean"]),
    ("Held-out KL(π‖π_ref) ◆ (nats / response)", ["eval/kl"]),
]
GRPO_PANELS: list[tuple[str, list[str]]] = [
    ("Reward (batch mean ± std; ◆ held-out)", ["reward_mean", "eval/reward_mean"]),
    ("Batch KL, k3 (nats / token; TRL's kl)", ["kl"]),
    ("Held-out KL(π‖π_ref) ◆ (nats / response)", ["eval/kl"]),
    ("Groups with equal rewards (no signal)", ["frac_reward_zero_std"]),
    ("Entropy (nats / token)", ["entropy"]),
    ("Loss (policy term + β·KL)", ["loss"]),
]
BANDS = {"reward_mean": "reward_std"}
LABELS = {
    "bon/reward_kept": "kept samples",
    "bon/reward_all": "all N samples",
    "bon/kl_bound": "best-of-N bound",
    "reward_mean": "batch reward",
    "eval/reward_mean": "held-out reward",
    "objective/kl": "batch KL (k1)",
    "objective/kl_exact": "batch KL (exact)",
    "eval/kl": "held-out KL (exact)",
    "objective/rlhf_reward": "score − β·KL",
    "policy/entropy_avg": "entropy",
    "policy/clipfrac_avg": "policy clipfrac",
    "val/clipfrac_avg": "value clipfrac",
    "policy/approxkl_avg": "approx-KL",
    "loss/value_avg": "value loss",
    "response_length": "tokens",
    "beta": "β",
}
ZERO_BASED = {"beta", "objective/kl", "objective/kl_exact", "eval/kl"}
"""Columns whose panel's y axis starts at 0 (a constant β = 0.03 must not look like β = 0)."""
KL_PANEL = PPO_PANELS[1][0]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def empty_figure(message: str = "Start a run to see its curves here.") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 15})
    fig.update_layout(height=260, xaxis={"visible": False}, yaxis={"visible": False}, margin=dict(l=20, r=20, t=20, b=20))
    return fig


def panel_title(title: str, columns: list[str]) -> str:
    """A panel's title, with its own legend when it draws more than one line: each name in its colour
    (``COLORS`` in the order the lines are drawn), ◆ before held-out (sparse) ones."""
    if len(columns) < 2:
        return title
    names = [
        f"<span style='color:{COLORS[j % len(COLORS)]}'>{'◆' if c.startswith('eval/') else '━'} {LABELS.get(c, c)}</span>"
        for j, c in enumerate(columns)
    ]
    return f"{title.split(' (')[0] if len(title) > 28 else title}<br><span style='font-size:11px'>{' · '.join(names)}</span>"


def training_figure(
    df: pd.DataFrame,
    panels: list[tuple[str, list[str]]] | None = None,
    x: str = "step",
    bands: dict[str, str] | None = None,
    cols: int = 3,
    height_per_row: int = 230,
    title: str | None = None,
    hlines: dict[str, tuple[float, str]] | None = None,
) -> go.Figure:
    """Subplots of metric curves. Panels whose columns are all absent are skipped.

    ``hlines`` maps a panel title to (y, label): a dashed reference line, e.g. the KL budget."""
    panels = PPO_PANELS if panels is None else panels
    bands = BANDS if bands is None else bands
    if df is None or len(df) == 0 or x not in df.columns:
        return empty_figure()
    present = [(t, [c for c in cs if c in df.columns and df[c].notna().any()]) for t, cs in panels]
    present = [(t, cs) for t, cs in present if cs]
    if not present:
        return empty_figure("No metrics to plot yet.")
    rows = math.ceil(len(present) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[panel_title(t, cs) for t, cs in present],
        horizontal_spacing=0.07,
        vertical_spacing=0.16 if rows > 1 else 0.1,
    )
    for i, (_title, columns) in enumerate(present):
        r, c = i // cols + 1, i % cols + 1
        for j, col in enumerate(columns):
            d = df[[x, col] + ([bands[col]] if col in bands and bands[col] in df.columns else [])].dropna(subset=[col])
            color = COLORS[j % len(COLORS)]
            sparse = d.shape[0] < 0.5 * df[x].notna().sum() or col.startswith("eval/")
            if col in bands and bands[col] in d.columns:
                lo, hi = d[col] - d[bands[col]], d[col] + d[bands[col]]
                fig.add_trace(
                    go.Scatter(
                        x=list(d[x]) + list(d[x])[::-1],
                        y=list(hi) + list(lo)[::-1],
                        fill="toself",
                        fillcolor="rgba(31,119,180,0.15)",
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                    ),
                    row=r,
                    col=c,
                )
            fig.add_trace(
                go.Scatter(
                    x=d[x],
                    y=d[col],
                    name=LABELS.get(col, col),
                    legendgroup=col,
                    mode="markers+lines" if sparse or len(d) < 25 else "lines",
                    marker={"symbol": "diamond", "size": 9, "color": color} if sparse else {"size": 4, "color": color},
                    line={"color": color, "dash": "dot" if sparse else "solid"},
                    showlegend=False,  # the panel's title names its lines
                ),
                row=r,
                col=c,
            )
        if any(col in ZERO_BASED for col in columns):
            fig.update_yaxes(rangemode="tozero", row=r, col=c)
        if hlines and _title in hlines:
            y, label = hlines[_title]
            fig.add_hline(y=y, line_dash="dash", line_color="#555", annotation_text=label, annotation_position="top left", row=r, col=c)
    fig.update_layout(
        height=rows * height_per_row + 60,
        margin=dict(l=40, r=20, t=80 if title else 60, b=30),
        showlegend=False,
        title=title,
        template="plotly_white",
    )
    fig.update_xaxes(title_text=None)
    fig.update_annotations(font_size=12)
    return fig
