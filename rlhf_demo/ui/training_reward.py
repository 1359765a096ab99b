"""The Reward-model panel of the Training tab: train a reward model (``trl.RewardTrainer``, Bradley–Terry) from
the same preference sources as the DPO panel, with live loss and accuracy and the held-out pair accuracy at
the end; then look into it: score any text (reward model beside the gold, VADER) and see the held-out texts
where the two disagree most (``reward_model.inspect``). Lays out and wires only."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.classroom import limits
from rlhf_demo.data import goodhart
from rlhf_demo.data.preferences import PreferenceError, load_preferences
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots.training import empty_figure
from rlhf_demo.reward_model.config import BRADLEY_TERRY, RewardConfig
from rlhf_demo.reward_model.inspect import (
    TABLE_COLUMNS,
    Scorers,
    disagreements,
    heldout_texts,
    latest_heldout,
    reward_model_runs,
    score_line,
)
from rlhf_demo.rewards.functions import RewardError
from rlhf_demo.runs.names import find_run, run_short
from rlhf_demo.textcheck import check_text
from rlhf_demo.training.queue import QUEUE
from rlhf_demo.ui.config_form import config_form, config_from_form, preset_values
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_dpo import SOURCES, WHOSE, load_source
from rlhf_demo.ui.training_run import POLL_S, before_first_step, mine, owner, submit, watch
from rlhf_demo.ui.training_widgets import run_length, top_bar, wire_run

INTRO = """### Reward model: learn a score from preference pairs
Each **step** takes a batch of (prompt, chosen, rejected) pairs and pushes the score of the chosen text above the
rejected one: loss = −log σ(r(chosen) − r(rejected)). The model is SmolLM2 with its language-model head replaced by
one number (LoRA + a new score head). Every tenth pair is held out: its **pair accuracy** says whether the learned
preference generalises. Then use it as PPO's reward (`rm:` in the PPO panel) and watch the over-optimisation panel."""
USER_ERRORS = (ValueError, ModelLoadError, RewardError, PreferenceError, FileExistsError, FileNotFoundError)
TOP = ("steps", "preferences")
MAX_CHARS = 2000
SCORERS = Scorers(size=1)
"""Reward models loaded to score typed texts (one at a time, read-only, shared by all sessions)."""
GOODHART = "Goodhart (gold-labelled)"
"""The pairs the Goodhart gold labelled (``data/goodhart.py``), shipped; the preset ``goodhart`` picks them."""
RM_SOURCES = [*SOURCES, GOODHART]


def source_for_preset(preset: str, current: str) -> str:
    """The pair source a preset selects: the Goodhart pairs for the Goodhart preset; leaving it, the
    shipped set again; any other choice stays."""
    if preset == goodhart.PRESET:
        return GOODHART
    return SOURCES[0] if current == GOODHART else current


def run_choices(ctx: AppContext, request=None) -> list[tuple[str, str]]:
    """(label, folder) of the reward-model runs this user may see."""
    runs = ctx.visible_runs(request) if request is not None or not limits.current().shared else []
    return [(r.name, run_short(r)) for r in reward_model_runs(runs)]  # short names (runs/names.py): no server path


