"""The Playground's figures (``plots/decoding.py``): plain dicts in plotly's JSON schema, which plotly
itself accepts as a figure and Gradio's ``gr.Plot`` sends as they are."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import pytest

from rlhf_demo.plots.decoding import FILTERED_COLOR, bias_figure, bias_words, candidates_figure, entropy_figure

CANDIDATES = pd.DataFrame(
    {
        "rank": [1, 2, 3],
        "token": [" good", " bad", "\n"],
        "token_id": [1, 2, 3],
        "raw_prob": [0.5, 0.3, 0.1],
        "prob": [0.625, 0.375, 0.0],
        "kept": [True, True, False],
        "chosen": [False, True, False],
    }
)
STEPS = pd.DataFrame(
    {
        "step": [0, 1],
        "token": [" good", "!"],
        "token_id": [1, 4],
        "prob": [0.6, 0.9],
        "raw_prob": [0.5, 0.8],
        "entropy": [1.2, 0.3],
        "forced": [False, False],
    }
)
BIAS = pd.DataFrame([dict(word="great", form=" great", token=" great", bias=5.0, before=0.01, after_bias=0.2, final=0.3, applies=True)])


def _valid(fig: dict) -> go.Figure:
    json.dumps(fig)  # no numpy numbers: JSON as it is
    return go.Figure(fig)  # plotly validates every property (raises on a wrong one)


def test_candidates_figure_marks_the_chosen_and_the_filtered_tokens():
    fig = _valid(candidates_figure(CANDIDATES, "Step 0"))
    raw, proc = fig.data
    assert list(raw.x) == ["1. ␣good", "★ 2. ␣bad", "3. ↵"]
    assert list(raw.y) == [0.5, 0.3, 0.1] and list(proc.y) == [0.625, 0.375, 0.0]
    assert raw.marker.color[2] == FILTERED_COLOR and proc.text[2] == "filtered"
    assert fig.layout.title.text == "Step 0" and fig.layout.template.layout.paper_bgcolor == "white"  # plotly_white, spelled out


def test_entropy_and_bias_figures_are_valid_plotly_figures():
    ent = _valid(entropy_figure(STEPS, current=1))
    assert list(ent.data[0].y) == [1.2, 0.3] and ent.data[1].yaxis == "y2"
    two = pd.concat([BIAS.assign(without=[0.02]), BIAS.assign(form="great", token="great", before=0.005, without=0.01, final=0.1)])
    words = bias_words(two)  # the two spellings of one word, summed (by hand: 0.02 + 0.01 without, 0.3 + 0.1 with)
    assert list(words["word"]) == ["great"] and words["without"][0] == pytest.approx(0.03) and words["with"][0] == pytest.approx(0.4)
    bias = _valid(bias_figure(words))
    assert [t.name for t in bias.data] == ["without the bias", "with the bias"]
    assert list(bias.data[0].y) == pytest.approx([0.03]) and list(bias.data[1].y) == pytest.approx([0.4])
    _valid(bias_figure(bias_words(BIAS.assign(without=[0.02]).iloc[:0])))  # no word: still a valid figure
