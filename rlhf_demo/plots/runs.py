"""Comparison plots across runs (DataFrames in, plotly figures out; no torch):

- ``overlay_figure``: the same metric of several runs on shared axes, one colour per run. Held-out
  curves are the ``eval/…`` columns for every algorithm (``compare.load_curves`` gives old DPO runs
  those names too); each algorithm adds its own curves (``Algorithm.compare_keys``: DPO's loss and
  margin, PPO's and GRPO's batch reward), drawn for its runs only.
- ``frontier_figure``: every held-out evaluation of every run as held-out reward against
  KL(π‖π_ref) — the reward–KL trade-off of the DPO paper's Figure 2. Points of one run are joined in
  step order, so a run's path across the plane is visible, with its algorithm's marker (the ``symbol``
  column of ``compare.eval_points``); the base model sits at KL = 0. With
  ``pi_star`` (``compare.pi_star_curve``) the KL-regularised optimum π* is drawn from the base point:
  the most held-out reward any policy could buy at each KL (estimated; ``bench/ppo_frontier.py``).
  With ``best_of_n`` (``compare.best_of_n_points``) best-of-N of the reference sits beside it, one
  point per N (labelled N=…) at its KL bound log N − (N − 1)/N: the baseline a trained policy should
  beat at equal KL (``scripts/make_best_of_n.py``).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlhf_demo.algorithms import ALGORITHMS
from rlhf_demo.plots.training import empty_figure

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
BASE = "base"
"""The ``algo`` of the base model's point (``compare.eval_points``): not a run of any algorithm."""

HELD_OUT_PANELS: list[tuple[str, str, None]] = [
    ("Held-out reward", "eval/reward_mean", None),
    ("Held-out KL(π‖π_ref), nats / response", "eval/kl", None),
    ("Held-out distinct-2", "eval/distinct2", None),
    ("Held-out on topic (share about a film)", "eval/on_topic", None),
]
"""(title, metric column, None): every run's."""


def compare_panels() -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(title, metric column, only runs of these algorithms or None): the held-out panels, then each
    algorithm's own (``Algorithm.compare_keys``; a key several declare is one panel for all of them)."""
    own: dict[tuple[str, str], list] = {}
    for alg in ALGORITHMS.values():
        for title, key in alg.compare_keys:
            own.setdefault((title, key), []).append(alg)
    extra = [(f"{t} ({', '.join(a.label for a in algs)})", k, tuple(a.name for a in algs)) for (t, k), algs in own.items()]
    return HELD_OUT_PANELS + extra


def run_colors(runs: list[str]) -> dict[str, str]:
    return {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(runs)}


def _rows(curves: pd.DataFrame, algos: str | tuple[str, ...] | None) -> pd.DataFrame:
    if algos is None or "algo" not in curves.columns:
        return curves
    return curves[curves["algo"].astype(str).str.lower().isin([algos] if isinstance(algos, str) else algos)]


def overlay_figure(
    curves: pd.DataFrame, panels: list[tuple] | None = None, x: str = "step", cols: int = 3, height_per_row: int = 250
) -> go.Figure:
    """One subplot per (title, column, algorithms or None), ``compare_panels()`` by default; each run one
    line (markers where the metric is sparse)."""
    panels = compare_panels() if panels is None else panels
    if curves is None or len(curves) == 0 or x not in curves.columns:
        return empty_figure("Pick runs to compare.")
    present = [(t, c, a) for t, c, a in panels if c in curves.columns and _rows(curves, a)[c].notna().any()]
    if not present:
        return empty_figure("These runs have no metrics in common yet.")
    runs = list(dict.fromkeys(curves["run"]))
    colors = run_colors(runs)
    rows = math.ceil(len(present) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[t for t, _c, _a in present],
        horizontal_spacing=0.07,
        vertical_spacing=0.14 if rows > 1 else 0.1,
    )
    shown: set[str] = set()
    for i, (_t, col, algo) in enumerate(present):
        r, c = i // cols + 1, i % cols + 1
        sub = _rows(curves, algo)
        for run in runs:
            d = sub[(sub["run"] == run)][[x, col]].dropna()
            if d.empty:
                continue
            n_run = (sub["run"] == run).sum()
            sparse = len(d) < 0.5 * n_run or col.startswith("eval/")
            fig.add_trace(
                go.Scatter(
                    x=d[x],
                    y=d[col],
                    name=run,
                    legendgroup=run,
                    showlegend=run not in shown,
                    mode="lines+markers" if sparse else "lines",
                    line={"color": colors[run], "dash": "dot" if sparse else "solid"},
                    marker={"size": 7},
                ),
                row=r,
                col=c,
            )
            shown.add(run)
    fig.update_layout(
        height=rows * height_per_row + 70,
        template="plotly_white",
        margin=dict(l=40, r=20, t=40, b=30),
        legend={"orientation": "h", "y": -0.06 / rows, "x": 0},
    )
    return fig


PI_STAR_COLOR = "#555555"
BEST_OF_N_COLOR = "#e07b00"


