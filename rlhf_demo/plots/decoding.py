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
    Filtered tokens (probability 0 after processing) are grey; the chosen token is starred. With a word
    bias, ``df`` has ``bias`` (0 for other tokens) and ``without`` (after processing without the bias):
    a third bar shows it, and a biased token's label says its bias."""
    biased = "without" in df.columns
    marks = [f" ({b:+g})" if b else "" for b in df["bias"]] if biased else [""] * len(df)
    labels = [f"{'★ ' if c else ''}{r}. {show_token(t)}{m}" for r, t, c, m in zip(df["rank"], df["token"], df["chosen"], marks)]
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
    if biased:
        traces.append(
            dict(
                type="bar",
                name="after processors, without the word bias",
                x=labels,
                y=_floats(df["without"]),
                marker=dict(color="rgba(245,133,24,0.35)", line=dict(color=PROC_COLOR, width=1)),
                hovertemplate="%{x}<br>without the bias %{y:.2%}<extra></extra>",
            )
        )
    top = max(raw + prob + (_floats(df["without"]) if biased else []) + [0.01]) if len(df) else 1.0
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


def pct(p: float) -> str:
    """A probability as a short percentage: two significant digits below 10 %, none above (no "0.00%")."""
    x = 100 * float(p)
    if x == 0:
        return "0%"
    if x < 1e-4:
        return "<0.0001%"
    return f"{x:.0f}%" if x >= 10 else f"{x:.2g}%"


def bias_words(df: pd.DataFrame) -> pd.DataFrame:
    """``bias_frame`` rows (one per spelling of a biased word, with ``without``: its probability after
    every processor but the bias) merged into one row per word::

        p(word) = Σ over its spellings s that can come next of p(last token of s)

    The spellings are the word after a space (``"␣great"``, how a word follows another) and glued to
    the text before (``"great"``). A spelling of several tokens can come next only once its first
    tokens were just written (``applies``); until then it is listed under ``waiting``, not summed.
    Columns: ``word bias raw without with spellings waiting`` (``raw``: the model's own softmax, ``before``)."""
    rows = []
    for word, g in df.groupby("word", sort=False):
        now = g[g["applies"].astype(bool)]
        rows.append(
            {
                "word": word,
                "bias": float(g["bias"].iloc[0]),
                "raw": float(now["before"].sum()),
                "without": float(now["without"].sum()),
                "with": float(now["final"].sum()),
                "spellings": ", ".join(show_token(f) for f in now["form"]),
                "waiting": ", ".join(show_token(f) for f in g.loc[~g["applies"].astype(bool), "form"]),
            }
        )
    return pd.DataFrame(rows, columns=["word", "bias", "raw", "without", "with", "spellings", "waiting"])


def bias_line(words: pd.DataFrame) -> str:
    """One line for the step caption: each biased word's probability without → with its bias (and the
    model's own where the other processors filtered the word out)."""

    def without(r) -> str:
        return f"{pct(r.without)} (filtered out; the model's own {pct(r.raw)})" if r.without == 0 < r.raw else pct(r.without)

    return " · ".join(f"**{r.word}** ({r.bias:+g}) {without(r)} → {pct(r['with'])}" for _, r in words.iterrows())


def bias_figure(words: pd.DataFrame, step: int | None = None) -> dict:
    """Each biased word (``bias_words``): the probability that it comes next without its bias and with
    it (both after every other processor), on an axis fitted to the values."""
    x = [f"{w} ({b:+g})" for w, b in zip(words["word"], words["bias"])]
    hover = [
        f"counts {s or 'no spelling yet'}" + (f"<br>{wt}: only after its first tokens" if wt else "")
        for s, wt in zip(words["spellings"], words["waiting"])
    ]
    traces = [
        dict(
            type="bar",
            name=name,
            x=x,
            y=_floats(words[col]),
            marker=dict(color=color),
            text=[pct(p) for p in words[col]],
            textposition="outside",
            cliponaxis=False,
            customdata=hover,
            hovertemplate="%{x}: %{y:.3%} " + name + "<br>%{customdata}<extra></extra>",
        )
        for col, name, color in (("without", "without the bias", RAW_COLOR), ("with", "with the bias", "#e45756"))
    ]
    top = max([*_floats(words["without"]), *_floats(words["with"]), 1e-6])
    fmt = ".0%" if top >= 0.1 else ".1%" if top >= 0.01 else ".2%" if top >= 0.001 else ".3%"
    at = "" if step is None else f" at step {step}"
    return _figure(
        traces,
        title=dict(text=f"Word bias{at}: chance the word comes next", font=dict(size=14)),
        barmode="group",
        yaxis=dict(tickformat=fmt, range=[0, min(1.0, top * 1.3)] if top < 0.77 else [0, 1.0], title=dict(text="probability")),
        height=300,
        legend=dict(orientation="h", y=1.16, x=0),
        margin=dict(l=60, r=10, t=70, b=60),
        annotations=[
            dict(
                text="each word: ␣word + word (both spellings)",
                xref="paper",
                yref="paper",
                x=0,
                y=-0.2,
                showarrow=False,
                font=dict(size=11, color="#666"),
                xanchor="left",
            )
        ],
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
