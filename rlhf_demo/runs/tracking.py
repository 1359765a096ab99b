"""Experiment tracking: a run's records also go to trackio or Weights & Biases (``report_to``, TRL's name
and values: ``none``, ``trackio``, ``wandb``).

``runs.folder.write_run`` hands every record it writes to ``metrics.jsonl`` to the tracker as well,
with the same names (``reward_mean``, ``objective/kl``, ``loss``, ``rewards/margins``, ``eval/kl``,
...) and ``step`` as the step, so a dashboard and the run folder show the same numbers. This is done
for every trainer the same way, TRL's included: TRL's own tracking callback would rename the keys
(``train/loss``) and miss our held-out evaluations.

- **trackio** (local-first, the tracker TRL recommends) writes into a SQLite database under
  ``$TRACKIO_DIR`` (default ``~/.cache/huggingface/trackio``), one project ``$TRACKIO_PROJECT``
  (default ``rlhf-lab``), one run per run folder (its name); ``trackio show`` opens the dashboard. No
  network is needed.
- **wandb** logs to ``$WANDB_PROJECT`` (default ``rlhf-lab``); ``WANDB_MODE=offline`` keeps it local.

``check(report_to)`` refuses a tracker that is not installed, in one line, before any model is loaded.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

CHOICES = ("none", "trackio", "wandb")
PROJECT = "rlhf-lab"
PACKAGE = {"trackio": "trackio", "wandb": "wandb"}


def check(report_to: str) -> None:
    """ValueError (one line) when ``report_to`` names a tracker this Python cannot import."""
    if report_to not in CHOICES:
        raise ValueError(f"report_to must be one of {', '.join(CHOICES)}; got {report_to!r}")
    if report_to != "none" and importlib.util.find_spec(PACKAGE[report_to]) is None:
        raise ValueError(
            f"--report-to {report_to}: the {report_to} package is not installed "
            f"(pip install {PACKAGE[report_to]}), or choose --report-to none"
        )


def scalars(record: dict) -> dict:
    """The numbers of a record (what a tracker plots): no sample rows, no None, no NaN."""
    return {
        k: float(v)
        for k, v in record.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "step"
    }


class Tracker:
    """One run in a tracker: ``log(record)`` per record, ``finish()`` at the end. ``none`` does nothing."""

    def __init__(self, run=None):
        self.run = run

    def log(self, record: dict) -> None:
        if self.run is not None:
            self.run.log(scalars(record), step=int(record.get("step", 0)))

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def start(report_to: str, run_dir: Path, config: dict) -> Tracker:
    """A tracker run named after the run folder, with the run's config."""
    check(report_to)
    if report_to == "none":
        return Tracker()
    name, project = Path(run_dir).name, os.environ.get(f"{report_to.upper()}_PROJECT", PROJECT)
    if report_to == "trackio":
        import trackio

        return Tracker(trackio.init(project=project, name=name, config=config, embed=False))
    import wandb

    return Tracker(wandb.init(project=project, name=name, config=config, dir=str(run_dir)))


def read_trackio(run_name: str, project: str | None = None) -> list[dict]:
    """The records of a trackio run as trackio stored them (its own local database): one dict per
    step with ``step`` and the metrics."""
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_logs(project or os.environ.get("TRACKIO_PROJECT", PROJECT), run_name)
