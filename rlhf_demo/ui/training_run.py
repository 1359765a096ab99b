"""What the PPO and DPO panels share: the run folder's name, submitting a run to the app's training
queue (``runs.queue``), and the watcher a ``gr.Timer`` calls to show the session's job (status line,
curves, tables). Wires only: the queue, the trainers and the words are the core's.

Start returns at once (the job waits in the queue, holding no slot of Gradio's event queue); the
timer reads the job's state every ``POLL_S`` seconds and redraws only when a new record arrived.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.plots.training import training_figure
from rlhf_demo.runs.folder import RunWriter
from rlhf_demo.runs.queue import QUEUE, QueueError
from rlhf_demo.ui.context import current_user

POLL_S = 2.0


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


def submit(algo: str, out: Path, build, request, *, preset: str, budget_s: float, total_steps: int):
    """Queue a run for this session; returns (status text, timer update)."""
    try:
        job = QUEUE.submit(owner(request), algo, out, build, preset=preset, budget_s=budget_s, total_steps=total_steps,
                           nickname=current_user(request).nickname)
    except QueueError as exc:
        raise gr.Error(str(exc)) from exc
    text = QUEUE.waiting_line(job) or "Starting: loading a training copy of the model…"
    return text, gr.Timer(active=True)


def stop(request) -> None:
    gr.Info(QUEUE.cancel(owner(request)).capitalize() + ".")


def watch(algo: str, seen: int, request, *, panels, table, before_after=None, hlines=None, bands=None) -> tuple:
    """(status, figure, table, before/after, seen version, timer) for the session's latest ``algo`` job;
    ``gr.skip()`` for whatever has not changed since version ``seen``."""
    job = QUEUE.latest(owner(request))
    if job is None or job.algo != algo:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen, gr.Timer(active=False)
    version, done = job.snapshot()      # together: the timer stops only once the ending version is drawn
    waiting = QUEUE.waiting_line(job)
    if version == seen:
        return (waiting or gr.skip()), gr.skip(), gr.skip(), gr.skip(), seen, gr.Timer(active=not done)
    text = waiting or markdown(job.lines)
    if done and job.state not in ("cancelled", "failed"):
        text += f"  \nChoose the run in the Playground / KL tab, or compare it in Runs: `{job.out.name}`."
    lines = hlines(job.trainer.cfg) if hlines is not None and job.trainer is not None else None
    fig = training_figure(pd.DataFrame(job.records), panels, hlines=lines, **({} if bands is None else {"bands": bands})) \
        if job.records else gr.skip()
    rows = table(job.samples) if job.samples else gr.skip()
    ba = before_after(job.before_after) if before_after is not None and done and job.before_after else gr.skip()
    return text, fig, rows, ba, version, gr.Timer(active=not done)
