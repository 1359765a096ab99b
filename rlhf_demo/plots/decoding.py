"""Views of a generation for the playground: DataFrames in, plotly figures / highlight lists / HTML out.

No torch here. The frames come from ``decoding_explore`` (``steps_frame``, ``candidate_frame``,
``bias_frame``, ``sequences_frame``).

The figures are plain dicts in plotly's JSON schema (``{"data": [...], "layout": {...}}``: what
``go.Figure.to_json`` writes, and ``go.Figure(fig)`` reads them back). Building a ``go.Figure``
validates every property: 20–40 ms a figure, three per Generate, so thirty students' figures took
≈ 2.5 s of one core, serial under the GIL, after their batch was done (``docs/experiments.md``).
A dict costs well under a millisecond; the UI sends it as JSON.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache

import pandas as pd

PROB_BINS = [
    (0.05, "<5%", "#f4a09c"),
    (0.2, "5–20%", "#f9c98f"),
    (0.5, "20–50%", "#fbe88f"),
    (0.8, "50–80%", "#c5e3a0"),
    (1.01, "≥80%", "#8fd19e"),
]
"""Probability bins of the chosen tokens: (upper bound, label, colour), red = surprising, green = expected."""
COLOR_MAP = {label: color for _, label, color in PROB_BINS}
FORCED_LABEL, FORCED_COLOR = "forced (branch)", "#b9c6f5"
RAW_COLOR, PROC_COLOR, FILTERED_COLOR = "#4c78a8", "#f58518", "#c8c8c8"


def prob_label(p: float) -> str:
    return next(label for hi, label, _ in PROB_BINS if p < hi)


def show_token(token: str) -> str:
    """A token made visible in a chart label: leading/trailing spaces as ␣, newlines as ↵."""
    t = token.replace("\n", "↵").replace("\t", "⇥")
    stripped = t.strip(" ")
    lead, trail = len(t) - len(t.lstrip(" ")), len(t) - len(t.rstrip(" "))
    return ("␣" * lead + stripped + "␣" * trail) if stripped else "␣" * len(t) or "∅"


def highlight(steps: pd.DataFrame, prompt: str | None = None) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` value: the prompt unlabelled, then every generated token labelled by the
    probability bin it was chosen with (entry i + 1 is step i when a prompt is given)."""
    out = [(prompt, None)] if prompt is not None else []
    for row in steps.itertuples():
        out.append((row.token, FORCED_LABEL if row.forced else prob_label(row.prob)))
    return out


def tokens_html(steps: pd.DataFrame) -> str:
    spans = []
    for row in steps.itertuples():
        color = FORCED_COLOR if row.forced else COLOR_MAP[prob_label(row.prob)]
        tip = f"step {row.step}: p={row.prob:.1%} (raw {row.raw_prob:.1%}), entropy {row.entropy:.2f} nats"
        spans.append(
            f'<span title="{html.escape(tip)}" style="background:{color};color:#111;border-radius:3px;'
            f'white-space:pre-wrap">{html.escape(row.token)}</span>'
        )
    return "".join(spans)


def samples_html(prompt: str, samples: list[tuple[str, pd.DataFrame]]) -> str:
    """Several continuations of one prompt side by side, each token coloured by its probability."""
    cols = []
    for title, steps in samples:
        cols.append(
            f'<div class="rl-sample" style="flex:1 1 220px;min-width:200px;border:1px solid #ddd;border-radius:8px;'
            f'padding:8px"><div style="font-weight:600;margin-bottom:4px">{html.escape(title)}</div>'
            f'<span style="color:#777">{html.escape(prompt[-200:])}</span>{tokens_html(steps)}</div>'
        )
    legend = " ".join(
        f'<span style="background:{c};color:#111;padding:0 4px;border-radius:3px">{label}</span>' for _, label, c in PROB_BINS
    )
    return (
        f'<div style="font-size:0.85em;margin-bottom:6px">probability of each chosen token: {legend}</div>'
        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cols)}</div>'
    )


@lru_cache(maxsize=1)
def _template() -> dict:
    """plotly's ``plotly_white`` template as plain JSON (plotly.js knows no templates by name)."""
    import plotly.io as pio
    from plotly.utils import PlotlyJSONEncoder

    return json.loads(json.dumps(pio.templates["plotly_white"].to_plotly_json(), cls=PlotlyJSONEncoder))


