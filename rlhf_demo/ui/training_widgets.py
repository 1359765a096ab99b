"""The widgets every training panel starts with, built once: the top bar (preset, Start, Stop: in the first
viewport, ``top_bar``), what the algorithm does (a closed "What …" accordion), the shared server's limits
note, the run's length (steps, time budget). Lays out only; each panel (``training_ppo.py``,
``training_dpo.py``, ``training_grpo.py``, ``training_reward.py``) adds its data source and wires the
events. Element ids are ``PREFIX-preset``, ``PREFIX-steps``, ``PREFIX-seconds``, ``PREFIX-start``,
``PREFIX-stop``, ``PREFIX-limits``, ``PREFIX-intro``."""

from __future__ import annotations

import re

import gradio as gr

from rlhf_demo.classroom import limits
from rlhf_demo.ui.config_form import bounds

SECONDS_LABEL = "Time budget (s of training, 0 = none)"
_AT_MOST = re.compile(r"\s*\(?,?\s*at most [0-9][0-9,.]*\)?")


def run_help(cls, name: str, lim: limits.Limits) -> str:
    """A run-length knob's help with one maximum only: the knob's own ("at most 2000") in local use, the
    shared server's instead of it (the number the widget's ``maximum`` holds) in shared mode."""
    text = cls.help(name)
    if not lim.shared:
        return text
    return f"{_AT_MOST.sub('', text).rstrip(' .;')}. {lim.knob_note(name)}".strip()


def cli_details(text: str) -> str:
    """A small closed details line holding the command-line form of a setting (``rm:RUN_DIR``,
    ``hf:MODEL:LABEL``…): the learner reads plain words first."""
    return f"<details class='cli-details'><summary>Command-line form</summary><small>{text}</small></details>"


def limits_note(prefix: str) -> None:
    """On a shared server: what it allows, once, in one line under the top bar (the widgets' maxima are
    the same limits: ``config_form.bounds``)."""
    if limits.current().shared:
        gr.Markdown(limits.describe(), elem_id=f"{prefix}-limits", elem_classes=["small-note"])


def top_bar(cls, prefix: str, info: str, start_label: str, intro: str) -> tuple[gr.Dropdown, gr.Button, gr.Button]:
    """Preset → Start → Stop in one row at the top of a panel, then ``intro`` (what the algorithm does)
    in a closed accordion and the shared server's limits. Returns (preset, start, stop)."""
    with gr.Row():
        preset = preset_dropdown(cls, prefix, info, scale=3)
        with gr.Column(scale=1, min_width=260):
            with gr.Row():
                start = gr.Button(start_label, variant="primary", elem_id=f"{prefix}-start", size="lg", scale=2)
                stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", size="lg", scale=1)
    title, _, body = intro.strip().partition("\n")
    with gr.Accordion(title.lstrip("# ").strip() or "What this does", open=False, elem_id=f"{prefix}-intro"):
        gr.Markdown(body.strip())
    limits_note(prefix)
    return preset, start, stop


def preset_dropdown(cls, prefix: str, info: str, scale: int | None = None) -> gr.Dropdown:
    """The config's named presets (``cls.PRESET_LABELS``), its default chosen."""
    return gr.Dropdown(
        [(label, key) for key, label in cls.PRESET_LABELS.items()],
        value=cls.DEFAULT_PRESET,
        label="Preset",
        elem_id=f"{prefix}-preset",
        info=info,
        scale=scale,
    )


def run_length(cls, defaults, prefix: str, steps_label: str = "Steps", seconds: bool = True) -> dict[str, gr.Number]:
    """knob name → widget: ``steps`` (and with ``seconds`` the time budget ``max_seconds``), their help and
    ranges from ``cls``'s metadata, their values ``defaults``' moved inside a shared server's limits."""
    lim = limits.current()
    out = {
        "steps": gr.Number(
            lim.fit("steps", defaults.steps),
            precision=0,
            label=steps_label,
            info=run_help(cls, "steps", lim),
            **bounds(cls.knob("steps"), lim),
            elem_id=f"{prefix}-steps",
        )
    }
    if seconds:
        out["max_seconds"] = gr.Number(
            lim.fit("max_seconds", defaults.max_seconds),
            label=SECONDS_LABEL,
            info=run_help(cls, "max_seconds", lim),
            **bounds(cls.knob("max_seconds"), lim),
            elem_id=f"{prefix}-seconds",
        )
    return out


def start_stop(prefix: str, start_label: str) -> tuple[gr.Button, gr.Button]:
    """The Start and Stop buttons, side by side."""
    with gr.Row():
        start = gr.Button(start_label, variant="primary", elem_id=f"{prefix}-start")
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop")
    return start, stop
