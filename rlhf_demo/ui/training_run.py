"""What the training panels and the named training API share: the run folder's name, the one way a
training starts (``start``: the session may train, its shared-server limits, ``rm:`` folders, the run
folder, the app's training queue ``runs.queue``), the curves of a job as its algorithm declares them
(``live_figure``: ``Algorithm.curves``, ``bands``, ``kl_budget_line``), and the watcher a ``gr.Timer``
calls to show the session's job of a panel's algorithm (status line, curves, tables). Wires only: the
queue, the trainers and the words are the core's.

The shared server's limits are checked here, once, with the session's knowledge (its own runs' policies
and reward models are allowed): the config's ``validate()`` checks the config alone, and the trainer
that validates it again in the queue trusts it.

Start returns at once (the job waits in the queue, holding no slot of Gradio's event queue); the
timer reads the job's state every ``POLL_S`` seconds and redraws only when a new record arrived.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.algorithms import Algorithm, find, make_trainer, resolve
from rlhf_demo.classroom import costs
from rlhf_demo.data.preferences import PreferenceError
from rlhf_demo.data.prompts import PromptError
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots import training as training_plots
from rlhf_demo.plots.training import training_figure
from rlhf_demo.rewards.functions import RewardError
from rlhf_demo.rewards.learned import find_reward_model
from rlhf_demo.runs.folder import RunWriter
from rlhf_demo.training.queue import QUEUE, Job, QueueError
from rlhf_demo.ui.context import current_user

POLL_S = 2.0
USER_ERRORS = (ValueError, ModelLoadError, RewardError, PromptError, PreferenceError, FileExistsError, FileNotFoundError)


def owner(request: gr.Request | None) -> str:
    """The user id jobs are filed under (``ui.context.current_user``: a reload keeps it)."""
    return current_user(request).id


def run_dir(ctx, algo: str, request: gr.Request | None) -> Path:
    """A new run folder for this user, recorded as theirs (``AppContext.register_run``: on a shared server
    only its owner, the teacher and, once pinned, the class see it). The name ends with a hash of the
    user id (run names are shown to the teacher and, when pinned, to the class)."""
    tag = hashlib.sha256(owner(request).encode()).hexdigest()[:6]
    out = RunWriter.check(Path(ctx.runs_dir) / f"{algo}-{time.strftime('%Y%m%d-%H%M%S')}-{tag}")
    ctx.register_run(request, out)
    return out


def markdown(lines: list[str]) -> str:
    return "  \n".join(lines)


def check_reward_folders(cfg) -> None:
    """RewardError in one line when the reward or the gold reward is ``rm:`` a folder that holds no reward
    model (a causal LM, a DPO/PPO run, nothing): said at Start, before the run waits in the queue."""
    for what in ("reward", "gold_reward"):
        spec = getattr(cfg, what, "")
        if isinstance(spec, str) and spec.startswith("rm:"):
            find_reward_model(spec[3:].strip())


def start(ctx, request, cfg, preset: str | None, *, pairs: list[dict] | None = None, prompts: list[str] | None = None) -> Job:
    """Queue a training of the validated ``cfg`` for the user of ``request``: the one path of the panels'
    Start buttons and of ``/train_start``. In order: the user may train (``ctx.gate``), the shared
    server's limits for this session (``costs.check_training`` with ``ctx.session_limits``: once, here),
    ``rm:`` folders hold reward models, a new run folder recorded as theirs, the queue (one job per
    user). ``pairs``/``prompts``: what the trainer trains on when the config's source is an upload or
    the Feedback tab's labels (None: the trainer loads ``cfg.preferences`` / ``cfg.prompts``).
    ``gr.Error`` with one line for whatever is refused."""
    try:
        user = ctx.gate(request, "train")
        costs.check_training(cfg, ctx.session_limits(request))
        check_reward_folders(cfg)
        out = run_dir(ctx, cfg.algo, request)
    except USER_ERRORS as exc:
        raise gr.Error(str(exc)) from exc

    def build(stop, progress=None):
        return make_trainer(cfg, pairs=pairs, prompts=prompts, stop=stop, progress=progress)

    try:
        return QUEUE.submit(
            user.id, cfg.algo, out, build, preset=preset, budget_s=cfg.max_seconds, total_steps=cfg.steps, nickname=user.nickname, cfg=cfg
        )
    except QueueError as exc:
        raise gr.Error(str(exc)) from exc


def submit(ctx, request, cfg, preset: str | None, **data):
    """A panel's Start: ``start`` the run; returns (status text, timer update)."""
    job = start(ctx, request, cfg, preset, **data)
    text = QUEUE.waiting_line(job) or "Starting: loading a training copy of the model…"
    return text, gr.Timer(active=True)