def frontier_figure(
    points: pd.DataFrame,
    kl_max: float | None = None,
    target: tuple[float, float] | None = None,
    pi_star: pd.DataFrame | None = None,
    base_reward: float | None = None,
    best_of_n: pd.DataFrame | None = None,
) -> go.Figure:
    """Held-out reward against KL for every evaluation point (columns run, algo, step, reward, kl; symbol
    and label, when given, mark each run's algorithm).

    ``target`` = (minimum reward, maximum KL) draws the course's target box (``compare.frontier_target``:
    base + 0.3 at ≤ 6 nats). ``pi_star`` (columns beta, gain, kl) with ``base_reward`` draws π*'s curve,
    reward = base_reward + gain, starting at the base point (KL 0). ``best_of_n`` (columns n, gain,
    kl_bound) with ``base_reward`` draws best-of-N's points at (kl_bound, base_reward + gain), each
    labelled N=…: its KL is at most the bound, so a run left of a point at equal reward beats it."""
    if points is None or len(points) == 0:
        return empty_figure("No held-out evaluations yet: runs evaluate every k steps and at the end.")
    fig = go.Figure()
    runs = list(dict.fromkeys(points["run"]))
    algos = dict(zip(points["run"], points["algo"].astype(str).str.lower()))
    colors = run_colors([r for r in runs if algos[r] != BASE])  # the same colours as overlay_figure
    colors.update({r: "#333333" for r in runs if algos[r] == BASE})
    if target is not None:
        lo, kmax = target
        top = max(float(points["reward"].max()), lo) + 0.05
        for extra in (pi_star, best_of_n):
            if extra is not None and len(extra) and base_reward is not None:
                top = max(top, base_reward + float(extra["gain"].max()) + 0.05)
        fig.add_shape(
            type="rect",
            x0=0,
            x1=kmax,
            y0=lo,
            y1=top,
            fillcolor="rgba(44,160,44,0.08)",
            line={"color": "rgba(44,160,44,0.6)", "dash": "dash"},
        )
        fig.add_annotation(
            x=kmax,
            y=top,
            text=f"target: reward ≥ {lo:+.2f} at KL ≤ {kmax:g}",
            showarrow=False,
            xanchor="right",
            yanchor="top",
            font={"size": 11, "color": "#2ca02c"},
        )
    if pi_star is not None and len(pi_star) and base_reward is not None:
        curve = pd.concat([pd.DataFrame([{"beta": float("inf"), "gain": 0.0, "kl": 0.0}]), pi_star], ignore_index=True)
        fig.add_trace(
            go.Scatter(
                x=curve["kl"],
                y=base_reward + curve["gain"],
                name="π* (optimum, estimated)",
                mode="lines",
                line={"color": PI_STAR_COLOR, "width": 2, "dash": "dash"},
                text=[f"β = {b:g}" for b in curve["beta"]],
                hovertemplate="π* at %{text}<br>KL %{x:.2f} nats<br>reward %{y:.3f}<extra>π*</extra>",
            )
        )
    if best_of_n is not None and len(best_of_n) and base_reward is not None:
        fig.add_trace(
            go.Scatter(
                x=best_of_n["kl_bound"],
                y=base_reward + best_of_n["gain"],
                name="best-of-N of the reference (KL at its bound)",
                mode="lines+markers+text",
                line={"color": BEST_OF_N_COLOR, "width": 1, "dash": "dot"},
                marker={"symbol": "pentagon", "size": 10, "color": BEST_OF_N_COLOR},
                text=[f"N={int(n)}" for n in best_of_n["n"]],
                textposition="top left",
                textfont={"size": 10, "color": BEST_OF_N_COLOR},
                hovertemplate="best of %{text}<br>KL ≤ %{x:.2f} nats<br>reward %{y:.3f}<extra>best-of-N</extra>",
            )
        )
    for run in runs:
        d = points[points["run"] == run].sort_values("step")
        algo = str(d["algo"].iloc[0]).lower()
        label = str(d["label"].iloc[0]) if "label" in d.columns else algo
        symbol = str(d["symbol"].iloc[0]) if "symbol" in d.columns else "circle"
        err = d["reward_sem"] if "reward_sem" in d.columns and d["reward_sem"].notna().any() else None
        fig.add_trace(
            go.Scatter(
                x=d["kl"],
                y=d["reward"],
                name=run if algo == BASE else f"{run} ({label})",
                mode="lines+markers",
                line={"color": colors[run], "width": 1.5},
                marker={"symbol": symbol, "size": 10 if algo != BASE else 16},
                error_y={"type": "data", "array": list(err.fillna(0)), "thickness": 1, "width": 3} if err is not None else None,
                text=[f"step {s}" for s in d["step"]],
                hovertemplate="%{text}<br>KL %{x:.2f} nats<br>reward %{y:.3f}<extra>" + run + "</extra>",
            )
        )
    fig.update_layout(
        height=460,
        template="plotly_white",
        margin=dict(l=50, r=20, t=40, b=40),
        title="Held-out reward vs KL(π‖π_ref) — every evaluation of every run",
        xaxis_title="KL(π‖π_ref), nats per response",
        yaxis_title="held-out mean reward",
        legend={"orientation": "v", "x": 1.01, "y": 1},
    )
    if kl_max is not None:
        fig.update_xaxes(range=[0, kl_max])
    return fig
