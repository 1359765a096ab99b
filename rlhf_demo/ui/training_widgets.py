"""The widgets every training panel starts with, built once: the top bar (preset, Start, Stop: in the first
viewport, ``top_bar``), what the algorithm does (a closed "What …" accordion), the shared server's limits
note, the run's length (steps, time budget), and the run's events (Start, the live timer, Stop:
``wire_run``). Each panel (``training_ppo.py``, ``training_dpo.py``, ``training_reward.py``) adds its data
source. Element ids are ``PREFIX-preset``, ``PREFIX-steps``, ``PREFIX-seconds``, ``PREFIX-start``,
``PREFIX-stop``, ``PREFIX-limits``, ``PREFIX-intro``.

A policy trained from a reward alone (GRPO, best-of-N distillation) gets its whole panel here
(``policy_panel``): reward builder, knobs, curves, samples, before/after, all alike but for the
algorithm's config class and texts (``PolicyTexts``); its element ids are ``ALGO-…`` (``ALGO`` its
``Algorithm.name``). Lays out and wires only."""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from rlhf_demo.classroom import limits
from rlhf_demo.plots.training import empty_figure
from rlhf_demo.ui.config_form import bounds, config_form, config_from_form, preset_values
from rlhf_demo.ui.reward_builder import refresh_events, reward_builder
from rlhf_demo.ui.training_run import POLL_S, USER_ERRORS, before_first_step, restore, submit, watch
from rlhf_demo.ui.training_run import stop as stop_run

SECONDS_LABEL = "Time budget (s of training, 0 = none)"
_AT_MOST = re.compile(r"\s*\(?,?\s*at most [0-9][0-9,.]*\)?")


BEFORE_AFTER_COLUMNS = ["query", "reference response", "reference reward", "policy response", "policy reward"]


def before_after_frame(rows: list[dict]) -> pd.DataFrame:
    """The held-out before/after table of a policy run (``before_after.json``'s rows)."""
    return pd.DataFrame(
        [[r["query"], r["reference"], round(r["reference_reward"], 3), r["policy"], round(r["policy_reward"], 3)] for r in rows],
        columns=BEFORE_AFTER_COLUMNS,
    )


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


def wire_run(ctx, alg, *, start, start_fn, inputs, timer, on_tick, seen, stop, outputs) -> None:
    """A panel's run events: Start (``start_fn(data, request)`` on the ``inputs``), the timer's ticks
    (``on_tick(seen, request)``) and Stop (leave the queue, or stop after the current step), all to
    ``outputs``; a reload shows this user's last run of ``alg`` again (``training_run.restore``)."""

    def on_stop(request: gr.Request):
        stop_run(request)

    start.click(start_fn, inputs, outputs, concurrency_limit=None, api_visibility="private")
    timer.tick(on_tick, seen, outputs, concurrency_limit=None, show_progress="hidden", api_visibility="private")
    restore(ctx, alg, seen, timer)
    stop.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")


SAMPLE_COLUMNS = ["query", "response", "reward"]
POLICY_TOP = ("reward", "steps", "max_seconds")
"""The knobs a policy panel shows above its hyper-parameters (the reward builder, the run's length)."""


@dataclass(frozen=True)
class PolicyTexts:
    """What a reward-trained policy's panel says (``policy_panel``); the rest comes from its ``Algorithm``."""

    preset_info: str
    """Under the preset dropdown (what the default preset costs)."""
    start_label: str
    intro: str
    """What the algorithm does: a "### title" line, then the text (``top_bar``'s accordion)."""
    reward_help: str
    """What the reward does in this algorithm (``reward_builder``)."""
    open_groups: tuple[str, ...]
    """The knob groups of its config class, in order (``config_form``)."""
    status: str
    """The status line before the first run."""
    empty_plot: str
    plot_label: str
    explain: str
    """The Markdown under the plot (the algorithm's equation, from its config module)."""
    samples_label: str


def samples_frame(rows) -> pd.DataFrame:
    """A step's samples (query, response, reward) or the latest held-out samples, at most 16."""
    return pd.DataFrame(
        [{"query": r["query"], "response": r["response"], "reward": round(float(r["reward"]), 3)} for r in (rows or [])[:16]],
        columns=SAMPLE_COLUMNS,
    )


def policy_panel(ctx, alg, texts: PolicyTexts) -> None:
    """The panel of ``alg``, a policy trained from a reward (its ``config`` class: presets, knobs; its
    ``name``: the element ids): top bar, reward builder, run length and knobs on the left; status, live
    curves (``alg.curves``), explanation, samples and before/after on the right. Start puts the run in the
    training queue (``runs.queue``), a ``gr.Timer`` shows the session's job as it goes; Stop leaves the
    queue or stops the run after its current step (the policy is saved)."""

    cls, prefix = alg.config, alg.name
    defaults = cls.preset(cls.DEFAULT_PRESET)
    seen = gr.State(-1)  # the version of this session's job last drawn (runs.queue.Job.version)
    timer = gr.Timer(POLL_S, active=False)
    preset_dd, start, stop = top_bar(cls, prefix, texts.preset_info, texts.start_label, texts.intro)
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            builder = reward_builder(ctx, prefix, defaults.reward, texts.reward_help)
            length = run_length(cls, defaults, prefix)
            with gr.Accordion("Hyper-parameters", open=False):
                comps = config_form(cls, defaults, prefix, skip=POLICY_TOP, open_groups=texts.open_groups)
        with gr.Column(scale=3):
            status = gr.Markdown(texts.status, elem_id=f"{prefix}-status")
            plot = gr.Plot(empty_figure(texts.empty_plot), label=texts.plot_label, elem_id=f"{prefix}-plot")
            gr.Markdown(texts.explain, elem_id=f"{prefix}-explain")
            samples = gr.Dataframe(
                headers=SAMPLE_COLUMNS, wrap=True, max_height=360, elem_id=f"{prefix}-samples", label=texts.samples_label
            )
            before_after = gr.Dataframe(
                headers=BEFORE_AFTER_COLUMNS,
                wrap=True,
                max_height=360,
                elem_id=f"{prefix}-before-after",
                label="Before / after: the same held-out queries answered by the reference and the trained policy",
            )
    comps = {"reward": builder.spec, **length, **comps}
    names = list(comps)
    preset_dd.change(lambda name: preset_values(cls, name, names), preset_dd, [comps[n] for n in names], api_visibility="private")

    def start_run(data: dict, request: gr.Request):
        try:
            cfg = config_from_form(cls, data[preset_dd], {n: data[comps[n]] for n in names})
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        text, tick = submit(ctx, request, cfg, data[preset_dd])  # limits, rm: folders, the queue
        return text, before_first_step(text), None, None, -1, tick

    def on_tick(seen, request: gr.Request):
        return watch(alg, seen, request, table=samples_frame, before_after=before_after_frame)

    refresh_events(ctx, builder)  # the component lists follow the user and new reward models
    outputs = [status, plot, samples, before_after, seen, timer]
    inputs = {preset_dd, *comps.values()}
    wire_run(ctx, alg, start=start, start_fn=start_run, inputs=inputs, timer=timer, on_tick=on_tick, seen=seen, stop=stop, outputs=outputs)
