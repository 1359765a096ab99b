"""The Runs tab: every run folder (PPO and DPO) with its settings, their curves overlaid, every held-out
evaluation as reward against KL (the DPO paper's Figure 2 frontier), metrics as CSV, a policy as a zip.
Lays out and wires only: data from ``rlhf_demo.compare``, figures from ``rlhf_demo.plots_runs``.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import gradio as gr

from rlhf_demo.runs.compare import eval_points, export_csv, find_runs, load_curves, run_label, runs_table, zip_policy
from rlhf_demo.plots.runs import frontier_figure, overlay_figure
from rlhf_demo.ui.context import AppContext

INTRO = """### Runs: compare PPO and DPO on the same axes
Every training run is a folder (`config.json`, `metrics.jsonl`, `policy/`). Pick runs to overlay their curves.
The **frontier** plots each held-out evaluation of each run as mean reward against KL(π‖π_ref): up is more
reward, right is further from the reference. Good methods get high reward for little KL (the DPO paper's
Figure 2); the ★ is the base model."""

BENCH_RESULTS = Path("bench") / "results"


def _base_reward() -> float | None:
    """The base model's held-out reward if a benchmark measured it (bench/results/dpo_base_eval.json)."""
    f = BENCH_RESULTS / "dpo_base_eval.json"
    try:
        return float(json.loads(f.read_text())["reward_mean"])
    except (OSError, ValueError, KeyError):
        return None


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    gr.Markdown(INTRO)

    def all_runs():
        return find_runs(ctx.runs_dir, [BENCH_RESULTS])

    def by_label():
        return {run_label(r): r for r in all_runs()}

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

    def on_refresh(selected):
        runs = by_label()
        labels = list(runs)
        selected = [s for s in (selected or []) if s in runs] or labels[:8]
        with_policy = [l for l, r in runs.items() if (r / "policy").is_dir()]
        return (gr.update(choices=labels, value=selected), runs_table(list(runs.values())),
                gr.update(choices=with_policy, value=with_policy[0] if with_policy else None), *figures(selected))

    def figures(selected):
        runs = by_label()
        chosen = [runs[s] for s in (selected or []) if s in runs]
        base = _base_reward()
        pts = eval_points(chosen, base_reward=base)
        target = (base + 0.3, 6.0) if base is not None else None
        return frontier_figure(pts, target=target), overlay_figure(load_curves(chosen))

    outs = [pick, table, one, frontier, overlay]
    refresh.click(on_refresh, pick, outs, api_visibility="private")
    demo.load(on_refresh, pick, outs, api_visibility="private")
    pick.input(figures, pick, [frontier, overlay], api_visibility="private")

    def on_csv(selected):
        runs = by_label()
        chosen = [runs[s] for s in (selected or []) if s in runs]
        if not chosen:
            raise gr.Error("Select at least one run.")
        path = Path(tempfile.mkdtemp(prefix="rlhf-runs-")) / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        return gr.update(value=str(export_csv(chosen, path)), visible=True)

    csv_btn.click(on_csv, pick, files, api_visibility="private")

    def on_zip(label):
        run = by_label().get(label or "")
        if run is None:
            raise gr.Error("Choose a run with a saved policy.")
        try:
            path = zip_policy(run, Path(tempfile.mkdtemp(prefix="rlhf-policy-")) / f"{run.name}-policy.zip")
            return gr.update(value=str(path), visible=True)
        except FileNotFoundError as exc:
            raise gr.Error(str(exc)) from exc

    zip_btn.click(on_zip, one, files, api_visibility="private")
