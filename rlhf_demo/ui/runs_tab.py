"""The Runs tab: every run folder (PPO and DPO) with its settings, their curves overlaid, every held-out
evaluation as reward against KL (the DPO paper's Figure 2 frontier), metrics as CSV, a policy as a zip.
Lays out and wires only: data from ``rlhf_demo.runs.compare``, figures from ``rlhf_demo.plots.runs``.

Public API endpoints (each handler's parameters are the API's names): ``/runs_refresh``,
``/runs_compare``, ``/runs_export_csv``, ``/runs_download_policy``. On a shared server a user lists,
compares and downloads only the runs they may see (``AppContext.may_see``: their own, the ones the
teacher pinned, the shipped examples; the teacher sees all); any other run name, foreign or unknown,
gets the same one line (``NOT_YOURS``), checked on the server for the HTTP API too. On the page the
names are checked first, in an event of their own (``check_names``), so a refusal shows at once even
while other downloads are being built.

When the teacher set a class challenge (``classroom.challenge``), its ranking of the class's runs shows
above the table (``classroom.challenge.class_ranking``, the same as the Teacher tab's), refreshed with it.

The table leads with the outcome (run, algorithm, held-out reward, KL, reward per nat, on topic,
status); the settings are a second table on demand. When this user's latest run ends, the tab
refreshes itself and selects that run (a ``gr.Timer`` reading the queue: nothing is redrawn until a
run of theirs has ended).
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from rlhf_demo.classroom.challenge import class_ranking
from rlhf_demo.classroom.quota import cached_zip, downloads_dir, export_path
from rlhf_demo.plots.overopt import overopt_figure
from rlhf_demo.plots.runs import frontier_figure, overlay_figure
from rlhf_demo.runs.compare import (
    base_point,
    best_of_n_points,
    eval_points,
    export_csv,
    frontier_target,
    load_curves,
    pi_star_curve,
    run_label,
    runs_table,
    split_table,
)
from rlhf_demo.training.queue import QUEUE
from rlhf_demo.ui import inspector
from rlhf_demo.ui.context import NOT_YOURS, AppContext

ENDED_POLL_S = 3.0

INTRO = r"""### Runs: compare PPO and DPO on the same axes
Every training run is a folder (`config.json`, `metrics.jsonl`, `policy/`). Pick runs to overlay their curves.
The **frontier** plots each held-out evaluation of each run as mean reward against KL(π‖π_ref): up is more
reward, right is further from the reference. Good methods get high reward for little KL (the DPO paper's
Figure 2); the ★ is the base model. The dashed curve is **π\***, the KL-regularised optimum
π\*(y) ∝ π_ref(y)·exp(r(y)/β) on the same held-out queries (estimated once from 128 reference samples per
query by `bench/ppo_frontier.py`): no policy can sit above it, and the gap to it is what a method leaves
on the table. The orange points labelled N=… are **best-of-N** of the reference (N = 2 … 64, no training: sample N, keep the
best), each at its KL bound log N − (N−1)/N (`scripts/make_best_of_n.py`): a trained run should sit above
and left of them. The table's **reward per nat** is each run's held-out gain over the base divided by its KL;
**on topic** is the share of its held-out responses that still talk about a film."""


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    gr.Markdown(INTRO)

    def by_label(request):
        """label → folder of the runs this user may see (all of them in local use)."""
        return {run_label(r): r for r in ctx.visible_runs(request)}

    def pick_runs(selected, request) -> list[Path]:
        """The folders of the named runs; one line for any name this user may not see (or that does not exist)."""
        runs = by_label(request)
        names = [selected] if isinstance(selected, str) else list(selected or [])
        bad = [s for s in names if not isinstance(s, str) or s not in runs]
        if bad:
            raise gr.Error(f"{str(bad[0])[:80]!r}: {NOT_YOURS}.")
        return [runs[s] for s in names]

    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", elem_id="runs-refresh", scale=0)
        pick = gr.Dropdown(
            [],
            multiselect=True,
            label="Runs to compare",
            elem_id="runs-pick",
            scale=5,
            allow_custom_value=True,  # names are checked by the handlers (pick_runs), not the choices
            info="Newest first; up to 8 are selected at start.",
        )
    with gr.Column(visible=False, elem_id="runs-challenge-box") as ch_box:
        ch_md = gr.Markdown("", elem_id="runs-challenge-md")
        ch_table = gr.Dataframe(label="Class challenge: the ranking", max_height=300, elem_id="runs-challenge", interactive=False)
    table = gr.Dataframe(label="Runs: how each one ended (newest first)", max_height=300, elem_id="runs-table", interactive=False)
    with gr.Accordion("Settings of these runs", open=False, elem_id="runs-settings-box"):
        settings = gr.Dataframe(max_height=300, elem_id="runs-settings", interactive=False)
    frontier = gr.Plot(label="Held-out reward vs KL", elem_id="runs-frontier")
    overlay = gr.Plot(label="Curves, overlaid", elem_id="runs-overlay")
    overopt = gr.Plot(label="Over-optimisation: proxy and gold reward against KL (PPO runs with a gold reward)", elem_id="runs-overopt")
    with gr.Row():
        csv_btn = gr.Button("Export metrics of the selected runs (CSV)", elem_id="runs-csv")
        one = gr.Dropdown([], label="Run whose policy to download", elem_id="runs-one", scale=2, allow_custom_value=True)
        zip_btn = gr.Button("Download policy (zip)", elem_id="runs-zip")
    files = gr.File(label="Download", interactive=False, elem_id="runs-file", height=80, visible=False)
    with gr.Accordion("Why did this token go up? One update of a run, token by token", open=False, elem_id="runs-inspect"):
        insp_run = gr.Dropdown([], label="Run", elem_id="runs-insp-run", allow_custom_value=True)  # checked by the panel
        inspector.build(ctx, insp_run, prefix="runs-insp")

    def compare_runs(selected_runs: list[str] | None, request: gr.Request):
        """The frontier (held-out reward vs KL, the base model at KL = 0, π*'s curve from it) and the
        overlaid curves of the selected runs (labels as in the runs table)."""
        chosen = pick_runs(selected_runs, request)
        base = base_point()
        reward = base["reward_mean"] if base else None
        pts = eval_points(chosen, base_reward=reward, base_sem=base.get("reward_sem") if base else None)
        return (
            frontier_figure(pts, target=frontier_target(reward), pi_star=pi_star_curve(), base_reward=reward, best_of_n=best_of_n_points()),
            overlay_figure(load_curves(chosen)),
        )

    def overopt_runs(selected_runs: list[str] | None, request: gr.Request):
        """Proxy (``reward_mean``) and gold (``gold_reward_mean``) reward against KL for the selected runs
        that logged a gold reward (PPO on a learned reward model, ``rm:RUN``)."""
        return overopt_figure(load_curves(pick_runs(selected_runs, request)))

    def refresh_runs(selected_runs: list[str] | None, request: gr.Request):
        """Every run folder again: the choices, the runs table (outcome first), the run to download, the
        figures of the selection (kept where the runs still exist, else the 8 newest), the settings table."""
        return reload(selected_runs, request)

    def reload(selected_runs, request, first: str | None = None):
        """``refresh_runs``, with ``first`` put first in the selection and chosen for download."""
        runs = by_label(request)
        labels = list(runs)
        selected = [s for s in (selected_runs or []) if isinstance(s, str) and s in runs] or labels[:8]
        if first in runs:
            selected = [first] + [s for s in selected if s != first]
        with_policy = [l for l, r in runs.items() if (r / "policy").is_dir()]
        chosen = first if first in with_policy else (with_policy[0] if with_policy else None)
        outcome, knobs = split_table(runs_table(list(runs.values())))
        ch_text, ranked, ch = class_ranking(ctx.runs_dir, ctx.record, runs.values())
        return (
            gr.update(choices=labels, value=selected),
            outcome,
            gr.update(choices=with_policy, value=chosen),
            *compare_runs(selected, request),
            overopt_runs(selected, request),
            knobs,
            gr.update(choices=labels, value=first if first in runs else (labels[0] if labels else None)),
            ch_text,
            ranked,
            gr.Column(visible=ch is not None),
        )

    def on_ended(selected_runs: list[str] | None, seen: str, request: gr.Request):
        """When this user's latest run has ended since the last tick (``seen``: "job id:done", "" before
        the first), everything refreshed with that run selected; else nothing is redrawn."""
        job = QUEUE.latest(ctx.user(request).id)
        key = "-" if job is None else f"{job.id}:{int(job.done)}"
        if not seen or key == seen or job is None or not job.done:  # the first look, or no new ending
            return (*[gr.skip()] * len(outs), key)
        return (*reload(selected_runs, request, first=run_label(job.out)), key)

    def export_runs_csv(selected_runs: list[str] | None, request: gr.Request):
        """The stacked metrics of the selected runs as one CSV file."""
        chosen = pick_runs(selected_runs, request)
        if not chosen:
            raise gr.Error("Select at least one run.")
        path = export_path(f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.csv")  # cleaned by age, counted in the quota
        return gr.update(value=str(export_csv(chosen, path)), visible=True)

    def download_run_policy(run: str | None, request: gr.Request):
        """The saved policy of one run (adapter or full model, with its config) as a zip file."""
        if not isinstance(run, str) or not run:
            raise gr.Error("Choose a run with a saved policy.")
        folder = pick_runs(run, request)[0]
        try:
            path = cached_zip(folder, downloads_dir())  # built once per checkpoint, reused by later clicks
            return gr.update(value=str(path), visible=True)
        except FileNotFoundError as exc:
            raise gr.Error(str(exc)) from exc

    outs = [pick, table, one, frontier, overlay, overopt, settings, insp_run, ch_md, ch_table, ch_box]
    refresh.click(refresh_runs, pick, outs, api_name="runs_refresh")
    ended = gr.State("")  # the id of this user's last run seen ended
    gr.Timer(ENDED_POLL_S).tick(
        on_ended, [pick, ended], [*outs, ended], concurrency_limit=None, show_progress="hidden", api_visibility="private"
    )
    if ctx.who is not None:  # once the page has said who it is (ui/identity.py)
        ctx.who.change(refresh_runs, pick, outs, api_visibility="private", show_progress="hidden")
    else:
        demo.load(refresh_runs, pick, outs, api_visibility="private")
    pick.input(compare_runs, pick, [frontier, overlay], api_name="runs_compare")
    pick.input(overopt_runs, pick, overopt, api_name="runs_overopt")

    def check_names(selected, request: gr.Request):
        """The refusal of a name this user may not see (or of no name), at once: checked in its own event
        with no concurrency limit, so it never waits behind the class's zip builds and CSV exports
        (those share a limit of 2 each); the file box then shows the build's progress."""
        if not selected:
            raise gr.Error("Choose a run with a saved policy." if isinstance(selected, (str, type(None))) else "Select at least one run.")
        pick_runs(selected, request)
        return gr.update(visible=True)

    quick = dict(concurrency_limit=None, show_progress="hidden", api_visibility="private")
    csv_btn.click(check_names, pick, files, **quick).success(export_runs_csv, pick, files, api_name="runs_export_csv")
    zip_btn.click(check_names, one, files, **quick).success(download_run_policy, one, files, api_name="runs_download_policy")
