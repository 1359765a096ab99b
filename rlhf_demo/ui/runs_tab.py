"""The Runs tab: every run folder (PPO and DPO) with its settings, their curves overlaid, every held-out
evaluation as reward against KL (the DPO paper's Figure 2 frontier), metrics as CSV, a policy as a zip.
Lays out and wires only: data from ``rlhf_demo.runs.compare``, figures from ``rlhf_demo.plots.runs``.

Public API endpoints (each handler's parameters are the API's names): ``/runs_refresh``,
``/runs_compare``, ``/runs_export_csv``, ``/runs_download_policy``. On a shared server every run is
listed and compared, but a policy downloads only for the session that trained it (``AppContext``'s
session → runs record) or for the shipped example.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr

from rlhf_demo import limits
from rlhf_demo.plots.runs import frontier_figure, overlay_figure
from rlhf_demo.runs.compare import (base_point, eval_points, export_csv, find_runs, frontier_target, load_curves,
                                    run_label, runs_table)
from rlhf_demo.runs.quota import cached_zip, downloads_dir
from rlhf_demo.runs.folder import EXAMPLE_RUN
from rlhf_demo.ui.context import AppContext

NOT_YOURS = "Choose a run with a saved policy that you trained in this session (or the shipped example)."

INTRO = """### Runs: compare PPO and DPO on the same axes
Every training run is a folder (`config.json`, `metrics.jsonl`, `policy/`). Pick runs to overlay their curves.
The **frontier** plots each held-out evaluation of each run as mean reward against KL(π‖π_ref): up is more
reward, right is further from the reference. Good methods get high reward for little KL (the DPO paper's
Figure 2); the ★ is the base model."""


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    gr.Markdown(INTRO)

    def by_label():
        return {run_label(r): r for r in find_runs(ctx.runs_dir)}

    def may_download(folder: Path, request) -> bool:
        """Local use: any run. Shared: this session's own runs and the shipped example only."""
        if not limits.current().shared:
            return True
        return ctx.owns_run(request, folder) or limits.path_key(folder) == limits.path_key(EXAMPLE_RUN)

    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", elem_id="runs-refresh", scale=0)
        pick = gr.Dropdown([], multiselect=True, label="Runs to compare", elem_id="runs-pick", scale=5,
                           info="Newest first; up to 8 are selected at start.")
    table = gr.Dataframe(label="Runs and their settings", wrap=True, max_height=300, elem_id="runs-table",
                         interactive=False)
    frontier = gr.Plot(label="Held-out reward vs KL", elem_id="runs-frontier")
    overlay = gr.Plot(label="Curves, overlaid", elem_id="runs-overlay")
    with gr.Row():
        csv_btn = gr.Button("Export metrics of the selected runs (CSV)", elem_id="runs-csv")
        one = gr.Dropdown([], label="Run whose policy to download", elem_id="runs-one", scale=2)
        zip_btn = gr.Button("Download policy (zip)", elem_id="runs-zip")
    files = gr.File(label="Download", interactive=False, elem_id="runs-file", height=80, visible=False)

    def compare_runs(selected_runs: list[str] | None):
        """The frontier (held-out reward vs KL, the base model at KL = 0) and the overlaid curves of the
        selected runs (labels as in the runs table)."""
        runs = by_label()
        chosen = [runs[s] for s in (selected_runs or []) if isinstance(s, str) and s in runs]
        base = base_point()
        reward = base["reward_mean"] if base else None
        pts = eval_points(chosen, base_reward=reward, base_sem=base.get("reward_sem") if base else None)
        return frontier_figure(pts, target=frontier_target(reward)), overlay_figure(load_curves(chosen))

    def refresh_runs(selected_runs: list[str] | None, request: gr.Request):
        """Every run folder again: the choices, the runs table, and the figures of the selection (kept
        where the runs still exist, else the 8 newest)."""
        runs = by_label()
        labels = list(runs)
        selected = [s for s in (selected_runs or []) if isinstance(s, str) and s in runs] or labels[:8]
        with_policy = [l for l, r in runs.items() if (r / "policy").is_dir() and may_download(r, request)]
        return (gr.update(choices=labels, value=selected), runs_table(list(runs.values())),
                gr.update(choices=with_policy, value=with_policy[0] if with_policy else None), *compare_runs(selected))

    def export_runs_csv(selected_runs: list[str] | None):
        """The stacked metrics of the selected runs as one CSV file."""
        runs = by_label()
        chosen = [runs[s] for s in (selected_runs or []) if isinstance(s, str) and s in runs]
        if not chosen:
            raise gr.Error("Select at least one run.")
        path = Path(tempfile.mkdtemp(prefix="rlhf-runs-")) / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        return gr.update(value=str(export_csv(chosen, path)), visible=True)

    def download_run_policy(run: str | None, request: gr.Request):
        """The saved policy of one run (adapter or full model, with its config) as a zip file."""
        folder = by_label().get(run) if isinstance(run, str) else None
        if folder is None:
            raise gr.Error("Choose a run with a saved policy.")
        if not may_download(folder, request):
            raise gr.Error(NOT_YOURS)
        try:
            path = cached_zip(folder, downloads_dir())   # built once per checkpoint, reused by later clicks
            return gr.update(value=str(path), visible=True)
        except FileNotFoundError as exc:
            raise gr.Error(str(exc)) from exc

    outs = [pick, table, one, frontier, overlay]
    refresh.click(refresh_runs, pick, outs, api_name="runs_refresh")
    demo.load(refresh_runs, pick, outs, api_visibility="private")
    pick.input(compare_runs, pick, [frontier, overlay], api_name="runs_compare")
    csv_btn.click(export_runs_csv, pick, files, api_name="runs_export_csv")
    zip_btn.click(download_run_policy, one, files, api_name="runs_download_policy")
