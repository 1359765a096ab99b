"""What the PPO and DPO panels share: a per-session Stop flag, the run folder's name, and the loop that
streams a trainer's records into the status line, the curves and the tables. Wires only: the trainer,
the run folder (``runs.folder.write_run``) and the words (``runs.status``) are the core's."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.plots.training import training_figure
from rlhf_demo.runs.folder import RunWriter, write_run
from rlhf_demo.runs.status import final_lines, progress_lines

_STOP_FLAGS: dict[str, threading.Event] = {}
"""session hash → its Stop flag (sessions never see each other's flags)."""
_FLAGS_LOCK = threading.Lock()


def stop_flag(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "anonymous"
    with _FLAGS_LOCK:
        return _STOP_FLAGS.setdefault(key, threading.Event())


def run_dir(ctx, algo: str, request: gr.Request | None) -> Path:
    out = Path(ctx.runs_dir) / f"{algo}-{time.strftime('%Y%m%d-%H%M%S')}-{(getattr(request, 'session_hash', '') or 'x')[:6]}"
    return RunWriter.check(out)


def markdown(lines: list[str]) -> str:
    return "  \n".join(lines)


def stream(trainer, out: Path, preset: str, panels, *, total: int, hlines=None, bands=None):
    """Yield (status, figure, the record) for each record of the run, then (final status, figure, None)."""
    rows: list[dict] = []
    for rec in write_run(trainer, out, preset=preset):
        rows.append({k: v for k, v in rec.items() if k not in ("samples", "eval/samples")})
        fig = training_figure(pd.DataFrame(rows), panels, hlines=hlines, **({} if bands is None else {"bands": bands}))
        yield markdown(progress_lines(trainer.cfg, rec, total)), fig, rec
    fig = training_figure(pd.DataFrame(rows), panels, hlines=hlines, **({} if bands is None else {"bands": bands}))
    yield markdown(final_lines(trainer, out)), fig, None