def disagreement_frame(pairs: list[dict]) -> pd.DataFrame:
    """The held-out texts of ``pairs`` where the reward model and the gold (VADER) disagree most."""
    texts = heldout_texts(pairs) if pairs else pd.DataFrame(columns=["text", "reward model"])
    return disagreements(texts, SCORERS.gold()(list(texts["text"])) if len(texts) else [])


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (the reward model's ``Algorithm``: its jobs are the ones this panel shows)."""
    defaults = RewardConfig.preset(RewardConfig.DEFAULT_PRESET)
    seen = gr.State(-1)  # the version of this session's job last drawn (runs.queue.Job.version)
    timer = gr.Timer(POLL_S, active=False)
    preset_dd, start, stop = top_bar(
        RewardConfig,
        "rm",
        "Quick CPU demo: about 2 minutes on a laptop CPU for the shipped pairs.",
        "Start training the reward model",
        INTRO,
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            source = gr.Radio(
                RM_SOURCES,
                value=SOURCES[0],
                label="Preference pairs",
                elem_id="rm-source",
                info="The same sources as DPO. Shipped: best vs worst of 4 samples, scored by VADER. "
                f"Goodhart: the same kind of pairs labelled by the gold {goodhart.GOLD} (the preset Goodhart picks them).",
            )
            upload = gr.File(
                label="Upload pairs (.jsonl or .csv: prompt, chosen, rejected)",
                file_types=[".jsonl", ".csv", ".json", ".tsv"],
                type="filepath",
                height=150,
                visible=False,
                elem_id="rm-upload",
            )
            whose = gr.Radio(WHOSE, value=WHOSE[1], label="Whose labels", visible=False, elem_id="rm-whose")
            hub_id = gr.Textbox(
                label="Hub dataset id (online only)", visible=False, elem_id="rm-hub", placeholder="trl-lib/ultrafeedback_binarized"
            )
            length = run_length(RewardConfig, defaults, "rm", steps_label="Steps (0 = by epochs)", seconds=False)
            with gr.Accordion("Hyper-parameters", open=False):
                comps = config_form(
                    RewardConfig, defaults, "rm", skip=TOP, open_groups=("Run", "Optimisation", "Model and LoRA", "Evaluation", "Data")
                )
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Train the reward model**. One training runs at a time on this machine.", elem_id="rm-status")
            plot = gr.Plot(
                empty_figure("Start a run to see loss and pair accuracy (◆ held-out) here."), label="Reward-model curves", elem_id="rm-plot"
            )
            gr.Markdown(BRADLEY_TERRY, elem_id="rm-explain")
            gr.Markdown("#### Look into a reward model")
            with gr.Row():
                run = gr.Dropdown(
                    run_choices(ctx),
                    value=None,
                    label=f"Reward model (a run of this panel or `train --algo {alg.name}`)",
                    elem_id="rm-run",
                    scale=3,
                )
                text = gr.Textbox(
                    label="Score any text", placeholder="This movie was a delight from start to finish.", elem_id="rm-text", scale=4
                )
                score = gr.Button("Score", elem_id="rm-score", scale=1)
            scored = gr.Markdown("", elem_id="rm-scored")
            table = gr.Dataframe(
                headers=TABLE_COLUMNS,
                wrap=True,
                max_height=380,
                elem_id="rm-disagree",
                label="Held-out texts where the reward model and the gold (VADER) disagree most "
                "(scores standardised over the held-out texts; gap > 0: the model likes it more)",
            )
    comps = {**length, **comps}
    names = list(comps)

    source.change(
        lambda s: (gr.update(visible=s == SOURCES[2]), gr.update(visible=s == SOURCES[3]), gr.update(visible=s == SOURCES[1])),
        source,
        [upload, hub_id, whose],
        api_visibility="private",
    )
    preset_dd.change(lambda name: preset_values(RewardConfig, name, names), preset_dd, [comps[n] for n in names], api_visibility="private")
    preset_dd.change(source_for_preset, [preset_dd, source], source, api_visibility="private", show_progress="hidden")

    def start_run(data: dict, request: gr.Request):
        try:
            ctx.gate(request, "train")  # before any data is loaded (training_run.start asks again)
            gold_labelled = data[source] == GOODHART
            prefs = (
                load_preferences(goodhart.SOURCE)
                if gold_labelled
                else load_source(ctx, data[source], data[upload], data[hub_id], data[whose], request)
            )
            where = goodhart.SOURCE if gold_labelled else prefs.source
            cfg = config_from_form(RewardConfig, data[preset_dd], {**{n: data[comps[n]] for n in names}, "preferences": where})
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        note = f" ({len(prefs.errors)} rows left out)" if prefs.errors else ""
        text_, tick = submit(ctx, request, cfg, data[preset_dd], pairs=prefs.rows)  # limits, the queue
        return f"{len(prefs)} pairs{note}. " + text_, before_first_step(text_), None, -1, tick, gr.skip()

    def on_tick(seen, request: gr.Request):
        job = QUEUE.latest(owner(request))
        text_, fig, rows, _ba, version, tick = watch(alg, seen, request, table=disagreement_frame)
        ended = mine(alg, job) and version != seen and not tick.active  # drew the end now
        pick = (
            gr.update(choices=run_choices(ctx, request), value=run_short(job.out))
            if ended and (Path(job.out) / "policy").is_dir()
            else gr.skip()
        )
        return text_, fig, rows, version, tick, pick

    def on_run(folder, request: gr.Request):
        if not folder:
            return gr.skip()
        if Path(folder) not in [Path(f) for _, f in run_choices(ctx, request)]:
            raise gr.Error("choose one of the reward models in the list")
        folder = find_run(folder, ctx.own_runs(request))
        return disagreement_frame(latest_heldout(folder))

    def on_score(folder, typed, request: gr.Request):
        if not folder or Path(folder) not in [Path(f) for _, f in run_choices(ctx, request)]:
            raise gr.Error(f"choose a reward model first (train one above, or `train --algo {alg.name}`)")
        if not isinstance(typed, str) or not typed.strip() or len(typed) > MAX_CHARS:
            raise gr.Error(f"type a text to score (at most {MAX_CHARS} characters)")
        folder = find_run(folder, ctx.own_runs(request))
        try:
            check_text(typed, "the text to score")
            (rm,), (gold,) = SCORERS.score(folder, [typed])
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        texts = heldout_texts(latest_heldout(folder))
        line = score_line(typed, rm, gold, texts, SCORERS.gold()(list(texts["text"])) if len(texts) else [])
        pct = lambda p: f" (above {p:.0%} of the held-out texts)" if p == p else ""
        return (
            f"**Reward model: {line['reward_model']:+.3f}**{pct(line['reward_model_percentile'])} · "
            f"**gold (VADER): {line['gold']:+.3f}**{pct(line['gold_percentile'])}"
        )

    def on_who(request: gr.Request):
        return gr.update(choices=run_choices(ctx, request))

    outputs = [status, plot, table, seen, timer, run]
    inputs = {preset_dd, source, upload, hub_id, whose, *comps.values()}
    wire_run(ctx, alg, start=start, start_fn=start_run, inputs=inputs, timer=timer, on_tick=on_tick, seen=seen, stop=stop, outputs=outputs)
    run.change(on_run, run, table, api_visibility="private", show_progress="hidden")
    score.click(on_score, [run, text], scored, api_visibility="private", concurrency_limit=1)
    text.submit(on_score, [run, text], scored, api_visibility="private", concurrency_limit=1)
    for event in ([ctx.tab.select] if ctx.tab is not None else []) + ([ctx.who.change] if ctx.who is not None else []) + [run.focus]:
        event(on_who, None, run, api_visibility="private", show_progress="hidden", queue=False)
