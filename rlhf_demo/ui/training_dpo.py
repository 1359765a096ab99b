"""The DPO panel of the Training tab: where the pairs come from (shipped, the Feedback tab's labels, an
upload, a Hub dataset), every knob (built from ``DPOConfig``'s metadata), Start/Stop, live curves and
the latest held-out samples. Lays out and wires only."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.classroom import allowlist
from rlhf_demo.data.feedback import FEEDBACK_ENV, FeedbackStore
from rlhf_demo.data.preferences import PreferenceError, PreferenceSet, load_preferences, parse_preferences
from rlhf_demo.dpo.config import CHOSEN_GOES_DOWN, DPOConfig
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots.training import empty_figure
from rlhf_demo.rewards.functions import REWARD_CHOICES, RewardError
from rlhf_demo.ui.config_form import config_form, config_from_form, preset_values
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_run import POLL_S, before_first_step, restore, submit, watch
from rlhf_demo.ui.training_run import stop as stop_run
from rlhf_demo.ui.training_widgets import run_length, top_bar

INTRO = """### DPO: learn straight from preference pairs
Each **step** takes a batch of (prompt, chosen, rejected) pairs and raises how much more likely the policy
makes the chosen response than the rejected one, *relative to the reference* (the same model with its LoRA
adapter off): loss = −log σ(β·[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]). No reward model and no
sampling during training. Every few steps the policy is scored on held-out prompts (◆) with the same
sentiment reward and KL as PPO, so both algorithms land on the same reward–KL plot (Runs tab)."""

SOURCES = ["Shipped synthetic set", "Feedback labels", "Upload (JSONL / CSV)", "Hub dataset id"]
WHOSE = ["Mine", "The class's (majority vote per pair)"]
USER_ERRORS = (ValueError, ModelLoadError, RewardError, PreferenceError, FileExistsError, FileNotFoundError)
TOP = ("reward", "steps")


def feedback_store(ctx: AppContext) -> FeedbackStore:
    """The Feedback tab's label file (shared by the DPO panel and the Feedback tab)."""
    return FeedbackStore(os.environ.get(FEEDBACK_ENV) or Path(ctx.runs_dir) / "feedback" / "labels.jsonl")


def load_source(ctx: AppContext, source: str, upload: str | None, hub_id: str, whose: str | None = None, request=None) -> PreferenceSet:
    """The pairs of the chosen source. Feedback labels: the user's own (``whose`` = "Mine") or the
    class's, one per pair by majority vote (the default). A Hub id goes through ``allowlist.check_source``
    (shared mode: an OWNER/NAME id, never a server path; ``load_preferences`` then loads it remote-only)."""
    if source == SOURCES[1]:
        store = feedback_store(ctx)
        mine = whose == WHOSE[0]
        rows = store.export_pairs(ctx.user(request).id if mine else None)
        if not rows:
            raise PreferenceError(
                ("you have no A/B labels yet" if mine else "the class has no A/B labels yet")
                + ": label some pairs in the Feedback tab (ties and skips carry no preference)"
            )
        return PreferenceSet(rows, [], "feedback")
    if source == SOURCES[2]:
        if not upload:
            raise PreferenceError("choose a .jsonl or .csv file with prompt, chosen, rejected columns")
        p = Path(upload)
        prefs = parse_preferences(p.read_bytes(), p.name)
        prefs.source = f"upload:{p.name}"
        return prefs
    if source == SOURCES[3]:
        if not isinstance(hub_id, str) or not hub_id.strip():
            raise PreferenceError("type a Hub dataset id, e.g. trl-lib/ultrafeedback_binarized (needs the network)")
        return load_preferences(allowlist.check_source("hf:" + hub_id.strip(), "preferences"))
    prefs = load_preferences("shipped")
    prefs.source = "shipped"
    return prefs