def before_first_step(text: str):
    """The plot of a job without records yet: its waiting line (position from 1) or what it is doing."""
    return training_plots.empty_figure(text.split("  \n")[0][:110] or "Loading the model…")


def stop(request) -> None:
    gr.Info(QUEUE.cancel(owner(request)).capitalize() + ".")


def panels_for(alg: Algorithm | None) -> list:
    """The live-plot panels of ``alg`` (``Algorithm.curves``); without any, PPO's and DPO's together
    (panels whose columns a run lacks are skipped)."""
    if alg is not None and alg.curves:
        return resolve(alg.curves)
    return training_plots.PPO_PANELS + training_plots.DPO_PANELS


def live_figure(alg: Algorithm | None, records: list[dict], cfg):
    """The curves of a job of ``alg``: its panels, ``reward_mean ± reward_std`` shaded when it says so,
    and its config's KL budget as a line on the KL panel when it draws one."""
    budget = getattr(cfg, "kl_budget", None) if alg is not None and alg.kl_budget_line else None
    hlines = {training_plots.KL_PANEL: (budget, f"KL budget {budget:g}")} if budget else None
    bands = training_plots.BANDS if alg is not None and alg.bands else {}
    return training_figure(pd.DataFrame(records), panels_for(alg), hlines=hlines, bands=bands)


def mine(alg: Algorithm, job: Job | None) -> bool:
    """Whether ``job`` is a run of the panel of ``alg``."""
    return job is not None and job.algo == alg.name


def restore(ctx, alg: Algorithm, seen, timer) -> None:
    """After a reload (or on another tab of the same browser), the panel of ``alg`` shows this user's
    latest run again, running or ended: once the page has said who it is (``ctx.who``, the browser's
    identity), ``seen`` is reset and the panel's timer started, so its next tick (``watch``) draws the
    job from the queue, and stops again once an ended job is drawn."""
    if ctx.who is None:
        return

    def on_who(request: gr.Request):
        if not mine(alg, QUEUE.latest(owner(request))):
            return gr.skip(), gr.skip()
        return -1, gr.Timer(active=True)

    ctx.who.change(on_who, None, [seen, timer], api_visibility="private", show_progress="hidden", queue=False)


def latest_label(request) -> str | None:
    """The label of the algorithm of this user's latest run (None: no run the queue remembers)."""
    job = QUEUE.latest(owner(request))
    alg = find(job.algo) if job is not None else None
    return alg.label if alg is not None else None


def watch(alg: Algorithm, seen: int, request, *, table, before_after=None) -> tuple:
    """(status, figure, table, before/after, seen version, timer) for the session's latest job of ``alg``
    (the panel's own algorithm); ``gr.skip()`` for whatever has not changed since version ``seen``."""
    job = QUEUE.latest(owner(request))
    if not mine(alg, job):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen, gr.Timer(active=False)
    version, done = job.snapshot()  # together: the timer stops only once the ending version is drawn
    waiting = QUEUE.waiting_line(job)
    if version == seen:
        return (waiting or gr.skip()), gr.skip(), gr.skip(), gr.skip(), seen, gr.Timer(active=not done)
    text = waiting or markdown(job.lines)
    if done and job.state not in ("cancelled", "failed"):
        text += f"  \nChoose the run in the Playground / KL tab, or compare it in Runs: `{job.out.name}`."
    fig = live_figure(alg, job.records, job.cfg) if job.records else before_first_step(text) if not done else gr.skip()
    rows = table(job.samples) if job.samples else gr.skip()
    ba = before_after(job.before_after) if before_after is not None and done and job.before_after else gr.skip()
    return text, fig, rows, ba, version, gr.Timer(active=not done)
