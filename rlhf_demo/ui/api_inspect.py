"""The named inspector API: ``/inspect`` (issue 26), the JSON of ``python -m rlhf_demo inspect --json``.

``inspect(run, step, episode, pair)``: ``run`` is a run's name as the Runs tab shows it (``NAME``,
``run:NAME``, ``example-ppo``); only the runs this session may see there (``AppContext.visible_runs``:
its own, pinned and shipped ones; the teacher any). ``step``, ``episode``, ``pair``: whole numbers, or
'' / null for the default (the last update or the saved policy; episode / pair 0). Returns one JSON
object as a string; a refusal is a ``gr.Error`` with one line. Wires only: the work is
``rlhf_demo.inspector``.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from rlhf_demo.inspector import inspect_run
from rlhf_demo.ui.context import NOT_YOURS, AppContext
from rlhf_demo.ui.inspector import loader

MAX_RUN_CHARS = 200


def whole(name: str, value) -> int | None:
    """'' / None → None; an int or a string of one → that int; ValueError in one line otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number or ''")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip()[:20])
    except ValueError:
        raise ValueError(f"{name} must be a whole number or ''; got {str(value)[:20]!r}") from None


def visible_run(ctx: AppContext, run, request) -> Path | None:
    """The folder among the runs this session may see whose name ``run`` is (``run:`` prefix allowed)."""
    if not isinstance(run, str) or not run.strip() or len(run) > MAX_RUN_CHARS:
        return None
    name = run.strip().removeprefix("run:")
    return next((r for r in ctx.visible_runs(request) if Path(r).name == name), None)


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """Register ``/inspect``; call it inside ``demo``'s ``with gr.Blocks()`` (``app.build_demo``)."""

    def inspect(run: str, step: str = "", episode: str = "", pair: str = "", request: gr.Request = None) -> str:
        """A run's objective token by token: run (a run name you may see), step ('' = the last update;
        DPO: the saved policy, or the last step while it trains), episode (PPO; GRPO: the prompt's group)
        or pair (DPO: of that step's batch with a step, else of the training set), '' = 0.
        Returns the JSON object of `python -m rlhf_demo inspect RUN --json`."""
        folder = visible_run(ctx, run, request)
        if folder is None:
            raise gr.Error(f"{str(run)[:80]!r}: {NOT_YOURS}")
        try:
            view = inspect_run(
                folder,
                step=whole("step", step),
                episode=whole("episode", episode),
                pair=whole("pair", pair),
                load=loader(ctx, request),  # DPO's saved policy: from the app's model registry
            )
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        return json.dumps(view, ensure_ascii=False)

    gr.api(inspect, api_name="inspect", concurrency_limit=1)  # one at a time: DPO may load a policy (in the registry)
