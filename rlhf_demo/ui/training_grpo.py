"""The GRPO panel of the Training tab: preset, reward (the reward builder, ``ui/reward_builder.py``: a
function, a learned reward model ``rm:`` from the run folders or a weighted sum, the same choices as PPO's), every knob (built from ``GRPOConfig``'s metadata), Start/Stop,
live curves (batch reward, TRL's batch KL, held-out reward and KL), the step's completions and
before/after. Lays out and wires only.

Start puts the run in the app's training queue (``runs.queue``), a ``gr.Timer`` shows the session's
job as it goes; Stop leaves the queue or stops the run after its current step (the policy is saved)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from rlhf_demo.grpo.config import GROUP_BASELINE, GRPOConfig
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots.training import empty_figure
from rlhf_demo.rewards.functions import RewardError
from rlhf_demo.ui.config_form import config_form, config_from_form, preset_values
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.reward_builder import refresh_events, reward_builder
from rlhf_demo.ui.training_ppo import BEFORE_AFTER_COLUMNS, before_after_frame
from rlhf_demo.ui.training_run import POLL_S, before_first_step, restore, submit, watch
from rlhf_demo.ui.training_run import stop as stop_run
from rlhf_demo.ui.training_widgets import run_length, top_bar

INTRO = """### GRPO: learn from a reward, with the group as the baseline
Each **step** takes a few movie-review openings and lets the policy continue each one **G times**; the reward
(VADER sentiment by default, or a reward model `rm:`) scores every text, and a completion's **advantage** is its
reward minus the mean of its own group (divided by the group's spread). No value model: better-than-its-siblings
completions are pushed up, worse ones down, and a **β·KL** term in the loss keeps the policy near the reference
(the same model with its LoRA adapter off). Held-out prompts (◆) are scored with the same reward and KL as PPO
and DPO, so the three algorithms land on the same reward–KL plot (Runs tab)."""
USER_ERRORS = (ValueError, ModelLoadError, RewardError, FileExistsError, FileNotFoundError)
TOP = ("reward", "steps", "max_seconds")
SAMPLE_COLUMNS = ["query", "response", "reward"]
REWARD_HELP = "What each completion is scored with, within its group; the same choices as PPO's."


def samples_frame(rows) -> pd.DataFrame:
    """The step's completions (groups of G answers to one query) or the latest held-out samples."""
    return pd.DataFrame(
        [{"query": r["query"], "response": r["response"], "reward": round(float(r["reward"]), 3)} for r in (rows or [])[:16]],
        columns=SAMPLE_COLUMNS,
    )


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (GRPO's ``Algorithm``: its jobs are the ones this panel shows)."""
    defaults = GRPOConfig.preset(GRPOConfig.DEFAULT_PRESET)
    seen = gr.State(-1)  # the version of this session's job last drawn (runs.queue.Job.version)
    timer = gr.Timer(POLL_S, active=False)
    preset_dd, start, stop = top_bar(GRPOConfig, "grpo", "Quick CPU demo: LoRA, a 3-minute budget on a laptop CPU.", "Start GRPO", INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            builder = reward_builder(ctx, "grpo", defaults.reward, REWARD_HELP)
            length = run_length(GRPOConfig, defaults, "grpo")
            with gr.Accordion("Hyper-parameters", open=False):
                comps = config_form(
                    GRPOConfig,
                    defaults,
                    "grpo",
                    skip=TOP,
                    open_groups=("Rollouts", "KL penalty", "Optimisation", "Model and LoRA", "Evaluation"),
                )
        with gr.Column(scale=3):
            status = gr.Markdown(
                "Press **Start GRPO**. One training runs at a time on this machine; others wait in line.", elem_id="grpo-status"
            )
            plot = gr.Plot(
                empty_figure("Start a GRPO run to see batch reward, KL and held-out reward/KL here."),
                label="GRPO curves",
                elem_id="grpo-plot",
            )
            gr.Markdown(GROUP_BASELINE, elem_id="grpo-explain")
            samples = gr.Dataframe(
                headers=SAMPLE_COLUMNS,
                wrap=True,
                max_height=360,
                elem_id="grpo-samples",
                label="The step's completions (G per query) or the latest held-out samples",
            )
            before_after = gr.Dataframe(
                headers=BEFORE_AFTER_COLUMNS,
                wrap=True,
                max_height=360,
                elem_id="grpo-before-after",
                label="Before / after: the same held-out queries answered by the reference and the trained policy",
            )
    comps = {"reward": builder.spec, **length, **comps}
    names = list(comps)
    preset_dd.change(lambda name: preset_values(GRPOConfig, name, names), preset_dd, [comps[n] for n in names], api_visibility="private")

    def start_run(data: dict, request: gr.Request):
        try:
            cfg = config_from_form(GRPOConfig, data[preset_dd], {n: data[comps[n]] for n in names})
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        text, tick = submit(ctx, request, cfg, data[preset_dd])  # limits, rm: folders, the queue
        return text, before_first_step(text), None, None, -1, tick

    def on_tick(seen, request: gr.Request):
        return watch(alg, seen, request, table=samples_frame, before_after=before_after_frame)

    refresh_events(ctx, builder)  # the component lists follow the user and new reward models

    def on_stop(request: gr.Request):
        stop_run(request)

    outputs = [status, plot, samples, before_after, seen, timer]
    start.click(start_run, {preset_dd, *comps.values()}, outputs, concurrency_limit=None, api_visibility="private")
    timer.tick(on_tick, seen, outputs, concurrency_limit=None, show_progress="hidden", api_visibility="private")
    restore(ctx, alg, seen, timer)  # a reload shows this user's last run again
    stop.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")
