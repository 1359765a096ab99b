"""The PPO panel of the Training tab: preset, reward (the reward builder, ``ui/reward_builder.py``: a
function, a learned reward model ``rm:`` from the run folders, or a weighted sum of them), gold reward,
prompts, every knob (built from ``PPOConfig``'s metadata), Start/Stop, live curves, the
over-optimisation panel (proxy and gold reward against KL, when the gold reward is not the training
reward), the current batch (each component's score beside the total), before/after. Lays out and
wires only.

Start puts the run in the app's training queue (``runs.queue``: one training at a time; a waiting run
holds no slot of Gradio's queue) and a ``gr.Timer`` shows the session's job as it goes. Stop leaves
the queue or stops the run after its current update (the policy is saved, the run folder completed).
The per-session ``gr.State`` holds only the version of the job last drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.data.prompts import PromptError, parse_prompts
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots.overopt import overopt_figure
from rlhf_demo.plots.training import empty_figure
from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.rewards.functions import RewardError
from rlhf_demo.training.queue import QUEUE
from rlhf_demo.ui.config_form import config_form, config_from_form, preset_values
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.reward_builder import refresh_events, reward_builder, reward_choices  # noqa: F401 (reward_choices: re-exported)
from rlhf_demo.ui.training_run import POLL_S, before_first_step, check_reward_folders, mine, owner, restore, submit, watch  # noqa: F401 (check_…: re-exported)
from rlhf_demo.ui.training_run import stop as stop_run
from rlhf_demo.ui.training_widgets import BEFORE_AFTER_COLUMNS, before_after_frame, cli_details, run_length, top_bar

INTRO = """### PPO: learn from a reward model
Each **update** samples a batch of movie-review openings, lets the policy continue them, scores each text
with the reward (VADER sentiment by default), and pushes the policy toward higher reward with PPO — while a
per-token penalty **−β·KL** keeps it close to the reference (the same model with its LoRA adapter switched
off). Watch the reward rise, the KL grow, and the responses change. Held-out prompts (◆) are never trained on.

