"""The foot of the Training tab: whatever is training on this machine, live, for every page — whose run
it is, who waits, its curves, its current batch and, at the end, before/after. Lays out and wires only.

One live view per run on a page: the owner of the run training now follows it in their algorithm's panel
(status, curves, batch), so for them this box keeps its status line and hides its own figure and
tables; everyone else sees the run here.

One producer, many readers: the queue's worker writes the job's records; each viewer's ``gr.Timer``
reads them (``runs.queue.QUEUE.current()``) and gets a figure built once per job version for all
viewers (``_figure``: the job's algorithm's curves, ``training_run.live_figure``), so thirty screens cost
no model compute and one figure per update. The timer
runs only while the Training tab is open (``app.py`` switches it with the tabs).
"""

from __future__ import annotations

import threading

import gradio as gr
import pandas as pd

from rlhf_demo.algorithms import find
from rlhf_demo.classroom import limits
from rlhf_demo.plots.training import empty_figure
from rlhf_demo.training.queue import QUEUE, Job, QueueError
from rlhf_demo.ui import inspector
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_run import live_figure, owner

NO_SUCH = "no training by that name that you may stop: only its owner and the teacher can stop a run"

POLL_S = 2.0
SAMPLE_COLUMNS = [("query", "query"), ("response", "response"), ("reward", "reward"), ("kl", "KL (k1)")]
BEFORE_AFTER = [
    ("query", "query"),
    ("reference", "reference response"),
    ("reference_reward", "reference reward"),
    ("policy", "policy response"),
    ("policy_reward", "policy reward"),
]
_cache: dict[str, tuple[int, object]] = {}
_cache_lock = threading.Lock()


def _figure(job: Job):
    """The job's curves, built once per job version whoever asks."""
    with _cache_lock:
        hit = _cache.get(job.id)
        if hit is not None and hit[0] == job.version:
            return hit[1]
    fig = live_figure(find(job.algo), job.records, job.cfg)  # the cfg is kept after the job ended (its trainer is not)
    with _cache_lock:
        _cache[job.id] = (job.version, fig)
        while len(_cache) > 8:
            _cache.pop(next(iter(_cache)))
    return fig


def _frame(rows: list[dict], columns) -> pd.DataFrame:
    keys = [(k, label) for k, label in columns if any(k in r for r in rows)]
    return pd.DataFrame(
        [[round(r[k], 3) if isinstance(r.get(k), float) else r.get(k, "") for k, _ in keys] for r in rows[:16]],
        columns=[label for _, label in keys],
    )


def label(job: Job) -> str:
    """The job's algorithm as the UI names it."""
    alg = find(job.algo)
    return alg.label if alg is not None else job.algo.upper()


def whose(job: Job, viewer: str | None) -> str:
    """Who a line credits a job to: "you" for the viewer's own, else the owner's nickname on a shared
    server ('' in local use: one person, no invented names)."""
    if viewer is not None and job.owner == viewer:
        return " by **you**"
    return f" by **{job.nickname or '?'}**" if limits.current().shared else ""


def status_line(job: Job | None, viewer: str | None = None) -> str:
    """Whose run is training (or trained last) and who waits (positions from 1), in a few lines."""
    waiting = QUEUE.waiting()
    if job is None:
        head = "Nothing has trained on this machine yet. Start a run above: every page sees it here, live."
    else:
        what = f"**{label(job)}** run `{job.out.name}`{whose(job, viewer)}"
        if job.done:
            head = f"Last run: {what} — {job.state}."
        else:
            step = job.records[-1].get("step") if job.records else 0
            head = f"Training now: {what} — step {step or 0}/{job.total_steps or '?'}."
        if job.lines and not job.done:
            head += "  \n" + job.lines[0]
    if waiting:
        head += "  \nWaiting: " + ", ".join(
            f"{i + 1}. {'you' if j.owner == viewer else (j.nickname or '?')} ({label(j)})" for i, j in enumerate(waiting[:12])
        )
        if len(waiting) > 12:
            head += f" and {len(waiting) - 12} more"
    return head


def build(ctx: AppContext, demo: gr.Blocks) -> gr.Timer:
    """The live section; returns its timer (off until the Training tab is opened)."""
    seen = gr.State("")  # "job id:version" last drawn by this page
    timer = gr.Timer(POLL_S, active=False)
    with gr.Accordion("Now training on this machine (everyone sees this)", open=True, elem_id="live"):
        status = gr.Markdown("Open this tab to follow the training that runs on this machine.", elem_id="live-status")
        with gr.Row():
            run_name = gr.Textbox("", label="Run", interactive=False, elem_id="live-run", scale=4)
            stop = gr.Button("Stop this run (owner or teacher)", variant="stop", size="sm", elem_id="live-stop", scale=1)
        plot = gr.Plot(empty_figure("Nothing is training yet."), label="Curves of the run training now", elem_id="live-plot")
        with gr.Row() as tables:
            batch = gr.Dataframe(
                headers=[label for _, label in SAMPLE_COLUMNS],
                label="Its latest batch / held-out samples",
                wrap=True,
                max_height=300,
                elem_id="live-batch",
                interactive=False,
            )
            before_after = gr.Dataframe(
                headers=[label for _, label in BEFORE_AFTER],
                label="Before / after (at the end)",
                wrap=True,
                max_height=300,
                elem_id="live-before-after",
                interactive=False,
            )
        with gr.Accordion("Its tokens: why did this token go up?", open=False, elem_id="live-inspect"):
            inspector.build(ctx, run_name, prefix="live-insp")

    def on_tick(seen_key: str, request: gr.Request):
        job = QUEUE.current()
        viewer = owner(request)
        line = status_line(job, viewer)
        if job is None:
            return line, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen_key
        own = job.owner == viewer
        key = f"{job.id}:{job.version}:{int(own)}"
        if key == seen_key:
            return line, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen_key
        if own:  # the owner's panel shows this run: one live view per page
            line += f"  \nYour run: its curves and batch are in the {label(job)} panel above."
            hide = gr.update(visible=False)
            return line, job.out.name, hide, gr.skip(), gr.skip(), hide, key
        show = gr.update(visible=True)
        fig = _figure(job) if job.records else empty_figure(job.lines[0] if job.lines else "Loading the model…")
        rows = _frame(job.samples, SAMPLE_COLUMNS) if job.samples else gr.skip()
        ba = _frame(job.before_after, BEFORE_AFTER) if job.done and job.before_after else gr.skip()
        return line, job.out.name, gr.Plot(fig, visible=True), rows, ba, show, key

    timer.tick(
        on_tick,
        seen,
        [status, run_name, plot, batch, before_after, tables, seen],
        concurrency_limit=None,
        show_progress="hidden",
        api_visibility="private",
    )

    def stop_run(run: str, request: gr.Request) -> str:
        """Stop the training of run folder `run` after its current step (or take it out of the queue):
        allowed to the run's owner and the teacher."""
        job = next((j for j in QUEUE.jobs() if isinstance(run, str) and j.out.name == run), None)
        if job is None or not (ctx.is_teacher(request) or job.owner == ctx.user(request).id):
            raise gr.Error(f"{str(run)[:80]!r}: {NO_SUCH}.")
        try:
            said = QUEUE.remove(job.id)
        except QueueError as exc:
            raise gr.Error(str(exc)) from exc
        gr.Info(f"{run}: {said}.")
        return status_line(QUEUE.current(), owner(request))

    stop.click(stop_run, run_name, status, api_name="stop_run", concurrency_limit=None)
    return timer