def _figure(traces: list[dict], **layout) -> dict:
    """A figure in plotly's JSON schema (what ``go.Figure.to_json`` writes; ``go.Figure(fig)`` reads it)."""
    return {"data": traces, "layout": {"template": _template(), **layout}}


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def candidates_figure(df: pd.DataFrame, title: str) -> dict:
    """Grouped bars per candidate: raw softmax probability beside the probability after processing.
    Filtered tokens (probability 0 after processing) are grey; the chosen token is starred."""
    labels = [f"{'★ ' if c else ''}{r}. {show_token(t)}" for r, t, c in zip(df["rank"], df["token"], df["chosen"])]
    raw, prob, kept, chosen = _floats(df["raw_prob"]), _floats(df["prob"]), [bool(k) for k in df["kept"]], [bool(c) for c in df["chosen"]]
    traces = [
        dict(
            type="bar",
            name="raw softmax",
            x=labels,
            y=raw,
            marker=dict(color=[RAW_COLOR if k else FILTERED_COLOR for k in kept]),
            text=[f"{p:.1%}" for p in raw],
            textposition="outside",
            hovertemplate="%{x}<br>raw %{y:.2%}<extra></extra>",
        ),
        dict(
            type="bar",
            name="after processors (sampled from)",
            x=labels,
            y=prob,
            marker=dict(color=PROC_COLOR, line=dict(color=["#000" if c else PROC_COLOR for c in chosen], width=2)),
            text=[f"{p:.1%}" if k else "filtered" for p, k in zip(prob, kept)],
            textposition="outside",
            hovertemplate="%{x}<br>processed %{y:.2%}<extra></extra>",
        ),
    ]
    top = max(raw + prob + [0.01]) if len(df) else 1.0
    return _figure(
        traces,
        title=dict(text=title),
        barmode="group",
        yaxis=dict(title=dict(text="probability"), tickformat=".0%", range=[0, min(1.0, top * 1.18)]),
        xaxis=dict(tickangle=-35),
        legend=dict(orientation="h", y=1.12, x=0),
        height=380,
        margin=dict(l=50, r=10, t=70, b=90),
    )


def entropy_figure(steps: pd.DataFrame, current: int | None = None) -> dict:
    """Entropy of the raw distribution per step (nats), with the chosen token's probability."""
    x = [f"{s}. {show_token(t)}" for s, t in zip(steps["step"], steps["token"])]
    traces = [
        dict(
            type="bar",
            name="entropy (nats, raw)",
            x=x,
            y=_floats(steps["entropy"]),
            marker=dict(color=[RAW_COLOR if s != current else PROC_COLOR for s in steps["step"]]),
            hovertemplate="%{x}<br>entropy %{y:.2f} nats<extra></extra>",
        ),
        dict(
            type="scatter",
            name="p(chosen) after processors",
            x=x,
            y=_floats(steps["prob"]),
            yaxis="y2",
            mode="lines+markers",
            line=dict(color="#54a24b"),
        ),
    ]
    return _figure(
        traces,
        title=dict(text="Uncertainty per step"),
        yaxis=dict(title=dict(text="entropy (nats)")),
        yaxis2=dict(title=dict(text="p(chosen)"), overlaying="y", side="right", range=[0, 1.05], tickformat=".0%"),
        legend=dict(orientation="h", y=1.15, x=0),
        height=300,
        margin=dict(l=50, r=50, t=70, b=80),
        xaxis=dict(tickangle=-35),
    )


def bias_figure(df: pd.DataFrame) -> dict:
    """Each biased word's token: probability before the bias, after the bias alone, after everything."""
    traces = []
    if len(df):
        x = [f"{show_token(f)} ({b:+g}){'' if a else ' ✗'}" for f, b, a in zip(df["form"], df["bias"], df["applies"])]
        for col, name, color in (
            ("before", "before (raw softmax)", RAW_COLOR),
            ("after_bias", "after the bias", "#e45756"),
            ("final", "after all processors", PROC_COLOR),
        ):
            y = _floats(df[col])
            traces.append(
                dict(type="bar", name=name, x=x, y=y, marker=dict(color=color), text=[f"{p:.2%}" for p in y], textposition="outside")
            )
    title = "Word bias at this step" if len(df) else "Word bias: none set (e.g. 'great:5, terrible:-5')"
    hidden = {} if len(df) else dict(xaxis=dict(visible=False))
    return _figure(
        traces,
        title=dict(text=title),
        barmode="group",
        yaxis=dict(tickformat=".0%", range=[0, 1.1], **({} if len(df) else dict(visible=False))),
        height=300,
        legend=dict(orientation="h", y=1.15, x=0),
        margin=dict(l=50, r=10, t=70, b=60),
        **hidden,
    )


def processors_markdown(processors: list[str], mode: str) -> str:
    if not processors:
        body = "_none: the raw softmax is what the decoder " + ("takes the argmax of_" if mode != "sample" else "samples from_")
    else:
        body = "\n".join(f"{i}. `{p}`" for i, p in enumerate(processors, 1))
    extra = {
        "greedy": " then **argmax**",
        "beam": " on log-probabilities, then **beam search** keeps the best beams",
        "sample": " then **softmax** and a random draw",
    }[mode]
    return f"**Logits processors, in the order transformers applies them**{extra}:\n\n{body}"