**On a learned reward model** (`rm:` — train one in the *Reward model* panel): PPO maximises the model's score, a
*proxy* for the preferences it learned; the **gold reward** (VADER, which made the shipped pairs) is scored on the
same texts and never trained on. The over-optimisation panel draws both against KL: where the proxy keeps rising
and the gold stalls or falls, the policy exploits the reward model (Gao et al. 2022)."""
USER_ERRORS = (ValueError, ModelLoadError, RewardError, PromptError, FileExistsError, FileNotFoundError)
TOP = ("reward", "gold_reward", "steps", "max_seconds")  # shown above the accordions
GOLD_CHOICES = ["vader-positive", "vader-negative", "length", "none"]
BATCH_COLUMNS = ["query", "response", "reward", "KL (k1)", "reward model output"]
REWARD_HELP = (
    "What PPO pushes up: how positive the text sounds (VADER), how negative, its length, whether the response is on "
    "topic, how much it repeats, how natural it reads to the base model (fluency), whether it answers its own opening "
    "(relevance), a word, a reward model you trained in the Reward model panel, or a weighted sum of these."
)
GOLD_HELP = (
    "A second score, computed on the same texts but never trained on: with a trained reward model it shows "
    "whether the gains are real. 'none' (or the same as the reward) draws no gold line."
)
UI_DEFAULTS = {"max_seconds": 180.0}
"""What the panel starts with on top of the preset: a 3-minute run, long enough to see learning."""


def _short(details) -> str:
    """Raw reward-model output in one short line (VADER's dict, or a pipeline's label scores)."""
    if details is None:
        return ""
    if isinstance(details, dict):
        return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in details.items())
    if isinstance(details, list):
        return ", ".join(f"{d.get('label')} {d.get('score', 0):.2f}" if isinstance(d, dict) else str(d) for d in details)
    return json.dumps(details)[:200]


def component_names(rows: list[dict]) -> list[str]:
    """The reward's components to show beside the total: those of a builder spec (``row["components"]``:
    name → score), none for a single reward whose one component is the total itself."""
    names = list(dict.fromkeys(n for r in rows for n in r.get("components") or {}))
    alone = len(names) == 1 and all(
        abs(r["components"].get(names[0], r["reward"]) - r["reward"]) < 1e-6 for r in rows if r.get("components")
    )
    return [] if alone else names


def batch_frame(rows: list[dict]) -> pd.DataFrame:
    """The batch: query, response, the reward, each component's score (a builder spec), KL and the reward's
    raw output (a single reward's; a sum's details are its components, shown in their own columns)."""
    names = component_names(rows)
    return pd.DataFrame(
        [
            [r["query"], r["response"], round(r["reward"], 3)]
            + [round(float((r.get("components") or {}).get(n, float("nan"))), 3) for n in names]
            + [round(r["kl"], 2), "" if names else _short(r.get("details"))]
            for r in rows
        ],
        columns=BATCH_COLUMNS[:3] + names + BATCH_COLUMNS[3:],
    )


def shows_overopt(cfg: PPOConfig) -> bool:
    """The over-optimisation panel is drawn when a gold reward is logged that is not the training reward."""
    return cfg.gold_reward != "none" and cfg.gold_reward != cfg.reward


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (PPO's ``Algorithm``: its jobs are the ones this panel shows)."""
    seen = gr.State(-1)  # the version of this session's job last drawn (runs.queue.Job.version)
    timer = gr.Timer(POLL_S, active=False)
    defaults = PPOConfig.preset(PPOConfig.DEFAULT_PRESET, **UI_DEFAULTS)
    preset_dd, start, stop = top_bar(
        PPOConfig, "ppo", "Quick CPU demo learns in ~3 min; No KL shows reward hacking; Course needs the Hub.", "Start training", INTRO
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            builder = reward_builder(ctx, "ppo", defaults.reward, REWARD_HELP)
            gold = gr.Dropdown(
                GOLD_CHOICES,
                value=defaults.gold_reward,
                label=PPOConfig.knob("gold_reward").metadata["label"],
                allow_custom_value=True,
                info=GOLD_HELP,
                elem_id="ppo-gold-reward",
            )
            gr.Markdown(
                cli_details(f"reward: {PPOConfig.help('reward')}<br>gold: {PPOConfig.help('gold_reward')}"), elem_id="ppo-reward-cli"
            )
            length = run_length(PPOConfig, defaults, "ppo", steps_label="Updates")
            prompts_file = gr.File(
                label="Prompts file (optional: .txt one per line, .csv/.tsv/.jsonl)",
                file_types=[".txt", ".csv", ".tsv", ".jsonl"],
                type="filepath",
                height=150,
                elem_id="ppo-prompts-file",
            )
            comps = config_form(PPOConfig, defaults, "ppo", skip=TOP)
        with gr.Column(scale=3):
            status = gr.Markdown(
                "Press **Start training**. One training runs at a time on this machine; others wait in line.", elem_id="ppo-status"
            )
            overopt = gr.Plot(
                empty_figure(), label="Over-optimisation: proxy and gold reward against KL", visible=False, elem_id="ppo-overopt"
            )
            plot = gr.Plot(empty_figure(), label="Training curves", elem_id="ppo-plot")
            batch_table = gr.Dataframe(
                headers=BATCH_COLUMNS, label="Current batch (query → response, reward)", wrap=True, max_height=360, elem_id="ppo-batch"
            )
            before_after = gr.Dataframe(
                headers=BEFORE_AFTER_COLUMNS,
                wrap=True,
                max_height=360,
                elem_id="ppo-before-after",
                label="Before / after: the same held-out queries answered by the reference and the trained policy",
            )
    comps = {"reward": builder.spec, "gold_reward": gold, **length, **comps}
    names = list(comps)

    def on_preset(name):
        values = preset_values(PPOConfig, name, names)
        return [v if n != "max_seconds" or v else UI_DEFAULTS["max_seconds"] for n, v in zip(names, values)]

    preset_dd.change(on_preset, preset_dd, [comps[n] for n in names], api_visibility="private")

    def start_run(data: dict, request: gr.Request):
        preset, pfile = data[preset_dd], data[prompts_file]
        try:
            ctx.gate(request, "train")  # before the upload is read (training_run.start asks again)
            values = {n: data[comps[n]] for n in names}
            prompts = None
            if pfile:
                p = Path(pfile)
                prompts = parse_prompts(p.read_bytes(), p.name)
                values["prompts"] = f"upload:{p.name}"
            cfg = config_from_form(PPOConfig, preset, values)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        text, tick = submit(ctx, request, cfg, preset, prompts=prompts)  # limits, rm: folders, the queue
        over = gr.Plot(before_first_step(text), visible=shows_overopt(cfg))
        return text, before_first_step(text), None, None, -1, tick, over

    def on_tick(seen, request: gr.Request):
        job = QUEUE.latest(owner(request))
        fresh = mine(alg, job) and job.version != seen and job.records and job.cfg is not None and shows_overopt(job.cfg)
        records = list(job.records) if fresh else []
        out = watch(alg, seen, request, table=batch_frame, before_after=before_after_frame)
        return (*out, gr.Plot(overopt_figure(pd.DataFrame(records)), visible=True) if records else gr.skip())

    refresh_events(ctx, builder)  # the component lists follow the user and new reward models

    outputs = [status, plot, batch_table, before_after, seen, timer, overopt]
    start.click(start_run, {preset_dd, prompts_file, *comps.values()}, outputs, concurrency_limit=None, api_visibility="private")
    timer.tick(on_tick, seen, outputs, concurrency_limit=None, show_progress="hidden", api_visibility="private")
    restore(ctx, alg, seen, timer)  # a reload shows this user's last run again

    def on_stop(request: gr.Request):
        stop_run(request)

    stop.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")
