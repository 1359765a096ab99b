"""Over-optimisation: the proxy reward the policy is trained on and the gold reward it stands for, both
against KL(π‖π_ref), on one panel (Gao et al. 2022, "Scaling Laws for Reward Model Overoptimization",
https://arxiv.org/abs/2210.10760, Figure 1). With a learned reward model (``rm:RUN_DIR``) as the proxy
and VADER as the gold, the proxy keeps rising as the policy moves away from the reference while the
gold score flattens or falls: the gap is the reward model being exploited.

``overopt_figure(df)`` takes a DataFrame of metrics records (one row per PPO update), live (the job's
records) or from run folders (``runs.compare.load_curves``: a ``run`` column, one colour per run):

- x: the batch's exact KL, ``objective/kl_exact`` (nats per response: the KL panel's, the budget's);
- proxy ``reward_mean``: solid line, left axis; gold ``gold_reward_mean``: dashed line, right axis
  (their scales differ: a reward model's score has no fixed zero or unit);
- held-out evaluations (``eval/kl``, ``eval/reward_mean``, ``eval/gold_reward_mean``) as large diamonds,
  joined in step order by a thin line (the same prompts each time: the cleanest view of rise and fall);
- the gold's peak (``gold_peak``) as a star with its value and KL written beside it, and a dotted
  vertical line at its KL: past it, the proxy's gains are the reward model being exploited.

Batch points are faint markers (the batch KL goes back and forth, so a line through them in time order
is a zig-zag); over them a smoothed line: the running mean along KL (``smooth_by_kl``). Rows missing
the KL, the proxy or the gold are left out; a run without a gold reward draws nothing. No torch here.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from rlhf_demo.plots.runs import run_colors
from rlhf_demo.plots.training import empty_figure

KL, PROXY, GOLD = "objective/kl_exact", "reward_mean", "gold_reward_mean"
EVAL_KL, EVAL_PROXY, EVAL_GOLD = "eval/kl", "eval/reward_mean", "eval/gold_reward_mean"
NO_GOLD = (
    "No gold reward logged yet: train PPO on a learned reward (rm:RUN_DIR) with a gold reward "
    "(VADER by default) to see proxy and gold against KL."
)


def _runs(df: pd.DataFrame) -> list[tuple[str | None, pd.DataFrame]]:
    """(run name or None, its rows in step order)."""
    order = (lambda d: d.sort_values("step", kind="stable")) if "step" in df.columns else (lambda d: d)
    if "run" not in df.columns:
        return [(None, order(df))]
    return [(run, order(df[df["run"] == run])) for run in dict.fromkeys(df["run"])]


def overopt_points(df: pd.DataFrame, kl: str = KL, proxy: str = PROXY, gold: str = GOLD) -> pd.DataFrame:
    """The rows that have all three of ``kl``, ``proxy`` and ``gold`` (what one set of traces draws)."""
    need = [kl, proxy, gold]
    if df is None or not set(need) <= set(df.columns):
        return pd.DataFrame(columns=need)
    return df.dropna(subset=need)


def smooth_by_kl(x: pd.Series, y: pd.Series, window: int | None = None) -> tuple[list[float], list[float]]:
    """The points sorted by KL and a centred running mean of ``window`` neighbours (default: an eighth of
    the points, at least 3) of both coordinates: ȳ_i = mean(y_(i−w/2) … y_(i+w/2)) in KL order."""
    d = pd.DataFrame({"x": list(x), "y": list(y)}).sort_values("x", kind="stable")
    if len(d) < 3:
        return list(d["x"]), list(d["y"])
    w = window or max(3, len(d) // 8)
    r = d.rolling(w, center=True, min_periods=1).mean()
    return list(r["x"]), list(r["y"])


def heldout_windows(df: pd.DataFrame, window: int = 3) -> pd.DataFrame:
    """The held-out evaluations of one run in step order, averaged over each ``window`` consecutive ones:

        s_i = (1/w) · Σ_{j=i}^{i+w−1} v_j     for v in (eval KL, proxy, gold),  i = 0 … n − w

    Columns ``kl``, ``proxy``, ``gold`` and ``step`` (the window's last evaluation); empty when the run has
    fewer than ``window`` evaluations with all three values."""
    held = overopt_points(df, EVAL_KL, EVAL_PROXY, EVAL_GOLD)
    if "step" in held.columns:
        held = held.sort_values("step", kind="stable")
    cols = {"kl": EVAL_KL, "proxy": EVAL_PROXY, "gold": EVAL_GOLD}
    if len(held) < window:
        return pd.DataFrame(columns=[*cols, "step"])
    out = pd.DataFrame({k: held[c].astype(float).rolling(window).mean() for k, c in cols.items()})
    out["step"] = list(held["step"]) if "step" in held.columns else range(len(held))
    return out.iloc[window - 1 :].reset_index(drop=True)


def gold_peak(df: pd.DataFrame, window: int = 3) -> dict | None:
    """Where one run's gold peaks: the window of ``window`` held-out evaluations with the highest mean
    gold (``heldout_windows``; ties: the first), else, with fewer evaluations, the highest point of the
    batch gold smoothed along KL (``smooth_by_kl``). ``{kl, gold, source}`` with source "held-out" or
    "batch"; None when the run has no gold."""
    win = heldout_windows(df, window)
    if len(win):
        best = win.iloc[int(win["gold"].astype(float).values.argmax())]
        return {"kl": float(best["kl"]), "gold": float(best["gold"]), "source": "held-out"}
    batch = overopt_points(df)
    if not len(batch):
        return None
    sx, sy = smooth_by_kl(batch[KL], batch[GOLD])
    i = max(range(len(sy)), key=lambda k: (sy[k], -k))
    return {"kl": float(sx[i]), "gold": float(sy[i]), "source": "batch"}


def _peak_traces(fig: go.Figure, peak: dict, color: str, label: str, run) -> None:
    """A star at the gold's peak (right axis), its value and KL beside it, a dotted line at its KL."""
    where = f"{label}gold peak {peak['gold']:+.2f} at {peak['kl']:.1f} nats"
    fig.add_trace(
        go.Scatter(
            x=[peak["kl"]],
            y=[peak["gold"]],
            name=f"{label}gold peak ★ ({'held-out, mean of 3 evaluations' if peak['source'] == 'held-out' else 'smoothed batch gold'})",
            yaxis="y2",
            mode="markers+text",
            text=[f"peak {peak['gold']:+.2f}"],
            textposition="top center",
            textfont={"color": color, "size": 13},
            cliponaxis=False,  # the label of a peak at the top of the axis is drawn whole
            marker={"symbol": "star", "size": 20, "color": color, "line": {"color": "#222", "width": 1.5}},
            legendgroup=f"{run}:peak",
            hovertemplate=f"{where}<extra>{run or ''}</extra>",
        )
    )
    fig.add_vline(x=peak["kl"], line={"color": color, "dash": "dot", "width": 1.5})


def overopt_figure(df: pd.DataFrame, title: str | None = None, height: int = 420) -> go.Figure:
    """Proxy (solid, left axis) and gold (dashed, right axis) reward against KL, one colour per run."""
    if df is None or len(df) == 0:
        return empty_figure(NO_GOLD)
    runs = _runs(df)
    colors = run_colors([r for r, _ in runs])
    fig = go.Figure()
    for run, d in runs:
        color, label = colors[run], ("" if run is None else f"{run}: ")
        batch = overopt_points(d)
        held = overopt_points(d, EVAL_KL, EVAL_PROXY, EVAL_GOLD)
        for what, col, ecol, dash, axis in (("proxy", PROXY, EVAL_PROXY, "solid", "y"), ("gold", GOLD, EVAL_GOLD, "dash", "y2")):
            if len(batch):
                fig.add_trace(
                    go.Scatter(
                        x=batch[KL],
                        y=batch[col],
                        name=f"{label}{what} (batch)",
                        yaxis=axis,
                        mode="markers",
                        marker={"size": 5, "color": color, "opacity": 0.35, "symbol": "circle" if what == "proxy" else "circle-open"},
                        legendgroup=f"{run}:{what}",
                        showlegend=False,
                        hovertemplate=f"{what}: %{{y:.3f}}<br>KL %{{x:.2f}} nats<extra>{run or ''}</extra>",
                    )
                )
                sx, sy = smooth_by_kl(batch[KL], batch[col])
                fig.add_trace(
                    go.Scatter(
                        x=sx,
                        y=sy,
                        name=f"{label}{what} (batch, smoothed)",
                        yaxis=axis,
                        mode="lines",
                        line={"color": color, "dash": dash, "width": 3},
                        legendgroup=f"{run}:{what}",
                        hoverinfo="skip",
                    )
                )
            if len(held):
                fig.add_trace(
                    go.Scatter(
                        x=held[EVAL_KL],
                        y=held[ecol],
                        name=f"{label}{what} (held-out ◆)",
                        yaxis=axis,
                        mode="lines+markers" if len(held) > 1 else "markers",
                        line={"color": color, "dash": dash, "width": 1.5},
                        legendgroup=f"{run}:{what}",
                        showlegend=False,  # toggled with its line (same legend group); the title says what ◆ is
                        marker={
                            "symbol": "diamond" if what == "proxy" else "diamond-open",
                            "size": 15,
                            "color": color,
                            "line": {"color": "#222" if what == "proxy" else color, "width": 2.5},
                        },
                        hovertemplate=f"held-out {what}: %{{y:.3f}}<br>KL %{{x:.2f}} nats<extra>{run or ''}</extra>",
                    )
                )
        if (peak := gold_peak(d)) is not None:
            _peak_traces(fig, peak, color, label, run)
    if not fig.data:
        return empty_figure(NO_GOLD)
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    rows = -(-entries // 2)  # two legend entries a row at the panel's width
    fig.update_layout(
        height=height + 22 * rows,
        template="plotly_white",
        margin=dict(l=60, r=60, t=70, b=40),
        title=title
        or "Over-optimisation: proxy (solid) and gold (dashed) reward vs KL<br><sup>◆ held-out evaluations · ★ the gold's peak</sup>",
        xaxis={"title": {"text": "KL(π‖π_ref), nats per response (batch, exact)", "standoff": 6}, "rangemode": "tozero"},
        yaxis={"title": "proxy reward (trained on)"},
        yaxis2={"title": "gold reward (never trained on)", "overlaying": "y", "side": "right", "showgrid": False},
        legend={"orientation": "h", "yanchor": "top", "y": -0.16 - 0.02 * rows, "x": 0},
    )
    return fig
