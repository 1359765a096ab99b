"""The best-of-N distillation panel of the Training tab: preset, reward (the reward builder,
``ui/reward_builder.py``: a function, a learned reward model ``rm:`` or a weighted sum, the same choices
as PPO's), every knob (built from ``BoNConfig``'s metadata), Start/Stop, live curves (held-out reward and KL against the kept samples' reward and best-of-N's bound,
the fine-tuning loss), the kept samples and before/after. Lays out and wires only.

Start puts the run in the app's training queue (``runs.queue``), a ``gr.Timer`` shows the session's
job as it goes; Stop leaves the queue or stops the run after its current step (the policy is saved)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from rlhf_demo.bon.config import DISTILL, BoNConfig
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

INTRO = """### Best-of-N distillation: fine-tune on the answers best-of-N would pick
First the **reference** answers every training opening **N times**; the reward (VADER sentiment by default, or a
reward model `rm:`) scores each answer and only the **best** of each opening is kept. Then the policy (a LoRA
adapter) is fine-tuned on those winners with the plain next-token loss (TRL's SFTTrainer): it learns to answer
the way best-of-N picks, without drawing N answers each time. No reward in the training loop, no value model.
Best-of-N's own KL to the reference is at most log N − (N−1)/N; the held-out prompts (◆) are scored with the
same reward and KL as PPO, DPO and GRPO, so every algorithm lands on the same reward–KL plot (Runs tab)."""
USER_ERRORS = (ValueError, ModelLoadError, RewardError, FileExistsError, FileNotFoundError)
TOP = ("reward", "steps", "max_seconds")
SAMPLE_COLUMNS = ["query", "response", "reward"]
REWARD_HELP = "What picks the best of the N answers (and what the held-out evaluation reports); the same choices as PPO's."


def samples_frame(rows) -> pd.DataFrame:
    """The kept samples (the best answer of each query: what the policy imitates) or the latest held-out samples."""
    return pd.DataFrame(
        [{"query": r["query"], "response": r["response"], "reward": round(float(r["reward"]), 3)} for r in (rows or [])[:16]],
        columns=SAMPLE_COLUMNS,
    )


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (best-of-N distillation's ``Algorithm``: its jobs are the ones this panel shows)."""
    defaults = BoNConfig.preset(BoNConfig.DEFAULT_PRESET)
    seen = gr.State(-1)  # the version of this session's job last drawn (runs.queue.Job.version)
    timer = gr.Timer(POLL_S, active=False)
    preset_dd, start, stop = top_bar(
        BoNConfig,
        "bon",
        "Quick CPU demo: LoRA, a 5-minute budget (sampling included) on a laptop CPU.",
        "Start best-of-N distillation",
        INTRO,
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            builder = reward_builder(ctx, "bon", defaults.reward, REWARD_HELP)
            length = run_length(BoNConfig, defaults, "bon")
            with gr.Accordion("Hyper-parameters", open=False):
                comps = config_form(
                    BoNConfig,
                    defaults,
                    "bon",
                    skip=TOP,
                    open_groups=("Sampling", "Optimisation", "Model and LoRA", "Evaluation"),
                )
        with gr.Column(scale=3):
            status = gr.Markdown(
                "Press **Start best-of-N distillation**. One training runs at a time on this machine; others wait in line.",
                elem_id="bon-status",
            )
            plot = gr.Plot(
                empty_figure("Start a run to see the kept samples' reward, the loss and held-out reward/KL here."),
                label="Best-of-N distillation curves",
                elem_id="bon-plot",
            )
            gr.Markdown(DISTILL, elem_id="bon-explain")
            samples = gr.Dataframe(
                headers=SAMPLE_COLUMNS,
                wrap=True,
                max_height=360,
                elem_id="bon-samples",
                label="The kept samples (the best of N per query) or the latest held-out samples",
            )
            before_after = gr.Dataframe(
                headers=BEFORE_AFTER_COLUMNS,
                wrap=True,
                max_height=360,
                elem_id="bon-before-after",
                label="Before / after: the same held-out queries answered by the reference and the trained policy",
            )
    comps = {"reward": builder.spec, **length, **comps}
    names = list(comps)
    preset_dd.change(lambda name: preset_values(BoNConfig, name, names), preset_dd, [comps[n] for n in names], api_visibility="private")

    def start_run(data: dict, request: gr.Request):
        try:
            cfg = config_from_form(BoNConfig, data[preset_dd], {n: data[comps[n]] for n in names})
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