def samples_frame(rows) -> pd.DataFrame:
    rows = rows or []
    return pd.DataFrame(
        [{"query": r["query"], "response": r["response"], "reward": round(float(r["reward"]), 3)} for r in rows[:16]],
        columns=["query", "response", "reward"],
    )


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (DPO's ``Algorithm``: its jobs are the ones this panel shows)."""
    defaults = DPOConfig.preset(DPOConfig.DEFAULT_PRESET)
    seen = gr.State(-1)  # the version of this session's job last drawn (runs.queue.Job.version)
    timer = gr.Timer(POLL_S, active=False)
    preset_dd, start, stop = top_bar(DPOConfig, "dpo", "Quick CPU demo: LoRA, about 2–3 minutes on a laptop CPU.", "Start DPO", INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            source = gr.Radio(
                SOURCES,
                value=SOURCES[0],
                label="Preference pairs",
                elem_id="dpo-source",
                info="Shipped: best vs worst of 4 samples from the base model, scored by VADER. "
                "Feedback: your A/B labels from the Feedback tab.",
            )
            upload = gr.File(
                label="Upload pairs (.jsonl or .csv: prompt, chosen, rejected)",
                file_types=[".jsonl", ".csv", ".json", ".tsv"],
                type="filepath",
                height=150,
                visible=False,
                elem_id="dpo-upload",
            )
            whose = gr.Radio(WHOSE, value=WHOSE[1], label="Whose labels", visible=False, elem_id="dpo-whose")
            hub_id = gr.Textbox(
                label="Hub dataset id (online only)", visible=False, elem_id="dpo-hub", placeholder="trl-lib/ultrafeedback_binarized"
            )
            check = gr.Button("Check the pairs", size="sm", elem_id="dpo-check")
            data_info = gr.Markdown("", elem_id="dpo-data-info")
            length = run_length(DPOConfig, defaults, "dpo", steps_label="Steps (0 = by epochs)", seconds=False)
            reward = gr.Dropdown(
                REWARD_CHOICES,
                value=defaults.reward,
                allow_custom_value=True,
                label="Held-out evaluation reward",
                info=DPOConfig.help("reward"),
                elem_id="dpo-eval-reward",
            )
            with gr.Accordion("Hyper-parameters", open=False):
                comps = config_form(
                    DPOConfig,
                    defaults,
                    "dpo",
                    skip=TOP + ("preferences",),
                    open_groups=("Run", "Optimisation", "DPO loss", "Model and LoRA", "Evaluation"),
                )
        with gr.Column(scale=3):
            status = gr.Markdown(
                "Press **Start DPO**. One training runs at a time on this machine; others wait in line.", elem_id="dpo-status"
            )
            plot = gr.Plot(
                empty_figure("Start a DPO run to see loss, rewards, margins and held-out reward/KL here."),
                label="DPO curves",
                elem_id="dpo-plot",
            )
            gr.Markdown(CHOSEN_GOES_DOWN, elem_id="dpo-explain")
            samples = gr.Dataframe(
                headers=["query", "response", "reward"],
                wrap=True,
                max_height=320,
                label="Latest held-out samples from the policy",
                elem_id="dpo-samples",
            )
    ctx.dpo_source, ctx.dpo_whose = source, whose  # the Feedback tab (built later) points this panel at the labels
    comps = {"reward": reward, **length, **comps}
    names = list(comps)

    source.change(
        lambda s: (gr.update(visible=s == SOURCES[2]), gr.update(visible=s == SOURCES[3]), gr.update(visible=s == SOURCES[1])),
        source,
        [upload, hub_id, whose],
        api_visibility="private",
    )
    preset_dd.change(lambda name: preset_values(DPOConfig, name, names), preset_dd, [comps[n] for n in names], api_visibility="private")

    def on_check(src, up, hub, who, request: gr.Request):
        try:
            prefs = load_source(ctx, src, up, hub, who, request)
        except USER_ERRORS as exc:
            return f"⚠️ {exc}"
        text = f"✅ {len(prefs)} usable pairs"
        if prefs.errors:
            text += f"; **{len(prefs.errors)} rows left out**:\n" + "\n".join(f"- {e}" for e in prefs.errors[:20])
        return text

    check.click(on_check, [source, upload, hub_id, whose], data_info, api_visibility="private")

    def start_run(data: dict, request: gr.Request):
        try:
            ctx.gate(request, "train")  # before any data is loaded (training_run.start asks again)
            prefs = load_source(ctx, data[source], data[upload], data[hub_id], data[whose], request)
            cfg = config_from_form(DPOConfig, data[preset_dd], {**{n: data[comps[n]] for n in names}, "preferences": prefs.source})
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        note = f" ({len(prefs.errors)} rows left out)" if prefs.errors else ""
        text, tick = submit(ctx, request, cfg, data[preset_dd], pairs=prefs.rows)  # limits, the queue
        return f"{len(prefs)} pairs{note}. " + text, before_first_step(text), None, -1, tick

    def on_tick(seen, request: gr.Request):
        text, fig, rows, _ba, version, tick = watch(alg, seen, request, table=samples_frame)
        return text, fig, rows, version, tick

    def on_stop(request: gr.Request):
        stop_run(request)

    outputs = [status, plot, samples, seen, timer]
    start.click(
        start_run, {preset_dd, source, upload, hub_id, whose, *comps.values()}, outputs, concurrency_limit=None, api_visibility="private"
    )
    timer.tick(on_tick, seen, outputs, concurrency_limit=None, show_progress="hidden", api_visibility="private")
    restore(ctx, alg, seen, timer)  # a reload shows this user's last run again
    stop.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")
