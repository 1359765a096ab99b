"""The widgets every training panel starts with, built once: the shared server's limits note, the preset
dropdown, the run's length (steps, time budget) and the Start/Stop buttons. Lays out only; each panel
(``training_ppo.py``, ``training_dpo.py``, ``training_grpo.py``, ``training_reward.py``) adds its data
source and wires the events. Element ids are ``PREFIX-preset``, ``PREFIX-steps``, ``PREFIX-seconds``,
``PREFIX-start``, ``PREFIX-stop``, ``PREFIX-limits``."""

from __future__ import annotations

import gradio as gr

from rlhf_demo.classroom import limits
from rlhf_demo.ui.config_form import bounds

SECONDS_LABEL = "Time budget (s of training, 0 = none)"


def limits_note(prefix: str) -> None:
    """On a shared server: what it allows, above the panel's widgets."""
    if limits.current().shared:
        gr.Markdown(limits.describe(), elem_id=f"{prefix}-limits")


def preset_dropdown(cls, prefix: str, info: str) -> gr.Dropdown:
    """The config's named presets (``cls.PRESET_LABELS``), its default chosen."""
    return gr.Dropdown(
        [(label, key) for key, label in cls.PRESET_LABELS.items()],
        value=cls.DEFAULT_PRESET,
        label="Preset",
        elem_id=f"{prefix}-preset",
        info=info,
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
            info=cls.help("steps"),
            **bounds(cls.knob("steps"), lim),
            elem_id=f"{prefix}-steps",
        )
    }
    if seconds:
        out["max_seconds"] = gr.Number(
            lim.fit("max_seconds", defaults.max_seconds),
            label=SECONDS_LABEL,
            info=cls.help("max_seconds"),
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
